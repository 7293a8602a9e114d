import CLibgit2
#if canImport(Glibc)
import Glibc
#endif
import RolloutCore

/// Where the current blob of one tracked file came from (SPEC §4.3).
public struct IntroducingCommit: Equatable, Sendable, Codable {
    /// The blob id at the tip.
    public var blob: String
    /// The commit on the protected branch's first-parent line where the blob first appears
    /// (counting from its last addition).
    public var firstParentCommit: String
    /// The approval commit: for a merge, the commit on the merged side that introduced the blob;
    /// otherwise `firstParentCommit` itself.
    public var commit: String
    /// True when `firstParentCommit` is a merge and `commit` was found on its merged side.
    public var viaMerge: Bool

    public init(blob: String, firstParentCommit: String, commit: String, viaMerge: Bool) {
        self.blob = blob
        self.firstParentCommit = firstParentCommit
        self.commit = commit
        self.viaMerge = viaMerge
    }
}

/// The result of a history scan, which is also its cache: keyed by the tip it was made at.
public struct HistoryScan: Equatable, Sendable, Codable {
    public static let formatVersion = 1

    public var formatVersion: Int = HistoryScan.formatVersion
    public var tip: String
    /// Tracked path → where its current blob came from.
    public var entries: [String: IntroducingCommit]
    /// Facts about every commit named in `entries`.
    public var commits: [String: CommitFacts]

    public init(tip: String, entries: [String: IntroducingCommit], commits: [String: CommitFacts]) {
        self.tip = tip
        self.entries = entries
        self.commits = commits
    }
}

/// What a scan did, for the benchmark and for tests of the cache.
public struct ScanStatistics: Equatable, Sendable {
    /// Commits looked up while walking history (first-parent line and merged sides).
    public var commitsWalked = 0
    /// Commits whose author and signature were read.
    public var commitsDescribed = 0
    /// True when a cache was given but did not apply (another history, or inconsistent).
    public var cacheDiscarded = false
    /// True when the walk stopped at the cached tip.
    public var usedCache = false
}

/// Finds approval commits by walking the protected branch's first-parent history, only as far as
/// needed: it stops when every tracked file's introducing commit is known, or at a cached tip.
public struct HistoryScanner {
    let repository: GitRepository

    public init(repository: GitRepository) {
        self.repository = repository
    }

    /// Which paths the scanner follows: plan files and approval files.
    public static func isTracked(_ path: String) -> Bool {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.first == "rollouts" else { return false }
        if parts.count == 3 { return parts[2] == "plan.json" }
        return parts.count == 5 && parts[2] == "approvals"
    }

    /// Scans history for `tracked` (path → blob id at `tip`).
    public func scan(
        tip tipID: ObjectID, tracked: [String: String], cache: HistoryScan?
    ) throws(GitError) -> (HistoryScan, ScanStatistics) {
        var statistics = ScanStatistics()
        var cache = cache
        if let cached = cache, cached.formatVersion != HistoryScan.formatVersion {
            cache = nil
            statistics.cacheDiscarded = true
        }
        let tipHex = tipID.description

        // Nothing new: the cached answer is complete when every tracked blob is in it.
        if let cached = cache, cached.tip == tipHex,
           tracked.allSatisfy({ cached.entries[$0.key]?.blob == $0.value }) {
            statistics.usedCache = true
            let entries = cached.entries.filter { tracked[$0.key] != nil }
            return (HistoryScan(tip: tipHex, entries: entries, commits: relevantCommits(entries, cached.commits)), statistics)
        }

        var pending: [String: ObjectID] = [:]
        for (path, blob) in tracked {
            if let id = ObjectID(hex: blob) { pending[path] = id }
        }
        var pendingRollouts: [String: Int] = [:]
        for path in pending.keys { pendingRollouts[rolloutName(of: path), default: 0] += 1 }
        var found: [String: Found] = [:]
        var fromCache: [String: IntroducingCommit] = [:]

        func resolve(_ path: String, at step: FirstParentStep, parent: FirstParentStep?) {
            guard let blob = pending.removeValue(forKey: path) else { return }
            found[path] = Found(commit: step.id, blob: blob, rollouts: step.rolloutsID, parentRollouts: parent?.rolloutsID)
            let name = rolloutName(of: path)
            pendingRollouts[name, default: 1] -= 1
            if pendingRollouts[name] == 0 { pendingRollouts[name] = nil }
        }

        let odb = try ObjectDatabase(repository)
        let cachedTip = cache.flatMap { ObjectID(hex: $0.tip) }
        var current = try firstParentStep(tipID, statistics: &statistics)
        while !pending.isEmpty {
            if let cached = cache, let cachedTip, current.id == cachedTip {
                // Everything older than here is in the cache, if the cache agrees with this history.
                let consistent = pending.allSatisfy { cached.entries[$0.key]?.blob == $0.value.description }
                if consistent {
                    statistics.usedCache = true
                    for path in pending.keys { fromCache[path] = cached.entries[path] }
                    pending.removeAll()
                    break
                }
                cache = nil
                statistics.cacheDiscarded = true
            }
            guard let parentID = current.firstParent else {
                // The root commit: whatever is still pending was there from the start.
                for path in Array(pending.keys) { resolve(path, at: current, parent: nil) }
                break
            }
            let parent = try firstParentStep(parentID, statistics: &statistics)
            if current.rolloutsID != parent.rolloutsID, let newTree = try current.rolloutsTree(odb) {
                for path in try changedPaths(new: newTree, old: try parent.rolloutsTree(odb),
                                             interesting: pendingRollouts) {
                    resolve(path, at: current, parent: parent)
                }
            }
            current.release()
            current = parent
        }
        if let cached = cache, !statistics.usedCache, cached.tip != tipHex {
            statistics.cacheDiscarded = true  // the cached tip is not on this first-parent line: history was rewritten
        }

        var entries = fromCache
        for (path, hit) in found {
            let parents = try repository.parents(of: hit.commit)
            statistics.commitsWalked += 1
            var approval = hit.commit
            var viaMerge = false
            if parents.count > 1, let side = try introducer(of: hit, at: path, sides: parents.dropFirst(),
                                                           statistics: &statistics) {
                approval = side
                viaMerge = true
            }
            entries[path] = IntroducingCommit(blob: hit.blob.description, firstParentCommit: hit.commit.description,
                                              commit: approval.description, viaMerge: viaMerge)
        }

        var commits = relevantCommits(entries, cache?.commits ?? [:])
        for entry in entries.values where commits[entry.commit] == nil {
            guard let id = ObjectID(hex: entry.commit) else { continue }
            commits[entry.commit] = try repository.commitFacts(id)
            statistics.commitsDescribed += 1
        }
        return (HistoryScan(tip: tipHex, entries: entries, commits: commits), statistics)
    }

