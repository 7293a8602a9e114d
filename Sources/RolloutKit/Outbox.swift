import Foundation
import Logging
import RolloutAdapters
import RolloutCore

/// The notification outbox of the state (SPEC §5.10): every pending message is tried once per run,
/// after the rollouts are reconciled; a failure is kept for the next run, for 24 hours.
struct Outbox {
    var state: any StateStorage
    var notifier: Notifier
    var logger: Logger

    func deliver(now: Date) async {
        let queued: (pending: [OutboxMessage], expired: [OutboxMessage])
        do {
            queued = try state.pendingOutbox(now: now)
        } catch {
            logger.warning("cannot read the notification outbox: \(error)")
            return
        }
        for message in queued.expired {
            let text =
                "notification \(message.key) to \(message.target) for \(message.rollout) was not delivered "
                + "in \(Int(OutboxMessage.retention / 3600)) hours (\(message.attempts) attempts); given up"
            logger.error("\(text)")
        }
        // A target that failed once in this run is not tried again until the next run: a webhook
        // that is down costs one timeout per run, not one per message.
        var down: [String: String] = [:]
        for message in queued.pending {
            guard let id = message.id else { continue }
            if down[message.target] != nil { continue }
            let error = await notifier.deliver(key: message.key, target: message.target, body: message.body)
            try? state.recordDelivery(id: id, at: now, error: error)
            if let error {
                down[message.target] = error
                logger.warning("notification to \(message.target) failed (\(error)); retried on the next run")
            }
        }
    }
}

extension Outbox {
    /// One notification for `targets`: one outbox row per target, all carrying one event (its id is the
    /// `Idempotency-Key`). The one place a notification's body is built.
    static func messages(
        rollout: String, flag: String, status: String, phase: String?, message: String, revision: String,
        checks: [HealthResult], to targets: [String], now: Date
    ) -> [OutboxMessage] {
        let key = UUID().uuidString.lowercased()
        let body = NotificationEvent(
            id: key, rollout: rollout, flag: flag, status: status, phase: phase, message: message,
            revision: revision, time: now, checks: checks.map { ($0.check.name, $0.value, $0.noDataReason) }
        )
        .json.render(pretty: false)
        return targets.map { OutboxMessage(key: key, target: $0, rollout: rollout, body: body, createdAt: now) }
    }
}
