import Foundation
import RolloutCore

/// How a file's current blob reached the first-parent line, as the walk keeps it.
struct FileState: Equatable, Sendable {
    var blob: ObjectID
    /// The merge point M: the first-parent commit where the blob last arrived, and its position.
    var changeIndex: Int
    var changeCommit: ObjectID
    var viaMerge = false
    var approval: Resolution = .unresolved
    /// The blob the merge point's first parent had at this path (known while unresolved; not saved,
    /// since every saved file is resolved).
    var previousBlob: ObjectID?
    /// plan.json only: the commits that changed it since it was created.
    var makers: [Maker] = []
}

/// Rule 4's approval commit, once found.
enum Resolution: Equatable, Sendable {
    case unresolved
    case notFound
    case commit(ObjectID)
}

/// A commit that changed a plan or the policy, and the identity mode in force when it arrived.
struct Maker: Equatable, Sendable {
    var commit: ObjectID
    var signatureMode: Bool
}

struct PolicyPointState: Equatable, Sendable {
    var index: Int
    var commit: ObjectID
    var digest: String
}

/// Everything a walk knows at its tip, enough to continue from there when the branch grows.
public struct WalkState: Sendable {
    /// 2: `seen` holds the payload ids of signed commits too (SPEC §4.0 rule 2).
    static let formatVersion: UInt32 = 2

    var formatVersion = WalkState.formatVersion
    var policyRootOverride: ObjectID?
    /// First-parent commits processed; the next one's index.
    var count = 0
    var tip: ObjectID?
    var tipRollouts: ObjectID?
    var tipPolicies: ObjectID?
    /// Every commit reachable from `tip`, and the payload id of every signed one.
    var seen: Set<ObjectID> = []
    var files: [String: FileState] = [:]
    /// policies/approvals/ files at the tip.
    var policyApprovalFiles: [String: ObjectID] = [:]
    var root: PolicyPointState?
    var inForce: PolicyPointState?
    var inForceSignatureMode = false
    /// The digest of the policy at `tip` (in force or proposed).
    var lastDigest: String?
    var pending: PolicyPointState?
    /// Commits that changed the policy since the policy in force came into force.
    var policyMakers: [Maker] = []
    var facts: [ObjectID: CommitIdentity] = [:]

    init(policyRootOverride: ObjectID?) {
        self.policyRootOverride = policyRootOverride
    }

    /// The tip this state was made at.
    public var tipID: String? { tip?.description }
}
