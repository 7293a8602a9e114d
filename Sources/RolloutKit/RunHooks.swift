import Foundation
import RolloutAdapters
import RolloutCore

/// The two places issue 11 hooks into a run, kept out of `Reconciler` so that they move as a unit:
/// the projected timeline of the report, and the breach episodes of `notify` checks. The run owns them;
/// `serve` only shows what they produce.
enum RunHooks {
    /// The projected timeline (SPEC §6) from what the phase machine decided in this run.
    /// - Parameter missingRoles: per phase index, the roles it still needs (floors included, SPEC §4.2).
    static func timeline(
        plan: Plan, missingRoles: [[String]], current: Int?, enteredAt: Date?,
        decision: Decision, now: Date
    ) -> [TimelineEntry] {
        var missing: [String: [String]] = [:]
        let first = current.map { $0 + 1 } ?? 0
        // Approvals bind the whole plan (§5.2): roles still missing for phases already entered (after a
        // plan edit) hold the next phase too.
        var carried: [String] = []
        for (index, phase) in plan.phases.enumerated() {
            let roles = index < missingRoles.count ? missingRoles[index] : []
            if index < first {
                carried += roles
            } else {
                missing[phase.name] = (index == first ? carried : []) + roles
            }
        }
        return Timeline.project(
            Timeline.Input(
                plan: plan, currentIndex: current, enteredAt: enteredAt, now: now, missingRoles: missing,
                status: decision.status, blockers: decision.blockers))
    }

    /// Applies the episode rule of `notify` checks: stores the breaching set, audits and queues each new
    /// episode for `rollback.notify` (the outbox delivers it after the run). Runs only when a run applies; a failure is logged and never blocks.
    static func watchNotifyChecks(
        rollout: String, plan: Plan, checks: [HealthCheck], health: [HealthResult],
        phase: String?, revision: String, state: any StateStorage, now: Date,
        ports: RunPorts
    ) async {
        do {
            let previous = try state.breachingNotifyChecks(rollout: rollout)
            let outcome = NotifyWatch.step(previous: previous, checks: checks, results: health)
            guard outcome.breaching != previous else { return }
            let events = outcome.newEpisodes.map { result in
                AuditEntry(
                    time: now, rollout: rollout, phase: phase, environment: result.environment, from: nil,
                    to: nil, reason: "notify", revision: revision, planBlob: nil, approvals: [], kind: .event,
                    detail: "breach of notify check \(result.summary)")
            }
            // Each new episode is queued in the same transaction and delivered by the outbox after the run.
            let outbox = outcome.newEpisodes.flatMap { result in
                Outbox.messages(
                    rollout: rollout, flag: plan.flag, status: "notify", phase: phase,
                    message: "watch \(result.check.name) of \(plan.name) (\(plan.flag)): \(result.summary)",
                    revision: revision, checks: [result], to: plan.rollback.notify, now: now)
            }
            try state.saveBreachingNotifyChecks(
                rollout: rollout, checks: outcome.breaching, audit: events,
                outbox: outbox)
        } catch {
            ports.logger.error("\(rollout): recording notify checks: \(error)")
        }
    }
}
