import Foundation

/// The phase state machine of SPEC §5, as pure code: values in, a decision out.
public enum PhaseMachine {
    public struct Input: Sendable {
        public var plan: Plan
        public var planBlob: String
        /// The approvals found (the audit names those that allowed an advance).
        public var approvals: [ApprovalStatus]
        /// For each phase index, the roles that phase still needs for the current plan blob.
        public var missingRoles: [[String]]
        /// Nil when the state database has no row for this rollout (new, or state lost).
        public var record: RolloutRecord?
        /// The flag's environments as the flag store reports them.
        public var actual: [String: FlagEnvironmentState]
        /// Results of the current phase's checks (empty when none were evaluated).
        public var health: [HealthResult]
        public var now: Date

        public init(
            plan: Plan, planBlob: String, approvals: [ApprovalStatus], missingRoles: [[String]],
            record: RolloutRecord?, actual: [String: FlagEnvironmentState], health: [HealthResult], now: Date
        ) {
            self.plan = plan
            self.planBlob = planBlob
            self.approvals = approvals
            self.missingRoles = missingRoles
            self.record = record
            self.actual = actual
            self.health = health
            self.now = now
        }
    }

    /// The phase in force before this run: the recorded one, or, when the state is lost, the
    /// furthest phase whose desired state the flag already matches (its bake restarts now).
    public static func currentPhase(
        plan: Plan, planBlob: String, record: RolloutRecord?,
        actual: [String: FlagEnvironmentState], now: Date
    ) -> (index: Int?, enteredAt: Date?) {
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

    /// The phase whose health checks this run measures (SPEC §3): the current one, when its coverage is above 0,
    /// unless the rollout is rolled back on this plan or the plan is aborted (nothing is measured then).
    public static func measuredPhase(plan: Plan, planBlob: String, record: RolloutRecord?, current: Int?) -> Int? {
        let rolledBack = record.map { $0.status == .rolledBack && $0.planBlob == planBlob } ?? false
        guard !rolledBack, plan.state != .aborted, needsHealth(plan: plan, phaseIndex: current) else { return nil }
        return current
    }

    /// The health checks of a phase are evaluated whenever its coverage is above 0.
    public static func needsHealth(plan: Plan, phaseIndex: Int?) -> Bool {
        guard let phaseIndex else { return false }
        return plan.phases[phaseIndex].coverage > 0
    }

    public static func decide(_ input: Input) -> Decision {
        var decision = decideChanges(input)
        finish(&decision, input)
        return decision
    }

    /// What every branch of the decision reads: the input and where the rollout stands.
    private struct Situation {
        var input: Input
        var plan: Plan { input.plan }
        /// The phase in force before this run, and when it was entered (`currentPhase`).
        var current: Int?
        var enteredAt: Date?
        var currentName: String? { current.map { plan.phases[$0].name } }
        /// The record was decided on this plan blob.
        var sameBlob: Bool
        /// The environments the plan has reached (`reachedEnvironments`).
        var reached: [String]
        /// The decision before a branch takes it: the current phase kept, progressing.
        var base: Decision
    }

    /// The branches of SPEC §5, in the order they take precedence; the first that decides wins.
    private static func decideChanges(_ input: Input) -> Decision {
        let plan = input.plan
        let (current, enteredAt) = currentPhase(
            plan: plan, planBlob: input.planBlob, record: input.record, actual: input.actual, now: input.now)
        let currentName = current.map { plan.phases[$0].name }
        let situation = Situation(
            input: input, current: current, enteredAt: enteredAt,
            sameBlob: input.record?.planBlob == input.planBlob,
            reached: reachedEnvironments(plan: plan, current: current, actual: input.actual),
            base: Decision(
                status: .progressing, currentPhase: currentName, nextPhase: nextName(plan, after: current),
                blockers: [], changes: [], health: input.health,
                record: RolloutRecord(
                    phase: currentName, enteredAt: enteredAt, status: .progressing, planBlob: input.planBlob),
                advancedTo: nil, notification: nil))
        if plan.state == .aborted { return aborted(situation) }
        if let decision = rolledBack(situation) { return decision }
        let health = healthGate(situation)
        if case .rollback(let decision) = health { return decision }
        let holds = health.holds
        if let decision = overridden(situation, holds: holds) { return decision }
        let edit = editHold(situation)
        if let decision = advance(situation, holds: holds, edit: edit) { return decision }
        return hold(situation, holds: holds, edit: edit)
    }

    /// SPEC §5 rule 5: an aborted plan disables every environment it reached, without approvals.
    private static func aborted(_ s: Situation) -> Decision {
        var decision = s.base
        decision.changes = disable(s.reached, actual: s.input.actual, reason: .abort)
        decision.status = .aborted
        decision.nextPhase = nil
        decision.record.status = .aborted
        decision.blockers = [
            Blocker(kind: .state, detail: "the plan is aborted: every environment it reached is disabled")
        ]
        return decision
    }

    /// Rolled back (SPEC §5 rule 3): it stays so until plan.json changes; "disabled" is re-applied wherever it is
    /// not, so a rollback that failed halfway is finished by a later run, never undone.
    private static func rolledBack(_ s: Situation) -> Decision? {
        guard let record = s.input.record, record.status == .rolledBack, s.sameBlob else { return nil }
        var decision = s.base
        // The phase's own environment (where its health is measured) first, as in the rollback itself.
        let measured = s.current.map { s.plan.phases[$0].environment }
        let ordered = s.reached.filter { $0 == measured } + s.reached.filter { $0 != measured }
        decision.changes = disable(ordered, actual: s.input.actual, reason: .rollback)
        decision.status = .rolledBack
        decision.currentPhase = record.phase
        decision.nextPhase = nil
        decision.record = record
        decision.blockers = [
            Blocker(
                kind: .state,
                detail: "rolled back; it stays so until plan.json changes (then every phase needs fresh approvals)")
        ]
        return decision
    }

    /// What the current phase's health asks: a rollback (the first breach of a rollback check, when automatic),
    /// or the holds it puts on the next phase.
    private enum HealthVerdict {
        case rollback(Decision)
        case holds([Blocker])

        var holds: [Blocker] {
            if case .holds(let blockers) = self { return blockers }
            return []
        }
    }

    /// SPEC §3, §5 rule 3: each result's gate action (`HealthResult.gateAction`, which the backtest replays).
    private static func healthGate(_ s: Situation) -> HealthVerdict {
        let plan = s.plan
        var holds: [Blocker] = []
        for result in s.input.health {
            switch result.gateAction {
            case .ignore:
                continue
            case .rollback where plan.rollback.automatic:
                return .rollback(breach(s, result))
            case .rollback:
                holds.append(
                    Blocker(
                        kind: .health,
                        detail: "\(result.summary) (rollback breach; automatic rollback is off, so holding)",
                        check: result.check.name))
            case .hold:
                holds.append(Blocker(kind: .health, detail: "hold: \(result.summary)", check: result.check.name))
            }
        }
        return .holds(holds)
    }

    /// A breach of a rollback check: every reached environment disabled, the one where it was measured first;
    /// the rolled-back record and its notification committed before the first flag call, so a run that stops
    /// halfway still leaves it rolled back.
    private static func breach(_ s: Situation, _ result: HealthResult) -> Decision {
        let plan = s.plan
        var decision = s.base
        let ordered = s.reached.filter { $0 == result.environment } + s.reached.filter { $0 != result.environment }
        decision.changes = disable(ordered, actual: s.input.actual, reason: .rollback)
        decision.status = .rolledBack
        decision.nextPhase = nil
        decision.record.status = .rolledBack
        decision.blockers = [Blocker(kind: .health, detail: "rollback: \(result.summary)", check: result.check.name)]
        let message = "rollback of \(plan.name) (\(plan.flag)): \(result.summary)"
        decision.notification = message
        decision.commitFirst = StateCommit(
            record: decision.record,
            events: [
                AuditEvent(
                    reason: RolloutStatus.rolledBack.rawValue, phase: s.currentName,
                    detail: "rollback: \(result.summary)")
            ],
            notifications: [
                NotificationRequest(status: .rolledBack, phase: s.currentName, message: message, checks: s.input.health)
            ])
        return decision
    }

    /// Overridden (SPEC §5 rule 6): exposure below the desired state, for the plan it was decided on, was lowered
    /// outside rolloutctl. Nothing is raised until plan.json changes; lowering still applies.
    private static func overridden(_ s: Situation, holds: [Blocker]) -> Decision? {
        let plan = s.plan
        let input = s.input
        guard let record = input.record, s.sameBlob, let current = s.current else { return nil }
        let target = plan.desiredState(atPhase: current)
        let below = plan.environments.filter { environment in
            guard let desired = target[environment] else { return false }
            return (input.actual[environment] ?? .disabled).exposure < desired.exposure
        }
        guard record.status == .overridden || !below.isEmpty else { return nil }
        var decision = s.base
        decision.status = .overridden
        decision.currentPhase = record.phase
        decision.nextPhase = nil
        decision.record = RolloutRecord(
            phase: record.phase, enteredAt: record.enteredAt, status: .overridden, planBlob: input.planBlob)
        for environment in plan.environments {
            guard let desired = target[environment], let from = input.actual[environment],
                from.exposure > desired.exposure
            else { continue }
            decision.changes.append(Change(environment: environment, from: from, to: desired, reason: .drift))
        }
        let described = below.map {
            "\($0) is \(FlagEnvironmentState.describe(input.actual[$0])) (\(plan.phases[current].name) wants "
                + "\(FlagEnvironmentState.describe(target[$0])))"
        }
        let detail =
            "overridden outside rolloutctl"
            + (described.isEmpty ? "" : ": " + described.joined(separator: ", "))
            + "; nothing is raised until plan.json changes"
        decision.blockers = [Blocker(kind: .state, detail: detail)] + holds
        if record.status != .overridden {
            let message = "override of \(plan.name) (\(plan.flag)): \(detail)"
            decision.notification = message
            decision.commitFirst = StateCommit(
                record: decision.record,
                events: [AuditEvent(reason: RolloutStatus.overridden.rawValue, phase: record.phase, detail: detail)],
                notifications: [
                    NotificationRequest(
                        status: .overridden, phase: record.phase, message: message, checks: input.health)
                ])
        }
        return decision
    }

    /// Approvals bind the whole plan (SPEC §5.2 [r2]): one blocker per role still missing in `phases`.
    private static func approvalBlockers(_ s: Situation, _ phases: ClosedRange<Int>, raising: Bool) -> [Blocker] {
        phases.flatMap { index -> [Blocker] in
            let phase = s.plan.phases[index]
            let missing = index < s.input.missingRoles.count ? s.input.missingRoles[index] : []
            return missing.map { role in
                let detail =
                    raising && index == phases.upperBound
                    ? "plan.json changed and raises \(phase.name); it needs an approval from role \(role)"
                    : "\(phase.name) needs an approval from role \(role)"
                        + (raising || index < phases.upperBound ? " for the current plan.json" : "")
                return Blocker(kind: .approval, detail: detail, role: role, phase: phase.name)
            }
        }
    }

    /// What a plan edit leaves in force: the current phase's desired state, held at the actual state where the
    /// edit raises it without the gates of every phase up to it (SPEC §5.2 [r2]).
    private struct EditHold {
        var target: [String: FlagEnvironmentState]
        var planChanged: Bool
        var blockers: [Blocker] = []
        /// The last phase whose gates the blockers already name (-1: none).
        var gatesReported = -1
        var held: Bool { gatesReported >= 0 }
    }

    private static func editHold(_ s: Situation) -> EditHold {
        let input = s.input
        var edit = EditHold(
            target: s.current.map { s.plan.desiredState(atPhase: $0) } ?? [:],
            planChanged: input.record.map { $0.planBlob != input.planBlob } ?? false)
        guard let current = s.current, edit.planChanged else { return edit }
        let raises = edit.target.contains { $0.value.exposure > (input.actual[$0.key] ?? .disabled).exposure }
        let missing = approvalBlockers(s, 0...current, raising: true)
        guard raises, !missing.isEmpty else { return edit }
        for (environment, desired) in edit.target
        where desired.exposure > (input.actual[environment] ?? .disabled).exposure {
            edit.target[environment] = input.actual[environment] ?? .disabled
        }
        edit.blockers = missing
        edit.gatesReported = current
        return edit
    }

    /// The phase after the current one, if the plan has one.
    private static func nextIndex(_ s: Situation) -> Int? {
        let next = s.current.map { $0 + 1 } ?? 0
        return next < s.plan.phases.count ? next : nil
    }

    /// What holds the next phase (SPEC §5 rule 2): health, a pause, the bake and the approvals still missing.
    private static func advanceBlockers(_ s: Situation, next candidate: Int, holds: [Blocker], edit: EditHold)
        -> [Blocker]
    {
        let plan = s.plan
        let phase = plan.phases[candidate]
        var blockers = edit.blockers + holds
        if plan.state == .paused {
            blockers.append(Blocker(kind: .state, detail: "the plan is paused; set \"state\": \"active\" to go on"))
        }
        if let current = s.current, let bake = plan.phases[current].bake, let enteredAt = s.enteredAt {
            let elapsed = elapsedSeconds(from: enteredAt, to: s.input.now)
            if elapsed < bake.seconds {
                let left = bake.seconds - elapsed
                blockers.append(
                    Blocker(
                        kind: .bake,
                        detail: "\(plan.phases[current].name) must bake \(bake) before \(phase.name); "
                            + "\(RolloutDuration.format(seconds: left)) left",
                        phase: phase.name, remainingSeconds: left))
            }
        }
        return blockers + approvalBlockers(s, (edit.gatesReported + 1)...candidate, raising: false)
    }

    /// Advance (SPEC §5 rules 1 and 2): one phase per run, when nothing holds the next one.
    private static func advance(_ s: Situation, holds: [Blocker], edit: EditHold) -> Decision? {
        let plan = s.plan
        let input = s.input
        guard let candidate = nextIndex(s), advanceBlockers(s, next: candidate, holds: holds, edit: edit).isEmpty
        else { return nil }
        let phase = plan.phases[candidate]
        let advanced = plan.desiredState(atPhase: candidate)
        var decision = s.base
        for environment in plan.environments {
            guard let to = advanced[environment] else { continue }
            let from = input.actual[environment]
            guard !matches(from, to) else { continue }
            let reason: Change.Reason =
                edit.target[environment].map { !matches(from, $0) && matches($0, to) } == true ? .drift : .advance
            decision.changes.append(Change(environment: environment, from: from, to: to, reason: reason))
        }
        decision.status = .progressing
        // As in SPEC §6: `currentPhase` is the phase in force now, `nextPhase` the one entered.
        decision.nextPhase = phase.name
        decision.advancedTo = phase.name
        decision.record = RolloutRecord(
            phase: phase.name, enteredAt: input.now, status: .progressing, planBlob: input.planBlob)
        if nextName(plan, after: candidate) == nil && decision.changes.isEmpty { decision.status = .completed }
        return decision
    }

    /// Hold (SPEC §5 rules 4 to 6): no advance; the current phase's desired state is kept (drift corrected, edits
    /// that lower exposure applied), and the status says what holds it.
    private static func hold(_ s: Situation, holds: [Blocker], edit: EditHold) -> Decision {
        let plan = s.plan
        let input = s.input
        var decision = s.base
        let next = nextIndex(s)
        for environment in plan.environments {
            guard let to = edit.target[environment] else { continue }
            let from = input.actual[environment]
            guard !matches(from, to), from != to else { continue }  // held at the actual state: nothing to do
            let reason: Change.Reason =
                edit.planChanged && to.exposure < (from ?? .disabled).exposure ? .lower : .drift
            decision.changes.append(Change(environment: environment, from: from, to: to, reason: reason))
        }
        decision.blockers = next.map { advanceBlockers(s, next: $0, holds: holds, edit: edit) } ?? edit.blockers + holds
        if !holds.isEmpty {
            decision.status = .holding
            decision.notification =
                "hold of \(plan.name) (\(plan.flag)): " + holds.compactMap(\.check).joined(separator: ", ")
        } else if plan.state == .paused {
            decision.status = .paused
        } else if next == nil {
            decision.status = decision.blockers.isEmpty ? .completed : .blocked
        } else {
            decision.status = .blocked
        }
        decision.record.status = decision.status
        if edit.held {
            // The edit is not in force until its gates hold: the record keeps the blob it was decided
            // on, so the next run sees the edit again (and never takes the held state for an override).
            decision.record.planBlob = input.record?.planBlob
        }
        return decision
    }

    /// Turns the decision into the run's steps: the intents of its changes, and the state to
    /// commit after them (nothing when the stored state stays as it is).
    private static func finish(_ decision: inout Decision, _ input: Input) {
        let allowedBy = input.approvals.filter { $0.counted && $0.phase == decision.advancedTo }
            .map { "\($0.role ?? "?")=\($0.approver ?? "?")@\(($0.commit ?? "").prefix(12))" }
        let healthDetail = decision.health.filter { $0.verdict != .pass }.map(\.summary)
        decision.steps = decision.changes.map { change in
            FlagStep(
                change: change, phase: decision.advancedTo ?? decision.currentPhase,
                approvals: change.reason == .advance ? allowedBy : [],
                detail: change.reason == .rollback && !healthDetail.isEmpty
                    ? healthDetail.joined(separator: "; ") : nil)
        }
        // Everything is in the first commit; nothing is left to write after the changes.
        if decision.commitFirst != nil { return }
        let previous = input.record?.status
        var events: [AuditEvent] = []
        var notifications: [NotificationRequest] = []
        // A change's intent carries its own reason; a status without a change (or a hold, whose
        // values the intents do not carry) needs its own event.
        if decision.status != previous, decision.changes.isEmpty || decision.status == .holding,
            [.holding, .completed, .rolledBack, .paused, .aborted].contains(decision.status)
        {
            events.append(
                AuditEvent(
                    reason: decision.status.rawValue, phase: decision.currentPhase,
                    detail: decision.blockers.map(\.detail).joined(separator: "; ")))
        }
        if decision.status == .holding, decision.status != previous, let message = decision.notification {
            notifications.append(
                NotificationRequest(
                    status: .holding, phase: decision.currentPhase, message: message,
                    checks: decision.health))
        }
        let enteredPhase = decision.advancedTo != nil || (input.record == nil && decision.record.phase != nil)
        // A run that changes nothing writes nothing: a cron tick over 1,000 steady rollouts
        // would otherwise cost 1,000 fsync'd transactions.
        if input.record != decision.record || !events.isEmpty || enteredPhase {
            decision.commitAfter = StateCommit(
                record: decision.record, enteredPhase: enteredPhase, events: events,
                notifications: notifications)
        }
    }

    private static func nextName(_ plan: Plan, after index: Int?) -> String? {
        let next = index.map { $0 + 1 } ?? 0
        return next < plan.phases.count ? plan.phases[next].name : nil
    }

    /// Environments the plan has reached: those of the current phase's desired state, and any
    /// plan environment the flag has enabled (after a lost state, that is all we know).
    private static func reachedEnvironments(plan: Plan, current: Int?, actual: [String: FlagEnvironmentState])
        -> [String]
    {
        let desired = current.map { plan.desiredState(atPhase: $0) } ?? [:]
        return plan.environments.filter {
            desired[$0] != nil || (actual[$0].map { $0.enabled || $0.coverage > 0 } ?? false)
        }
    }

    private static func disable(
        _ environments: [String], actual: [String: FlagEnvironmentState],
        reason: Change.Reason
    ) -> [Change] {
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

}
