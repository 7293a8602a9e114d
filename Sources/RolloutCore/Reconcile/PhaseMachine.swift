import Foundation

/// The phase state machine of SPEC §5, as pure code: values in, a decision out.
public enum PhaseMachine {
    public struct Input: Sendable {
        public var plan: Plan
        public var planBlob: String
        public var approvals: [ApprovalStatus]
        /// For each phase index, the roles it still needs for the current plan blob (SPEC §4.2).
        public var missingRoles: [[String]]
        /// Nil when the state database has no row for this rollout (new, or state lost).
        public var record: RolloutRecord?
        /// The flag's environments as the flag store reports them.
        public var actual: [String: FlagEnvironmentState]
        /// Results of the current phase's checks (empty when none were evaluated).
        public var health: [HealthResult]
        public var now: Date

        public init(plan: Plan, planBlob: String, approvals: [ApprovalStatus], missingRoles: [[String]]? = nil,
                    record: RolloutRecord?, actual: [String: FlagEnvironmentState], health: [HealthResult], now: Date) {
            self.plan = plan
            self.planBlob = planBlob
            self.approvals = approvals
            self.missingRoles = missingRoles ?? ApprovalRules.missingRoles(plan: plan, policy: nil, statuses: approvals)
            self.record = record
            self.actual = actual
            self.health = health
            self.now = now
        }
    }

    /// The phase in force before this run: the recorded one, or, when the state is lost, the
    /// furthest phase whose desired state the flag already matches (its bake restarts now).
    public static func currentPhase(plan: Plan, planBlob: String, record: RolloutRecord?,
                                    actual: [String: FlagEnvironmentState], now: Date) -> (index: Int?, enteredAt: Date?) {
        if let record {
            if record.status == .rolledBack, record.planBlob != planBlob {
                return (nil, nil)  // the plan changed after a rollback: start again
            }
            if let name = record.phase, let index = plan.phaseIndex(named: name) {
                return (index, record.enteredAt ?? now)
            }
            if record.phase != nil {
                return (nil, nil)  // the recorded phase was removed from the plan: start again, lowering as needed
            }
            return (nil, nil)
        }
        for k in stride(from: plan.phases.count - 1, through: 0, by: -1) {
            let desired = plan.desiredState(atPhase: k)
            if desired.allSatisfy({ matches(actual[$0.key], $0.value) }) {
                return (k, now)
            }
        }
        return (nil, nil)
    }

    /// The health checks of a phase are evaluated whenever its coverage is above 0.
    public static func needsHealth(plan: Plan, phaseIndex: Int?) -> Bool {
        guard let phaseIndex else { return false }
        return plan.phases[phaseIndex].coverage > 0
    }