    private func relevantCommits(_ entries: [String: IntroducingCommit], _ commits: [String: CommitFacts]) -> [String: CommitFacts] {
        var result: [String: CommitFacts] = [:]
        for entry in entries.values {
            if let facts = commits[entry.commit] { result[entry.commit] = facts }
        }
        return result
    }

    private func rolloutName(of path: String) -> String {
        String(path.split(separator: "/")[1])
    }

    /// Where a tracked path's current blob was found on the first-parent line.
    struct Found {
        var commit: ObjectID
        var blob: ObjectID
        /// The `rollouts` tree ids of that commit and of its first parent (known to differ at the path).
        var rollouts: ObjectID?
        var parentRollouts: ObjectID?
    }

    /// One commit of the first-parent walk: its first parent and its `rollouts` tree, parsed only
    /// when it must be compared, and then kept for the next comparison (as the newer side).
    final class FirstParentStep {
        let id: ObjectID
        let firstParent: ObjectID?
        let rolloutsID: ObjectID?
        private var tree: RawTree?

        init(id: ObjectID, firstParent: ObjectID?, rolloutsID: ObjectID?) {
            self.id = id
            self.firstParent = firstParent
            self.rolloutsID = rolloutsID
        }

        func rolloutsTree(_ odb: ObjectDatabase) throws(GitError) -> RawTree? {
            if tree == nil, let rolloutsID { tree = try RawTree(odb: odb, id: rolloutsID) }
            return tree
        }

        func release() { tree = nil }
    }

    private func firstParentStep(_ id: ObjectID, statistics: inout ScanStatistics) throws(GitError) -> FirstParentStep {
        statistics.commitsWalked += 1
        let commit = try repository.lookupCommit(id)
        defer { git_commit_free(commit) }
        let firstParent = git_commit_parentcount(commit) > 0 ? ObjectID(git_commit_parent_id(commit, 0).pointee) : nil
        return FirstParentStep(id: id, firstParent: firstParent, rolloutsID: try rolloutsID(ofCommit: commit))
    }

    /// The id of a commit's `rollouts` tree, nil when there is none.
    private func rolloutsID(ofCommit commit: OpaquePointer) throws(GitError) -> ObjectID? {
        var tree: OpaquePointer?
        try GitError.check(git_commit_tree(&tree, commit), "git_commit_tree")
        defer { git_tree_free(tree) }
        guard let entry = git_tree_entry_byname(tree, "rollouts"), git_tree_entry_type(entry) == GIT_OBJECT_TREE else { return nil }
        return ObjectID(git_tree_entry_id(entry).pointee)
    }

