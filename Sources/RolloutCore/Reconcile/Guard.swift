import Foundation

/// SPEC §5 rule 13 [r3], the guard: what keeps a live rollout safe when its current plan cannot be trusted.
/// The state keeps, per rollout, the flag and the `rollback` and `notify` checks (health sets expanded,
/// queries as text) of the latest plan whose gates held for every phase up to the current one.
public struct RolloutGuard: Equatable, Sendable {
    /// The blob of the plan the guard was taken from (`guarded by the checks of plan 40ec628`).
    public var planBlob: String
    public var flag: String
    /// The phase in force when the guard was taken, and its environment (where its checks are measured).
    public var phase: String?
    public var environment: String?
    /// Every environment that plan had reached: a guarded rollback disables them all.
    public var environments: [String]
    /// The plan's `rollback.automatic` and `rollback.notify`.
    public var automatic: Bool
    public var notify: [String]
    /// The plan's `rollback` and `notify` checks; `hold` checks raise nothing and guard nothing.
    public var checks: [HealthCheck]

    public init(
        planBlob: String, flag: String, phase: String?, environment: String?, environments: [String],
        automatic: Bool, notify: [String], checks: [HealthCheck]
    ) {
        self.planBlob = planBlob
        self.flag = flag
        self.phase = phase
        self.environment = environment
        self.environments = environments
        self.automatic = automatic
        self.notify = notify
        self.checks = checks
    }
}

/// The rules of the guard (SPEC §5 rule 13): when one is taken, and what it decides.
public enum GuardRules {
    /// The guard a trusted run keeps for a valid plan: nil while the gates of some phase up to the current one
    /// do not hold for this plan (an edit not approved again keeps the guard it had), or before phase 0.
    public static func guardToKeep(
        plan: Plan, planBlob: String, checks: [HealthCheck], current: Int?, missingRoles: [[String]]
    ) -> RolloutGuard? {
        guard let current, plan.state != .aborted, gatesHeld(current: current, missingRoles: missingRoles) else {
            return nil
        }
        let desired = plan.desiredState(atPhase: current)
        return RolloutGuard(
            planBlob: planBlob, flag: plan.flag, phase: plan.phases[current].name,
            environment: plan.phases[current].environment,
            environments: plan.environments.filter { desired[$0] != nil }, automatic: plan.rollback.automatic,
            notify: plan.rollback.notify, checks: checks.filter { $0.onBreach != .hold })
    }

    /// Whether the current plan's gates hold for every phase up to `current` (rule 2): when they do not,
    /// the plan was edited and is not yet approved again, and its guard applies beside its own checks.
    public static func gatesHeld(current: Int?, missingRoles: [[String]]) -> Bool {
        guard let current else { return true }
        return !(0...current).contains { $0 < missingRoles.count && !missingRoles[$0].isEmpty }
    }

    /// What the guard decides for a rollout whose current plan cannot be trusted: a breach of a `rollback`
    /// check (or no data where it rolls back) disables every environment the guarded plan reached, the
    /// measured one first, and marks the rollout rolled back for `currentBlob` (so it stays so until plan.json
    /// changes); an earlier guarded rollback is finished wherever it is not. Nothing is ever raised.
    /// - Parameters:
    ///   - why: why the current plan is not trusted, for the blockers (`the plan is invalid`).
    ///   - currentBlob: the blob of the plan.json at the tip, nil when there is none (orphaned).
    public static func decide(
        guard kept: RolloutGuard, record: RolloutRecord?, currentBlob: String?, status: RolloutStatus,
        actual: [String: FlagEnvironmentState], health: [HealthResult], why: String
    ) -> Decision? {
        let guardedBy = "guarded by the checks of plan \(kept.planBlob.prefix(7))"
        if let record, record.status == .rolledBack, record.planBlob == currentBlob {
            var decision = Decision(
                status: .rolledBack, currentPhase: record.phase, nextPhase: nil,
                blockers: [
                    Blocker(kind: .state, detail: "rolled back (\(guardedBy)); it stays so until plan.json changes")
                ],
                changes: disable(kept.environments, measured: kept.environment, actual: actual), health: health,
                record: record, advancedTo: nil, notification: nil)
            decision.steps = decision.changes.map { FlagStep(change: $0, phase: record.phase) }
            return decision
        }
        if let result = rollbackBreach(guard: kept, health: health) {
            let phase = record?.phase ?? kept.phase
            let newRecord = RolloutRecord(
                phase: phase, enteredAt: record?.enteredAt, status: .rolledBack, planBlob: currentBlob)
            let message = "rollback of \(kept.flag) (\(guardedBy); \(why)): \(result.summary)"
            var decision = Decision(
                status: .rolledBack, currentPhase: phase, nextPhase: nil,
                blockers: [
                    Blocker(
                        kind: .health, detail: "rollback: \(result.summary) (\(guardedBy))", check: result.check.name)
                ],
                changes: disable(kept.environments, measured: result.environment, actual: actual), health: health,
                record: newRecord, advancedTo: nil, notification: message)
            decision.commitFirst = StateCommit(
                record: newRecord,
                events: [
                    AuditEvent(
                        reason: RolloutStatus.rolledBack.rawValue, phase: phase,
                        detail: "rollback: \(result.summary) (\(guardedBy); \(why))")
                ],
                notifications: [
                    NotificationRequest(status: .rolledBack, phase: phase, message: message, checks: health)
                ])
            decision.steps = decision.changes.map {
                FlagStep(change: $0, phase: phase, detail: "\(result.summary) (\(guardedBy))")
            }
            return decision
        }
        return nil
    }

