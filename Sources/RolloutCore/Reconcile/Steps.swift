import Foundation

/// A state write the run must make: the rollout's record, the audit events that explain it and the
/// notifications it causes, committed in one transaction (SPEC §5.3, §5.10).
public struct StateCommit: Equatable, Sendable {
    public var record: RolloutRecord
    /// True when the record enters a phase (a row of the phase-entry history).
    public var enteredPhase: Bool
    public var events: [AuditEvent]
    public var notifications: [NotificationRequest]

    public init(
        record: RolloutRecord, enteredPhase: Bool = false, events: [AuditEvent] = [],
        notifications: [NotificationRequest] = []
    ) {
        self.record = record
        self.enteredPhase = enteredPhase
        self.events = events
        self.notifications = notifications
    }
}

/// An audit event that is not a flag call: a hold, a rollback decided, an override seen.
public struct AuditEvent: Equatable, Sendable {
    public var reason: String
    public var phase: String?
    public var detail: String

    public init(reason: String, phase: String?, detail: String) {
        self.reason = reason
        self.phase = phase
        self.detail = detail
    }
}

/// A notification to queue in the state's outbox, for the plan's `rollback.notify` names.
public struct NotificationRequest: Equatable, Sendable {
    public var status: RolloutStatus
    public var phase: String?
    public var message: String
    public var checks: [HealthResult]

    public init(status: RolloutStatus, phase: String?, message: String, checks: [HealthResult]) {
        self.status = status
        self.phase = phase
        self.message = message
        self.checks = checks
    }
}

/// One flag change with what its intent records (SPEC §5.10: an intent before the call, a result after).
public struct FlagStep: Equatable, Sendable {
    public var change: Change
    /// The phase the change belongs to: the one entered, or the one in force.
    public var phase: String?
    /// The approvals that allowed it (`role=approver@commit`), for an advance.
    public var approvals: [String]
    /// Health values behind a rollback.
    public var detail: String?

    public init(change: Change, phase: String?, approvals: [String] = [], detail: String? = nil) {
        self.change = change
        self.phase = phase
        self.approvals = approvals
        self.detail = detail
    }
}

/// An intent written by an earlier run that has no result: the run stopped before the answer.
public struct OpenIntent: Equatable, Sendable {
    public var id: Int64
    public var time: Date
    public var phase: String?
    public var environment: String
    public var to: FlagEnvironmentState
    public var reason: String
    public var planBlob: String?

    public init(
        id: Int64, time: Date, phase: String?, environment: String, to: FlagEnvironmentState,
        reason: String, planBlob: String?
    ) {
        self.id = id
        self.time = time
        self.phase = phase
        self.environment = environment
        self.to = to
        self.reason = reason
        self.planBlob = planBlob
    }
}