    /// Tracked paths whose blob differs between two `rollouts` trees, looking only into
    /// rollouts that still have pending paths. Files absent from `new` are not reported.
    /// A merge join over the trees' raw entries (both in git's order): identical entries are
    /// skipped by comparing bytes, and names are decoded for changed entries alone. This is
    /// the walk's inner loop, run for every first-parent commit that touched rollouts/.
    private func changedPaths(new newTree: RawTree, old oldTree: RawTree?,
                              interesting: [String: Int]) throws(GitError) -> [String] {
        var changed: [String] = []
        let empty = RawTree.Entries(bytes: UnsafeRawBufferPointer(start: nil, count: 0))
        var newEntries = newTree.entries
        var oldEntries = oldTree?.entries ?? empty
        var old = try oldEntries.next()
        while let entry = try newEntries.next() {
            var match: RawTree.Entry?
            while let candidate = old {
                if RawTree.same(candidate, entry) {  // same mode, name and id
                    match = candidate
                    break
                }
                let order = RawTree.order(candidate, entry)
                if order < 0 {
                    old = try oldEntries.next()
                    continue
                }
                if order == 0 { match = candidate }
                break
            }
            if match != nil { old = try oldEntries.next() }
            if let match, RawTree.same(match, entry) { continue }
            let name = entry.name
            guard interesting[name] != nil, entry.isTree else { continue }
            let oldID = match.flatMap { $0.isTree ? $0.id : nil }
            try descend(entry.id, oldID, path: "rollouts/" + name, level: 1, into: &changed)
        }
        return changed
    }

    /// Compares one entry of a new tree with the same name's entry of the old tree, descending into
    /// folders along the tracked layout. `level` 1 = rollout folder, 2 = its children,
    /// 3 = phase folders under approvals/, 4 = approval files.
    private func compare(entry: OpaquePointer, old oldEntry: OpaquePointer?, prefix: String, level: Int,
                         into changed: inout [String]) throws(GitError) {
        if let oldEntry, git_oid_equal(git_tree_entry_id(entry), git_tree_entry_id(oldEntry)) != 0 { return }
        let name = String(cString: git_tree_entry_name(entry))
        let path = prefix + name
        let isTree = git_tree_entry_type(entry) == GIT_OBJECT_TREE
        switch (level, isTree) {
        case (1, true), (3, true):
            try descend(entry, oldEntry, path: path, level: level, into: &changed)
        case (2, true) where name == "approvals":
            try descend(entry, oldEntry, path: path, level: level, into: &changed)
        case (2, false) where name == "plan.json", (4, false):
            changed.append(path)
        default:
            break
        }
    }

    private func descend(_ entry: OpaquePointer, _ oldEntry: OpaquePointer?, path: String, level: Int,
                         into changed: inout [String]) throws(GitError) {
        let oldID = oldEntry.flatMap { git_tree_entry_type($0) == GIT_OBJECT_TREE ? ObjectID(git_tree_entry_id($0).pointee) : nil }
        try descend(ObjectID(git_tree_entry_id(entry).pointee), oldID, path: path, level: level, into: &changed)
    }

    private func descend(_ id: ObjectID, _ oldID: ObjectID?, path: String, level: Int,
                         into changed: inout [String]) throws(GitError) {
        let tree = try repository.lookupTree(id)
        defer { git_tree_free(tree) }
        let oldTree = try oldID.map { id throws(GitError) in try repository.lookupTree(id) }
        defer { if let oldTree { git_tree_free(oldTree) } }
        for index in 0..<git_tree_entrycount(tree) {
            guard let child = git_tree_entry_byindex(tree, index) else { continue }
            let oldChild = oldTree.flatMap { git_tree_entry_byname($0, git_tree_entry_name(child)) }
            try compare(entry: child, old: oldChild, prefix: path + "/", level: level + 1, into: &changed)
        }
    }

    /// On the merged side(s) of a merge, the oldest commit of the unbroken run (following first
    /// parents) in which `path` holds `blob`. Nil when no side has it (the merge itself made it).
    /// The `rollouts` trees of the merge (which holds the blob) and of its first parent (which
    /// does not) answer without reading those trees again, which is the common case.
    private func introducer(of hit: Found, at path: String, sides: ArraySlice<ObjectID>,
                            statistics: inout ScanStatistics) throws(GitError) -> ObjectID? {
        for side in sides {
            var candidate: ObjectID?
            var cursor: ObjectID? = side
            while let id = cursor {
                statistics.commitsWalked += 1
                let commit = try repository.lookupCommit(id)
                defer { git_commit_free(commit) }
                let rollouts = try rolloutsID(ofCommit: commit)
                let holdsBlob: Bool
                if rollouts == hit.rollouts {
                    holdsBlob = true
                } else if rollouts == hit.parentRollouts {
                    holdsBlob = false
                } else {
                    holdsBlob = try repository.blobID(atPath: path, inCommit: id) == hit.blob
                }
                guard holdsBlob else { break }
                candidate = id
                cursor = git_commit_parentcount(commit) > 0 ? ObjectID(git_commit_parent_id(commit, 0).pointee) : nil
            }
            if let candidate { return candidate }
        }
        return nil
    }
}

