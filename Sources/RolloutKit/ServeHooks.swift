import Foundation
import RolloutAdapters
import RolloutCore

/// The two places issue 11 hooks into a run, kept out of `Reconciler` so that they move as a unit:
/// the projected timeline of the report, and the breach episodes of `notify` checks.
enum ServeHooks {
    /// The projected timeline (SPEC §6) from what the phase machine decided in this run.
    static func timeline(plan: Plan, approvals: [ApprovalStatus], current: Int?, enteredAt: Date?,
                         decision: Decision, now: Date) -> [TimelineEntry] {
        var missing: [String: [String]] = [:]
        let first = current.map { $0 + 1 } ?? 0
        for phase in plan.phases.dropFirst(first) {
            missing[phase.name] = ApprovalRules.missingRoles(of: phase, statuses: approvals)
        }
        // A plan edit asks the current phase's approvals again; the next phase waits for them too.
        if let current, first < plan.phases.count {
            let again = decision.blockers.filter { $0.kind == .approval && $0.phase == plan.phases[current].name }
            missing[plan.phases[first].name, default: []] += again.compactMap(\.role)
        }
        return Timeline.project(Timeline.Input(
            plan: plan, currentIndex: current, enteredAt: enteredAt, now: now, missingRoles: missing,
            status: decision.status, blockers: decision.blockers))
    }

    /// Applies the episode rule of `notify` checks: stores the breaching set, audits and announces each new
    /// episode to `rollback.notify`. Runs only when a run applies; a failure is logged and never blocks.
    static func watchNotifyChecks(rollout: String, plan: Plan, checks: [HealthCheck], health: [HealthResult],
                                  phase: String?, revision: String, state: StateStore, now: Date,
                                  ports: RunPorts) async {
        do {
            let previous = try state.breachingNotifyChecks(rollout: rollout)
            let outcome = NotifyWatch.step(previous: previous, checks: checks, results: health)
            guard outcome.breaching != previous else { return }
            let events = outcome.newEpisodes.map { result in
                AuditEntry(time: now, rollout: rollout, phase: phase, environment: result.environment, from: nil,
                           to: nil, reason: "notify", revision: revision, planBlob: nil, approvals: [], kind: .event,
                           detail: "breach of notify check \(result.summary)")
            }
            try state.saveBreachingNotifyChecks(rollout: rollout, checks: outcome.breaching, audit: events)
            for result in outcome.newEpisodes {
                await ports.notifier.notify(names: plan.rollback.notify, event: NotificationEvent(
                    rollout: rollout, flag: plan.flag, status: "notify", phase: phase,
                    message: "watch \(result.check.name) of \(plan.name) (\(plan.flag)): \(result.summary)",
                    revision: revision, time: now, checks: [(result.check.name, result.value, result.noDataReason)]))
            }
        } catch {
            ports.logger.error("\(rollout): recording notify checks: \(error)")
        }
    }
}