    /// The first result of a guard's checks that rolls back (a `rollback` breach, or no data where such a check
    /// rolls back), when the guarded plan rolls back automatically.
    public static func rollbackBreach(guard kept: RolloutGuard, health: [HealthResult]) -> HealthResult? {
        guard kept.automatic else { return nil }
        return health.first { result in
            switch result.verdict {
            case .pass: return false
            case .breach: return result.check.onBreach == .rollback
            case .noData: return result.check.onBreach == .rollback && result.check.onNoData == .rollback
            }
        }
    }

    private static func disable(
        _ environments: [String], measured: String?, actual: [String: FlagEnvironmentState]
    ) -> [Change] {
        let ordered = environments.filter { $0 == measured } + environments.filter { $0 != measured }
        return ordered.compactMap { environment in
            let from = actual[environment]
            guard !PhaseMachine.matches(from, .disabled) else { return nil }
            return Change(environment: environment, from: from, to: .disabled, reason: .rollback)
        }
    }

    // MARK: Kept in the state as JSON

    /// The state's key for a rollout's guard.
    public static func key(rollout: String) -> String { keyPrefix + rollout }
    public static let keyPrefix = "guard/"

    public static func encode(_ kept: RolloutGuard) -> String {
        JSONOutput.members([
            ("planBlob", .string(kept.planBlob)), ("flag", .string(kept.flag)),
            ("phase", kept.phase.map(JSONOutput.string)), ("environment", kept.environment.map(JSONOutput.string)),
            ("environments", .array(kept.environments.map(JSONOutput.string))),
            ("automatic", .bool(kept.automatic)), ("notify", .array(kept.notify.map(JSONOutput.string))),
            (
                "checks",
                .array(
                    kept.checks.map { check in
                        JSONOutput.members([
                            ("name", .string(check.name)), ("query", .string(check.query)),
                            ("min", check.min.map(JSONOutput.number)), ("max", check.max.map(JSONOutput.number)),
                            ("onBreach", .string(check.onBreach.rawValue)),
                            ("onNoData", .string(check.onNoData.rawValue)),
                        ])
                    })
            ),
        ]).render(pretty: false)
    }

    /// Reads a kept guard; nil when the text is not one (a damaged value guards nothing, and says so in `plan`).
    public static func decode(_ text: String) -> RolloutGuard? {
        guard let value = try? JSONParser.parse(Array(text.utf8)), case .object(let members) = value.kind else {
            return nil
        }
        func member(_ name: String) -> JSONValue? { members.first { $0.key == name }?.value }
        func string(_ value: JSONValue?) -> String? {
            if case .string(let text)? = value?.kind { return text }
            return nil
        }
        func strings(_ value: JSONValue?) -> [String]? {
            guard case .array(let elements)? = value?.kind else { return nil }
            let texts = elements.compactMap { string($0) }
            return texts.count == elements.count ? texts : nil
        }
        guard let planBlob = string(member("planBlob")), let flag = string(member("flag")),
            let environments = strings(member("environments")), let notify = strings(member("notify")),
            case .bool(let automatic)? = member("automatic")?.kind,
            case .array(let checkValues)? = member("checks")?.kind
        else { return nil }
        let sink = DiagnosticSink(path: "guard")
        let checks = Plan.decodeChecks(checkValues, sink: sink)
        guard sink.diagnostics.isEmpty, checks.count == checkValues.count else { return nil }
        return RolloutGuard(
            planBlob: planBlob, flag: flag, phase: string(member("phase")),
            environment: string(member("environment")), environments: environments, automatic: automatic,
            notify: notify, checks: checks)
    }
}
