import Foundation
import RolloutCore
import RolloutGit

/// An error as a report states it (not a thrown `Error`): a rollout's, the policy's or the run's; a file
/// position when it comes from a file, a message always.
public struct ReportedError: Equatable, Sendable {
    public var path: String?
    public var line: Int?
    public var column: Int?
    public var message: String

    public init(_ diagnostic: Diagnostic) {
        path = diagnostic.path
        line = diagnostic.line
        column = diagnostic.column
        message = diagnostic.message
    }

    public init(message: String) {
        self.message = message
    }

    public var description: String {
        guard let path else { return message }
        return "\(path):\(line ?? 1):\(column ?? 1): \(message)"
    }
}

/// One rollout's part of a plan or reconcile.
public struct RolloutReport: Sendable {
    public var name: String
    public var flag: String?
    public var planBlob: String?
    public var status: RolloutStatus
    public var currentPhase: String?
    public var nextPhase: String?
    public var blockers: [Blocker] = []
    public var approvals: [ApprovalStatus] = []
    public var changes: [Change] = []
    public var health: [HealthResult] = []
    public var errors: [ReportedError] = []
    /// What the flag store saw that widens exposure beyond rolloutctl's own settings (never a blocker).
    public var warnings: [String] = []
    /// For `reconcile`: whether the changes were applied.
    public var applied = false
    /// Each phase not yet entered, projected (SPEC §6); empty when none is left or the plan is invalid.
    public var timeline: [TimelineEntry] = []
    /// The plan decided on (nil when invalid), for `serve`'s pages (phases, panels, description).
    public var plan: Plan?
    /// The flag's environments as the flag store reported them in this run.
    public var actual: [String: FlagEnvironmentState] = [:]
    /// SPEC §5.13 [r3]: the blob of the plan whose checks the state keeps as this rollout's guard (nil: none yet).
    public var guardedBy: String?
    /// Whether the guard applied in this run (the current plan could not be trusted), and what to say about it.
    public var guardNote: String?
}

/// The result of a run.
public struct RunReport: Sendable {
    public var ref: String
    public var revision: String
    public var now: Date
    public var mode: RunMode
    public var rollouts: [RolloutReport]
    /// Problems in `policies/` (they affect every rollout that needs approvals).
    public var policyErrors: [ReportedError]
    /// The policy in force and the proposal waiting for approvals (SPEC §4.3).
    public var policy: PolicyState?

    public var changeCount: Int { rollouts.filter { !$0.changes.isEmpty }.count }
    /// [r3] Problems of the run as a whole that are not the policy's: a state that cannot be written
    /// (SPEC §5.3: the run recorded nothing and only lowered exposure; it exits 1).
    public var runErrors: [ReportedError] = []

    public var errorCount: Int {
        rollouts.filter { !$0.errors.isEmpty }.count + (policyErrors.isEmpty ? 0 : 1) + (runErrors.isEmpty ? 0 : 1)
    }
    public var blockedCount: Int {
        rollouts.filter { $0.changes.isEmpty && $0.errors.isEmpty && !$0.blockers.isEmpty }.count
    }
    public var unchangedCount: Int {
        rollouts.filter { $0.changes.isEmpty && $0.errors.isEmpty && $0.blockers.isEmpty }.count
    }
}
