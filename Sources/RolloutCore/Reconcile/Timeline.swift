import Foundation

/// One phase not yet entered, projected (SPEC §6 `timeline`).
public struct TimelineEntry: Equatable, Sendable {
    public var phase: String
    /// The earliest time the phase can start if every approval it waits for arrived now and health stays
    /// good; nil while it is blocked by something time alone does not end.
    public var earliestStart: Date?
    /// `bake`, `approval:<role>` (once per missing approver), or what blocks it for good:
    /// `status:<status>`, `health:<check>`, `state`, `error`.
    public var waitingFor: [String]

    public init(phase: String, earliestStart: Date?, waitingFor: [String]) {
        self.phase = phase
        self.earliestStart = earliestStart
        self.waitingFor = waitingFor
    }
}

/// The projected timeline: when each phase not yet entered can start at the earliest.
public enum Timeline {
    public struct Input: Sendable {
        public var plan: Plan
        /// The phase in force (nil when none has been entered).
        public var currentIndex: Int?
        /// When the phase in force was entered.
        public var enteredAt: Date?
        public var now: Date
        /// Missing approvals by phase name: a role once per approver still needed. For the next phase this
        /// includes the roles a plan edit asks again for the current phase (they gate the next one too).
        public var missingRoles: [String: [String]]
        public var status: RolloutStatus
        /// The run's blockers: health, state and error blockers are not ended by time.
        public var blockers: [Blocker]

        public init(
            plan: Plan, currentIndex: Int?, enteredAt: Date?, now: Date, missingRoles: [String: [String]],
            status: RolloutStatus, blockers: [Blocker]
        ) {
            self.plan = plan
            self.currentIndex = currentIndex
            self.enteredAt = enteredAt
            self.now = now
            self.missingRoles = missingRoles
            self.status = status
            self.blockers = blockers
        }
    }

    /// Statuses that time alone never ends: each needs a plan edit, a person or a recovery.
    static let stuck: Set<RolloutStatus> = [.rolledBack, .paused, .aborted, .holding, .invalid, .orphaned]

    public static func project(_ input: Input) -> [TimelineEntry] {
        let plan = input.plan
        let first = input.currentIndex.map { $0 + 1 } ?? 0
        guard first < plan.phases.count, input.status != .completed else { return [] }

        var hard: [String] = []
        if stuck.contains(input.status) || input.status.rawValue == "overridden" {
            hard.append("status:\(input.status.rawValue)")
        }
        for blocker in input.blockers {
            switch blocker.kind {
            case .health: hard.append("health:\(blocker.check ?? "?")")
            case .state where !hard.contains(where: { $0.hasPrefix("status:") }): hard.append("state")
            case .error: hard.append("error")
            default: continue
            }
        }
        hard = unique(hard)

        var entries: [TimelineEntry] = []
        // When the phase before `index` was entered (projected), or nil once the projection is blocked.
        var previousStart: Date? = nil
        if hard.isEmpty, input.currentIndex != nil { previousStart = input.enteredAt ?? input.now }
        for index in first..<plan.phases.count {
            let phase = plan.phases[index]
            var waiting: [String] = []
            var start: Date?
            if hard.isEmpty, index == first || previousStart != nil {
                var earliest = input.now
                if index > 0, let entered = previousStart, let bake = plan.phases[index - 1].bake, bake.seconds > 0 {
                    let baked = entered.addingTimeInterval(TimeInterval(bake.seconds))
                    if baked > input.now {
                        earliest = baked
                        waiting.append("bake")
                    }
                }
                start = earliest
            } else {
                waiting = hard
            }
            waiting += (input.missingRoles[phase.name] ?? []).map { "approval:\($0)" }
            entries.append(TimelineEntry(phase: phase.name, earliestStart: start, waitingFor: waiting))
            previousStart = start
        }
        return entries
    }

    private static func unique(_ items: [String]) -> [String] {
        var seen: Set<String> = []
        return items.filter { seen.insert($0).inserted }
    }
}
