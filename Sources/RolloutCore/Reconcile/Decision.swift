import Foundation

/// A rollout's status, as `plan --json` reports it (SPEC §6).
public enum RolloutStatus: String, Equatable, Sendable {
    case progressing, holding, blocked, completed
    case rolledBack = "rolled-back"
    case paused, aborted, orphaned, invalid
    /// Exposure was lowered outside rolloutctl (SPEC §5.6): nothing is raised until plan.json changes.
    case overridden
}

/// Why the next phase cannot be entered now.
public struct Blocker: Equatable, Sendable {
    public enum Kind: String, Equatable, Sendable {
        case approval, bake, health, state, error
    }

    public var kind: Kind
    public var detail: String
    public var role: String?
    public var phase: String?
    public var remainingSeconds: Int?
    public var check: String?

    public init(
        kind: Kind, detail: String, role: String? = nil, phase: String? = nil,
        remainingSeconds: Int? = nil, check: String? = nil
    ) {
        self.kind = kind
        self.detail = detail
        self.role = role
        self.phase = phase
        self.remainingSeconds = remainingSeconds
        self.check = check
    }
}

/// One environment's change.
public struct Change: Equatable, Sendable {
    public enum Reason: String, Equatable, Sendable {
        case advance, rollback, drift, abort, lower
    }

    public var environment: String
    public var from: FlagEnvironmentState?
    public var to: FlagEnvironmentState
    public var reason: Reason

    public init(environment: String, from: FlagEnvironmentState?, to: FlagEnvironmentState, reason: Reason) {
        self.environment = environment
        self.from = from
        self.to = to
        self.reason = reason
    }
}

/// The result of one health check for the current phase.
public struct HealthResult: Equatable, Sendable {
    public enum Verdict: String, Equatable, Sendable {
        case pass, breach
        case noData = "no-data"
    }

    public var check: HealthCheck
    public var result: MetricResult
    public var environment: String

    public init(check: HealthCheck, result: MetricResult, environment: String) {
        self.check = check
        self.result = result
        self.environment = environment
    }

    public var verdict: Verdict {
        switch result {
        case .value(let value): return check.passes(value) ? .pass : .breach
        case .noData: return .noData
        }
    }

    public var value: Double? {
        if case .value(let value) = result { return value }
        return nil
    }

    public var noDataReason: String? {
        if case .noData(let reason) = result { return reason }
        return nil
    }

    /// `error-rate = 0.031, max 0.02` or `error-rate: no data (prometheus timed out after 5s)`.
    public var summary: String {
        switch result {
        case .value(let value):
            return "\(check.name) = \(formatNumber(value)), \(check.thresholdDescription)"
        case .noData(let reason):
            return "\(check.name): no data (\(reason))"
        }
    }
}

/// What the reconciler remembers about a rollout between runs (the state database's row).
public struct RolloutRecord: Equatable, Sendable {
    /// The phase last entered, by name.
    public var phase: String?
    /// When that phase was entered: bake is measured from here.
    public var enteredAt: Date?
    public var status: RolloutStatus
    /// The plan blob the status was decided on.
    public var planBlob: String?

    public init(phase: String?, enteredAt: Date?, status: RolloutStatus, planBlob: String?) {
        self.phase = phase
        self.enteredAt = enteredAt
        self.status = status
        self.planBlob = planBlob
    }
}

/// The decision for one rollout in one run: what changes, and why; what is blocked, and why.
public struct Decision: Equatable, Sendable {
    public var status: RolloutStatus
    /// The phase in force before this run's changes (SPEC §6).
    public var currentPhase: String?
    /// The phase this run enters, or the one waiting to be entered; nil when none is left.
    public var nextPhase: String?
    public var blockers: [Blocker]
    public var changes: [Change]
    public var health: [HealthResult]
    /// The record to store once every change is applied.
    public var record: RolloutRecord
    /// Set when this run enters a new phase.
    public var advancedTo: String?
    /// Set when a rollback, a hold or an override should be notified.
    public var notification: String?
    /// What the run must do, in order: commit `commitFirst`, apply `steps`, then commit `commitAfter`.
    public var commitFirst: StateCommit? = nil
    /// The flag changes in the order they are applied, each with what its intent records.
    public var steps: [FlagStep] = []
    /// Committed once every step is applied; nil when the stored state stays as it is.
    public var commitAfter: StateCommit? = nil
}
