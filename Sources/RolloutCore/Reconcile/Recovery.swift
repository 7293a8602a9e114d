import Foundation

/// How the next run completes what an interrupted one started, decided from the flag as it is.
public enum Recovery {
    public struct Outcome: Equatable, Sendable {
        /// Each open intent, and whether the flag shows it applied.
        public var results: [(id: Int64, applied: Bool)]
        /// The record to store with the results, when they change it.
        public var record: RolloutRecord?
        public var enteredPhase: Bool

        public static func == (a: Outcome, b: Outcome) -> Bool {
            a.results.map(\.id) == b.results.map(\.id) && a.results.map(\.applied) == b.results.map(\.applied)
                && a.record == b.record && a.enteredPhase == b.enteredPhase
        }
    }

    /// An advance counts as entered (bake from its intent's time) only when the flag shows the
    /// whole desired state of its phase: half an advance is decided again, never taken for an
    /// override. An applied rollback intent marks the rollout rolled back (the safe reading).
    public static func resolve(
        intents: [OpenIntent], plan: Plan, record: RolloutRecord?,
        actual: [String: FlagEnvironmentState]
    ) -> Outcome {
        var outcome = Outcome(results: [], record: nil, enteredPhase: false)
        var current = record
        for intent in intents {
            let applied = PhaseMachine.matches(actual[intent.environment], intent.to)
            outcome.results.append((intent.id, applied))
            guard applied else { continue }
            if intent.reason == Change.Reason.advance.rawValue, let phase = intent.phase,
                let index = plan.phaseIndex(named: phase), current?.phase != phase,
                plan.desiredState(atPhase: index).allSatisfy({ PhaseMachine.matches(actual[$0.key], $0.value) })
            {
                current = RolloutRecord(
                    phase: phase, enteredAt: intent.time, status: .progressing,
                    planBlob: intent.planBlob)
                outcome.record = current
                outcome.enteredPhase = true
            } else if intent.reason == Change.Reason.rollback.rawValue, current?.status != .rolledBack {
                current = RolloutRecord(
                    phase: current?.phase ?? intent.phase, enteredAt: current?.enteredAt,
                    status: .rolledBack, planBlob: intent.planBlob)
                outcome.record = current
            }
        }
        return outcome
    }
}
