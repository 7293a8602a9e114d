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

/// One rollout folder of the tip, decoded.
struct KeptFolder: Equatable, Sendable {
    var tree: ObjectID
    /// The digest of the policy its plan was judged by (the policy in force, SPEC §4.3 [r3]).
    var judge: String
    var rollout: DecodedRollout
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
    /// 3: the first-parent root is kept; `seen` is read as a sorted array (searched, not hashed); facts
    ///    are written in id byte order; the tip's rollout folders are kept decoded (`folders`).
    static let formatVersion: UInt32 = 3

    var formatVersion = WalkState.formatVersion
    var policyRootOverride: ObjectID?
    /// First-parent commits processed; the next one's index.
    var count = 0
    var tip: ObjectID?
    var tipRollouts: ObjectID?
    var tipPolicies: ObjectID?
    /// The oldest commit of the first-parent line (index 0): the repository's identity (SPEC §5.10),
    /// handed over so that a run does not walk the whole line again to find it.
    var firstParentRoot: ObjectID?
    /// Every commit reachable from `tip`, and the payload id of every signed one.
    var seen = SeenSet()
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
    /// The tip's rollout folders as decoded, by name (issue 22): a folder with the same tree id, its plan
    /// judged by the same policy, is not read or decoded again. Content-addressed, so kept whatever the
    /// history: `RepositoryReader` reads and writes it, the walk never looks at it.
    var folders: [String: KeptFolder] = [:]

    init(policyRootOverride: ObjectID?) {
        self.policyRootOverride = policyRootOverride
    }

    /// The tip this state was made at.
    public var tipID: String? { tip?.description }
}

/// The commits a walk has seen. Read from the cache as one sorted array, searched by bisection: a run
/// that walks no new commit, or a few, never hashes the whole history into a set.
struct SeenSet: Sendable {
    /// Sorted in byte order, no duplicates.
    private(set) var base: [ObjectID] = []
    private var added: Set<ObjectID> = []

    init() {}

    /// nil unless `sorted` is strictly increasing in byte order.
    init?(sorted: [ObjectID]) {
        for index in sorted.indices.dropFirst() where !sorted[index - 1].precedes(sorted[index]) { return nil }
        base = sorted
    }

    var count: Int { base.count + added.count }

    func contains(_ id: ObjectID) -> Bool {
        if added.contains(id) { return true }
        var low = 0
        var high = base.count
        while low < high {
            let middle = (low + high) / 2
            if base[middle] == id { return true }
            if base[middle].precedes(id) { low = middle + 1 } else { high = middle }
        }
        return false
    }

    mutating func insert(_ id: ObjectID) {
        if !contains(id) { added.insert(id) }
    }

    /// Every id, in byte order.
    func sorted() -> [ObjectID] {
        guard !added.isEmpty else { return base }
        let extra = added.sorted { $0.precedes($1) }
        var result: [ObjectID] = []
        result.reserveCapacity(base.count + extra.count)
        var i = 0
        var j = 0
        while i < base.count || j < extra.count {
            if j == extra.count || (i < base.count && base[i].precedes(extra[j])) {
                result.append(base[i])
                i += 1
            } else {
                result.append(extra[j])
                j += 1
            }
        }
        return result
    }
}
