import Foundation
import Logging
import RolloutAdapters
import RolloutCore

/// SPEC §5 rule 3 [r3]: a state that cannot be written (disk full, read-only) never blocks a
/// rollback. The run still lowers exposure (disabling is always safe and needs no record), sends
/// the notification directly (it cannot be queued), reports that the rollback is not recorded and
/// exits 1; the next run that can write records it. Nothing that raises exposure goes ahead
/// without its intent in the audit log. What may go ahead unrecorded is `Execution`'s rule (core); the
/// executor calls these.
enum UnrecordedWrites {
    /// Whether `error`, or the state itself, says the state cannot be written.
    static func isUnwritable(_ error: Error, state: any StateStorage) -> Bool {
        if state.unwritableReason != nil { return true }
        if case StateStoreError.unwritable = error { return true }
        return false
    }

    /// Sends a commit's notifications now, not through the outbox (which cannot be written).
    static func notifyDirectly(_ messages: [OutboxMessage], notifier: Notifier, logger: Logger) async {
        for message in messages {
            if let error = await notifier.deliver(key: message.key, target: message.target, body: message.body) {
                let text =
                    "\(message.rollout): notification to \(message.target) failed (\(error)); it could not be "
                    + "queued either (the state cannot be written)"
                logger.error("\(text)")
            }
        }
    }

    /// The rollout's error when something was lowered without being recorded.
    static func notRecorded(_ detail: String) -> ReportedError {
        ReportedError(
            message: "rollback not recorded: \(detail); the flag was lowered anyway and the notification "
                + "sent directly; the next run that can write the state records it")
    }

    /// The run's error when its state could not be written at all: nothing recorded, exit 1.
    static func runError(_ reason: String) -> ReportedError {
        ReportedError(
            message: "\(reason); this run applied only what lowers exposure "
                + "(free space, or make the state writable; the next run that can write catches up)")
    }
}
