import Foundation

/// How `rolloutctl init --adopt` starts a rollout whose flag is already exposed, or whose
/// approvals already passed phase 0 (SPEC §5.10): never in a way that re-exposes users.
public enum Adoption {
    /// True when a state made from nothing could be wrong about the rollout: its flag is exposed
    /// in an environment of the plan, or phases past 0 have counted approvals.
    public static func needsAdopt(
        plan: Plan, approvals: [ApprovalStatus],
        actual: [String: FlagEnvironmentState]
    ) -> Bool {
        let exposed = plan.environments.contains { (actual[$0] ?? .disabled).exposure > 0 }
        let approvedPastStart = approvals.contains { status in
            status.counted && (plan.phaseIndex(named: status.phase) ?? 0) > 0
        }
        return exposed || approvedPastStart
    }

    /// The record an adopted rollout starts with: the furthest phase whose desired state the flag
    /// matches exactly (and no other plan environment exposed), bake from `now`; otherwise
    /// `overridden` at the first phase whose desired state covers what is exposed (so a rollout
    /// rolled back before the state was lost stays at 0 until its plan changes). Nil when the
    /// rollout needs no adoption: it starts as new.
    public static func record(
        plan: Plan, planBlob: String, approvals: [ApprovalStatus],
        actual: [String: FlagEnvironmentState], now: Date
    ) -> RolloutRecord? {
        guard needsAdopt(plan: plan, approvals: approvals, actual: actual) else { return nil }
        for k in stride(from: plan.phases.count - 1, through: 0, by: -1) {
            let desired = plan.desiredState(atPhase: k)
            let exact = plan.environments.allSatisfy { environment in
                if let wanted = desired[environment] { return PhaseMachine.matches(actual[environment], wanted) }
                return (actual[environment] ?? .disabled).exposure == 0
            }
            if exact {
                return RolloutRecord(
                    phase: plan.phases[k].name, enteredAt: now, status: .progressing, planBlob: planBlob)
            }
        }
        let covering =
            plan.phases.indices.first { k in
                let desired = plan.desiredState(atPhase: k)
                return plan.environments.allSatisfy { environment in
                    (actual[environment] ?? .disabled).exposure
                        <= (desired[environment] ?? .disabled).exposure
                }
            } ?? plan.phases.count - 1
        return RolloutRecord(phase: plan.phases[covering].name, enteredAt: now, status: .overridden, planBlob: planBlob)
    }
}