    public static func decide(_ input: Input) -> Decision {
        let plan = input.plan
        let (current, enteredAt) = currentPhase(plan: plan, planBlob: input.planBlob, record: input.record,
                                                actual: input.actual, now: input.now)
        let currentName = current.map { plan.phases[$0].name }
        var decision = Decision(
            status: .progressing, currentPhase: currentName, nextPhase: nextName(plan, after: current),
            blockers: [], changes: [], health: input.health,
            record: RolloutRecord(phase: currentName, enteredAt: enteredAt, status: .progressing, planBlob: input.planBlob),
            advancedTo: nil, notification: nil)

        let reached = reachedEnvironments(plan: plan, current: current, actual: input.actual)

        // Aborted: every environment the plan reached goes to 0, without approvals.
        if plan.state == .aborted {
            decision.changes = disable(reached, actual: input.actual, reason: .abort)
            decision.status = .aborted
            decision.nextPhase = nil
            decision.record.status = .aborted
            decision.blockers = [Blocker(kind: .state, detail: "the plan is aborted: every environment it reached is disabled")]
            return decision
        }

        // Rolled back: stays so until plan.json changes.
        if let record = input.record, record.status == .rolledBack, record.planBlob == input.planBlob {
            decision.changes = disable(reached, actual: input.actual, reason: .rollback)
            decision.status = .rolledBack
            decision.currentPhase = record.phase
            decision.nextPhase = nil
            decision.record = record
            decision.blockers = [Blocker(kind: .state,
                detail: "rolled back; it stays so until plan.json changes (then every phase needs fresh approvals)")]
            return decision
        }

        // Health of the current phase.
        var healthHold: [Blocker] = []
        for result in input.health {
            let action: HealthCheck.NoDataAction
            switch result.verdict {
            case .pass: continue
            case .breach: action = result.check.onBreach == .rollback ? .rollback : .hold
            case .noData: action = result.check.onNoData
            }
            switch action {
            case .ignore:
                continue
            case .rollback where plan.rollback.automatic:
                decision.changes = disable(reached, actual: input.actual, reason: .rollback)
                decision.status = .rolledBack
                decision.nextPhase = nil
                decision.record.status = .rolledBack
                decision.blockers = [Blocker(kind: .health, detail: "rollback: \(result.summary)", check: result.check.name)]
                decision.notification = "rollback of \(plan.name) (\(plan.flag)): \(result.summary)"
                return decision
            case .rollback:
                healthHold.append(Blocker(kind: .health,
                    detail: "\(result.summary) (rollback breach; automatic rollback is off, so holding)",
                    check: result.check.name))
            case .hold:
                healthHold.append(Blocker(kind: .health, detail: "hold: \(result.summary)", check: result.check.name))
            }
        }

        // The desired state of the current phase: drift and plan edits that lower exposure.
        var target = current.map { plan.desiredState(atPhase: $0) } ?? [:]
        let planChanged = input.record.map { $0.planBlob != input.planBlob } ?? false
        var blockers: [Blocker] = []
        if let current, planChanged {
            // An edit that raises the current phase's exposure needs that phase's approvals again.
            let raises = target.contains { exposure($0.value) > exposure(input.actual[$0.key] ?? .disabled) }
            let missing = input.missingRoles[current]
            if raises && !missing.isEmpty {
                for (environment, desired) in target where exposure(desired) > exposure(input.actual[environment] ?? .disabled) {
                    target[environment] = input.actual[environment] ?? .disabled
                }
                blockers += missing.map {
                    Blocker(kind: .approval,
                            detail: "plan.json changed and raises \(plan.phases[current].name); it needs an approval from role \($0)",
                            role: $0, phase: plan.phases[current].name)
                }
            }
        }

        // May the next phase be entered?
        var next: Int? = current.map { $0 + 1 } ?? 0
        if let candidate = next, candidate >= plan.phases.count { next = nil }
        if let candidate = next {
            let phase = plan.phases[candidate]
            blockers += healthHold
            if plan.state == .paused {
                blockers.append(Blocker(kind: .state, detail: "the plan is paused; set \"state\": \"active\" to go on"))
            }
            if let current, let bake = plan.phases[current].bake, let enteredAt {
                let elapsed = elapsedSeconds(from: enteredAt, to: input.now)
                if elapsed < bake.seconds {
                    let left = bake.seconds - elapsed
                    blockers.append(Blocker(kind: .bake,
                        detail: "\(plan.phases[current].name) must bake \(bake) before \(phase.name); \(RolloutDuration.format(seconds: left)) left",
                        phase: phase.name, remainingSeconds: left))
                }
            }
            for role in input.missingRoles[candidate] {
                blockers.append(Blocker(kind: .approval, detail: "\(phase.name) needs an approval from role \(role)",
                                        role: role, phase: phase.name))
            }
            if blockers.isEmpty {
                // Advance: one phase per run.
                let advanced = plan.desiredState(atPhase: candidate)
                var changes: [Change] = []
                for environment in plan.environments {
                    guard let to = advanced[environment] else { continue }
                    let from = input.actual[environment]
                    guard !matches(from, to) else { continue }
                    let reason: Change.Reason = target[environment].map { !matches(from, $0) && matches($0, to) } == true
                        ? .drift : .advance
                    changes.append(Change(environment: environment, from: from, to: to, reason: reason))
                }
                decision.changes = changes
                decision.status = .progressing
                // As in SPEC §6: `currentPhase` is the phase in force now, `nextPhase` the one entered.
                decision.nextPhase = phase.name
                decision.advancedTo = phase.name
                decision.record = RolloutRecord(phase: phase.name, enteredAt: input.now, status: .progressing,
                                                planBlob: input.planBlob)
                if nextName(plan, after: candidate) == nil && changes.isEmpty { decision.status = .completed }
                return decision
            }
        } else {
            blockers += healthHold
        }

        // No advance: keep the current phase's desired state.
        for environment in plan.environments {
            guard let to = target[environment] else { continue }
            let from = input.actual[environment]
            guard !matches(from, to) else { continue }
            let reason: Change.Reason = planChanged && exposure(to) < exposure(from ?? .disabled) ? .lower : .drift
            decision.changes.append(Change(environment: environment, from: from, to: to, reason: reason))
        }
        decision.blockers = blockers
        if !healthHold.isEmpty {
            decision.status = .holding
            decision.notification = "hold of \(plan.name) (\(plan.flag)): "
                + healthHold.compactMap(\.check).joined(separator: ", ")
        } else if plan.state == .paused {
            decision.status = .paused
        } else if next == nil {
            decision.status = blockers.isEmpty ? .completed : .blocked
        } else {
            decision.status = .blocked
        }
        decision.record.status = decision.status
        return decision
    }

    private static func nextName(_ plan: Plan, after index: Int?) -> String? {
        let next = index.map { $0 + 1 } ?? 0
        return next < plan.phases.count ? plan.phases[next].name : nil
    }

    /// Environments the plan has reached: those of the current phase's desired state, and any
    /// plan environment the flag has enabled (after a lost state, that is all we know).
    private static func reachedEnvironments(plan: Plan, current: Int?, actual: [String: FlagEnvironmentState]) -> [String] {
        let desired = current.map { plan.desiredState(atPhase: $0) } ?? [:]
        return plan.environments.filter { desired[$0] != nil || (actual[$0].map { $0.enabled || $0.coverage > 0 } ?? false) }
    }

    private static func disable(_ environments: [String], actual: [String: FlagEnvironmentState],
                                reason: Change.Reason) -> [Change] {
        environments.compactMap { environment in
            let from = actual[environment]
            guard !matches(from, .disabled) else { return nil }
            return Change(environment: environment, from: from, to: .disabled, reason: reason)
        }
    }

    /// A disabled flag matches any desired disabled state whatever its stored coverage says.
    public static func matches(_ actual: FlagEnvironmentState?, _ desired: FlagEnvironmentState) -> Bool {
        guard let actual else { return false }
        if !desired.enabled { return !actual.enabled && actual.coverage == 0 }
        return actual.enabled && actual.coverage == desired.coverage
    }

    /// How much traffic sees the flag: 0 when disabled.
    public static func exposure(_ state: FlagEnvironmentState) -> Double {
        state.enabled ? state.coverage : 0
    }
}