/// The object database of a repository, for raw reads.
final class ObjectDatabase {
    let handle: OpaquePointer

    init(_ repository: GitRepository) throws(GitError) {
        var odb: OpaquePointer?
        try GitError.check(git_repository_odb(&odb, repository.handle), "git_repository_odb")
        handle = odb!
    }

    deinit { git_odb_free(handle) }
}

/// A tree object's bytes, read without libgit2's tree parser: a sequence of
/// `<octal mode> SP <name> NUL <20-byte id>` entries in git's order.
final class RawTree {
    private let object: OpaquePointer
    let bytes: UnsafeRawBufferPointer

    init(odb: ObjectDatabase, id: ObjectID) throws(GitError) {
        var raw = id.raw
        var object: OpaquePointer?
        try GitError.check(git_odb_read(&object, odb.handle, &raw), "git_odb_read(\(id))")
        self.object = object!
        guard git_odb_object_type(object) == GIT_OBJECT_TREE else {
            throw GitError(.other, "object \(id) is not a tree")
        }
        bytes = UnsafeRawBufferPointer(start: git_odb_object_data(object), count: git_odb_object_size(object))
    }

    deinit { git_odb_object_free(object) }

    var entries: Entries { Entries(bytes: bytes) }

    struct Entry {
        /// The whole entry: mode, name and id.
        var bytes: UnsafeRawBufferPointer
        var nameRange: Range<Int>
        var isTree: Bool

        var name: String { String(decoding: bytes[nameRange], as: UTF8.self) }

        var id: ObjectID {
            var oid = git_oid()
            git_oid_fromraw(&oid, bytes.baseAddress!.advanced(by: bytes.count - 20).assumingMemoryBound(to: UInt8.self))
            return ObjectID(oid)
        }
    }

    struct Entries {
        let bytes: UnsafeRawBufferPointer
        var offset = 0

        init(bytes: UnsafeRawBufferPointer) {
            self.bytes = bytes
        }

        mutating func next() throws(GitError) -> Entry? {
            guard offset < bytes.count, let base = bytes.baseAddress else { return nil }
            let start = offset
            let remaining = bytes.count - start
            guard let spacePointer = memchr(base + start, 0x20, remaining) else { throw GitError(.other, "malformed tree object") }
            let space = base.distance(to: UnsafeRawPointer(spacePointer))
            guard let nulPointer = memchr(base + space + 1, 0, bytes.count - space - 1) else {
                throw GitError(.other, "malformed tree object")
            }
            let nul = base.distance(to: UnsafeRawPointer(nulPointer))
            guard nul + 21 <= bytes.count else { throw GitError(.other, "malformed tree object") }
            // Trees are mode 40000 (git writes no leading zero).
            let isTree = space - start == 5 && base.load(fromByteOffset: start, as: UInt8.self) == UInt8(ascii: "4")
                && base.load(fromByteOffset: start + 1, as: UInt8.self) == UInt8(ascii: "0")
            offset = nul + 21
            return Entry(bytes: UnsafeRawBufferPointer(start: base + start, count: offset - start),
                         nameRange: (space + 1 - start)..<(nul - start), isTree: isTree)
        }
    }

    /// Same mode, name and id.
    static func same(_ a: Entry, _ b: Entry) -> Bool {
        a.bytes.count == b.bytes.count && memcmp(a.bytes.baseAddress!, b.bytes.baseAddress!, a.bytes.count) == 0
    }

    /// git's tree order (`base_name_compare`): bytes of the names, a tree's name followed by '/'.
    static func order(_ a: Entry, _ b: Entry) -> Int {
        let nameA = a.bytes.baseAddress! + a.nameRange.lowerBound, nameB = b.bytes.baseAddress! + b.nameRange.lowerBound
        let countA = a.nameRange.count, countB = b.nameRange.count
        let common = min(countA, countB)
        let order = memcmp(nameA, nameB, common)
        if order != 0 { return Int(order) }
        let endA: UInt8 = countA > common ? nameA.load(fromByteOffset: common, as: UInt8.self) : (a.isTree ? UInt8(ascii: "/") : 0)
        let endB: UInt8 = countB > common ? nameB.load(fromByteOffset: common, as: UInt8.self) : (b.isTree ? UInt8(ascii: "/") : 0)
        return Int(endA) - Int(endB)
    }
}
