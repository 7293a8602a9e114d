import Foundation
import RolloutCore

/// What a history walk found: how each tracked file reached the protected branch, every change of
/// each plan, and the policy in force (SPEC §4.1, §4.3).
public struct HistoryIndex: Sendable {
    /// The tip the walk ended at.
    public var tip: String
    /// Approval files (of rollouts and of the policy): how their current blob arrived.
    public var evidence: [String: ApprovalEvidence]
    /// plan.json files: where they took their current content, and who changed them since creation.
    public var planHistories: [String: ContentHistory]
    public var policy: PolicyState
}

/// A policy and where it stands on the first-parent line.
public struct PolicyPoint: Equatable, Sendable {
    public var commit: String
    public var digest: String

    public init(commit: String, digest: String) {
        self.commit = commit
        self.digest = digest
    }
}

/// The policy in force at the tip, and the proposal waiting for approvals (SPEC §4.3).
public struct PolicyState: Sendable {
    /// The root of trust: the first first-parent commit holding policies/approvers.json (or the
    /// commit `init --policy-root` named).
    public var root: PolicyPoint?
    public var inForce: PolicyPoint?
    /// The policy in force, decoded (its roles, identity mode, signers, health sets, floors).
    public var inForceSet: PolicySet?
    public var pending: PendingPolicy?

    public struct PendingPolicy: Sendable {
        public var point: PolicyPoint
        /// Roles of the policy in force's `policyApprovals` that no counted approval fills yet.
        public var missing: [String]
        public var approvals: [ApprovalStatus]
    }

    /// The approvals authority of the policy in force.
    public var authority: ApprovalAuthority {
        ApprovalAuthority(policy: inForceSet?.approvers, signers: inForceSet?.allowedSigners)
    }
}

/// What a walk did, for the benchmark and for tests of the cache.
public struct ScanStatistics: Equatable, Sendable {
    /// Commits read while walking history (first-parent line and merged sides).
    public var commitsWalked = 0
    /// Commits whose author and signature were read.
    public var commitsDescribed = 0
    /// True when a cache was given but did not apply (another history, or inconsistent).
    public var cacheDiscarded = false
    /// True when the walk started from a cached state.
    public var usedCache = false
    /// Rollout folders of the tip listed and decoded (the others were taken as decoded from the cache).
    public var foldersRead = 0

    public init() {}
}

/// Which paths of `rollouts/` the walk follows (plan files and approval files): `RepositoryLayout.isTracked`.
public typealias TrackedPaths = RepositoryLayout
