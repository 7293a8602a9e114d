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
            if cached.entries.count == tracked.count {
                // The same files: the cached scan as it is. Its commits are those of its entries, as
                // in every scan this returns and every cache file ScanCache accepts.
                return (HistoryScan(tip: tipHex, entries: cached.entries, commits: cached.commits), statistics)
            }
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
            found[path] = Found(commit: step.id, blob: blob, rollouts: step.rolloutsID, parentRollouts: parent?.rolloutsID,
                                mergedParents: step.mergedParents)
            let name = rolloutName(of: path)
            pendingRollouts[name, default: 1] -= 1
            if pendingRollouts[name] == 0 { pendingRollouts[name] = nil }
        }

        let odb = try ObjectDatabase(repository)
        let cachedTip = cache.flatMap { ObjectID(hex: $0.tip) }
        var current = try firstParentStep(tipID, odb: odb, statistics: &statistics)
        while !pending.isEmpty {
            if let cached = cache, let cachedTip, current.id == cachedTip {
                // Everything older than here is in the cache, if the cache agrees with this history.
                let consistent = pending.keys.allSatisfy { cached.entries[$0]?.blob == tracked[$0] }
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
            let parent = try firstParentStep(parentID, odb: odb, statistics: &statistics)
            if current.rolloutsID == parent.rolloutsID {
                parent.adoptTree(of: current)  // the same tree: no need to read it again
            } else if let newTree = try current.rolloutsTree(odb) {
                for path in try changedPaths(new: newTree, parent: parent, odb: odb, interesting: pendingRollouts) {
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
            var approval = hit.commit
            var viaMerge = false
            if !hit.mergedParents.isEmpty, let side = try introducer(of: hit, at: path, sides: hit.mergedParents, odb: odb,
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
        result.reserveCapacity(min(entries.count, commits.count))
        for entry in entries.values where result[entry.commit] == nil {
            if let facts = commits[entry.commit] { result[entry.commit] = facts }
        }
        return result
    }

    /// `x` of `rollouts/x/…`.
    private func rolloutName(of path: String) -> String {
        let utf8 = path.utf8
        guard let slash = utf8.firstIndex(of: UInt8(ascii: "/")) else { return "" }
        let start = utf8.index(after: slash)
        let end = utf8[start...].firstIndex(of: UInt8(ascii: "/")) ?? utf8.endIndex
        return String(path[start..<end])
    }

    /// Where a tracked path's current blob was found on the first-parent line.
    struct Found {
        var commit: ObjectID
        var blob: ObjectID
        /// The `rollouts` tree ids of that commit and of its first parent (known to differ at the path).
        var rollouts: ObjectID?
        var parentRollouts: ObjectID?
        /// The commit's parents other than the first (empty unless it is a merge).
        var mergedParents: [ObjectID]
    }

    /// One commit of the first-parent walk: its parents and its `rollouts` tree, read only when it
    /// must be compared, and then kept (with its entries' offsets) for the next comparison, in which
    /// it is the newer side.
    final class FirstParentStep {
        let id: ObjectID
        let firstParent: ObjectID?
        let mergedParents: [ObjectID]
        let rolloutsID: ObjectID?
        fileprivate(set) var tree: IndexedTree?

        init(id: ObjectID, firstParent: ObjectID?, mergedParents: [ObjectID], rolloutsID: ObjectID?) {
            self.id = id
            self.firstParent = firstParent
            self.mergedParents = mergedParents
            self.rolloutsID = rolloutsID
        }

        func rolloutsTree(_ odb: ObjectDatabase) throws(GitError) -> IndexedTree? {
            if tree == nil, let rolloutsID { tree = try IndexedTree(RawTree(odb: odb, id: rolloutsID)) }
            return tree
        }

        func adoptTree(of other: FirstParentStep) {
            if tree == nil { tree = other.tree }
        }

        func release() { tree = nil }
    }

    private func firstParentStep(_ id: ObjectID, odb: ObjectDatabase,
                                 statistics: inout ScanStatistics) throws(GitError) -> FirstParentStep {
        statistics.commitsWalked += 1
        let header = try CommitHeader(odb: odb, id: id)
        return FirstParentStep(id: id, firstParent: header.parents.first, mergedParents: Array(header.parents.dropFirst()),
                               rolloutsID: try rolloutsID(ofTree: header.tree, odb: odb))
    }

    /// The id of a root tree's `rollouts` tree, nil when there is none.
    private func rolloutsID(ofTree treeID: ObjectID, odb: ObjectDatabase) throws(GitError) -> ObjectID? {
        let root = try RawTree(odb: odb, id: treeID)
        var entries = root.entries
        while let entry = try entries.next() {
            guard entry.hasName("rollouts") else { continue }
            return entry.isTree ? entry.id : nil
        }
        return nil
    }

    /// Tracked paths whose blob differs between the `rollouts` trees of a commit (`newTree`) and of
    /// its first parent, looking only into rollouts that still have pending paths. Files absent
    /// from the new tree are not reported. This is the walk's inner loop, run for every
    /// first-parent commit that touched rollouts/.
    ///
    /// A merge join over the two trees' raw entries (both in git's order), which skips what the
    /// trees share without parsing it: the common prefix and suffix of their bytes are found by
    /// bulk comparison, the new tree's entry offsets (known from the previous step) say where the
    /// prefix's last whole entry ends, and the old tree is parsed from there only until both
    /// sides reach the same entry boundary inside the common suffix. The old tree's offsets
    /// follow from the new tree's, and are kept for the next step.
    private func changedPaths(new newTree: IndexedTree, parent: FirstParentStep, odb: ObjectDatabase,
                              interesting: [String: Int]) throws(GitError) -> [String] {
        var changed: [String] = []
        func report(_ entry: RawTree.Entry, old: RawTree.Entry?) throws(GitError) {
            guard entry.isTree else { return }
            let name = entry.name
            guard interesting[name] != nil else { return }
            let oldID = old.flatMap { $0.isTree ? $0.id : nil }
            try descend(entry.id, oldID, path: "rollouts/" + name, level: 1, odb: odb, into: &changed)
        }
        let newBytes = newTree.raw.bytes
        let starts = newTree.starts
        let newEnd = newBytes.count
        let newCount = starts.count - 1
        guard let parentID = parent.rolloutsID else {
            // No rollouts/ before: everything in it is new.
            for index in 0..<newCount { try report(newTree.entry(index), old: nil) }
            return changed
        }
        let oldRaw = try RawTree(odb: odb, id: parentID)
        let oldBytes = oldRaw.bytes
        let oldEnd = oldBytes.count
        let prefix = RawTree.commonPrefix(newBytes, oldBytes)
        let suffix = min(RawTree.commonSuffix(newBytes, oldBytes), min(newEnd, oldEnd) - prefix)
        let delta = oldEnd - newEnd
        // Entries wholly inside the common prefix: the first `index` ones, the same on both sides.
        var low = 0, high = newCount
        while low < high {
            let middle = (low + high + 1) / 2
            if starts[middle] <= prefix { low = middle } else { high = middle - 1 }
        }
        var index = low
        var oldStarts = [Int32](starts[0...index])
        oldStarts.reserveCapacity(starts.count + 2)
        var offset = Int(starts[index])
        var oldEntries = RawTree.Entries(bytes: oldBytes, offset: offset)
        while true {
            let newOffset = Int(starts[index])
            if offset - delta == newOffset, newEnd - newOffset <= suffix {
                // Both sides at the same boundary, with identical bytes to the end: nothing else changed.
                for next in starts[(index + 1)...] { oldStarts.append(next + Int32(delta)) }
                break
            }
            if index == newCount {
                // Only removals are left: not reported, but the old tree's offsets are still wanted.
                while try oldEntries.next() != nil { oldStarts.append(Int32(oldEntries.offset)) }
                break
            }
            let entry = newTree.entry(index)
            guard offset < oldEnd else {
                try report(entry, old: nil)  // added at the end
                index += 1
                continue
            }
            var peek = oldEntries
            let old = try peek.next()!
            let order = RawTree.order(old, entry)
            if order < 0 {  // removed
                oldEntries = peek
                offset = peek.offset
                oldStarts.append(Int32(offset))
                continue
            }
            if order == 0 {
                if !RawTree.sameID(old, entry) { try report(entry, old: old) }
                oldEntries = peek
                offset = peek.offset
                oldStarts.append(Int32(offset))
            } else {
                try report(entry, old: nil)  // added
            }
            index += 1
        }
        parent.tree = IndexedTree(raw: oldRaw, starts: oldStarts)
        return changed
    }

    /// Compares a rollout folder (level 1), its `approvals` folder (2) or a phase folder (3) of a new
    /// tree with the same path's folder in the old tree (nil when absent), appending changed
    /// tracked files: `plan.json` at level 1, files at level 3.
    private func descend(_ id: ObjectID, _ oldID: ObjectID?, path: String, level: Int, odb: ObjectDatabase,
                         into changed: inout [String]) throws(GitError) {
        let tree = try RawTree(odb: odb, id: id)
        let oldTree = try oldID.map { id throws(GitError) in try RawTree(odb: odb, id: id) }
        func visit(_ entry: RawTree.Entry, old: RawTree.Entry?) throws(GitError) {
            if let old, RawTree.sameID(old, entry) { return }
            switch (level, entry.isTree) {
            case (1, true) where entry.hasName("approvals"), (2, true):
                let oldID = old.flatMap { $0.isTree ? $0.id : nil }
                try descend(entry.id, oldID, path: path + "/" + entry.name, level: level + 1, odb: odb, into: &changed)
            case (1, false) where entry.hasName("plan.json"), (3, false):
                changed.append(path + "/" + entry.name)
            default:
                break
            }
        }
        var entries = tree.entries
        var oldEntries = oldTree?.entries ?? RawTree.Entries(bytes: UnsafeRawBufferPointer(start: nil, count: 0))
        var old = try oldEntries.next()
        while let entry = try entries.next() {
            var match: RawTree.Entry?
            while let candidate = old {
                let order = RawTree.order(candidate, entry)
                if order < 0 {
                    old = try oldEntries.next()
                    continue
                }
                if order == 0 {
                    match = candidate
                    old = try oldEntries.next()
                }
                break
            }
            try visit(entry, old: match)
        }
    }

    /// On the merged side(s) of a merge, the oldest commit of the unbroken run (following first
    /// parents) in which `path` holds `blob`. Nil when no side has it (the merge itself made it).
    /// The `rollouts` trees of the merge (which holds the blob) and of its first parent (which
    /// does not) answer without reading those trees again, which is the common case.
    private func introducer(of hit: Found, at path: String, sides: [ObjectID], odb: ObjectDatabase,
                            statistics: inout ScanStatistics) throws(GitError) -> ObjectID? {
        for side in sides {
            var candidate: ObjectID?
            var cursor: ObjectID? = side
            while let id = cursor {
                statistics.commitsWalked += 1
                let header = try CommitHeader(odb: odb, id: id)
                let rollouts = try rolloutsID(ofTree: header.tree, odb: odb)
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
                cursor = header.parents.first
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

/// An object's bytes, read from the object database without libgit2's parsers.
final class RawObject {
    private let object: OpaquePointer
    let bytes: UnsafeRawBufferPointer

    init(odb: ObjectDatabase, id: ObjectID, type: git_object_t) throws(GitError) {
        var raw = id.raw
        var object: OpaquePointer?
        try GitError.check(git_odb_read(&object, odb.handle, &raw), "git_odb_read(\(id))")
        self.object = object!
        guard git_odb_object_type(object) == type else {
            git_odb_object_free(object)
            throw GitError(.other, "object \(id) is not a \(type == GIT_OBJECT_TREE ? "tree" : "commit")")
        }
        bytes = UnsafeRawBufferPointer(start: git_odb_object_data(object), count: git_odb_object_size(object))
    }

    deinit { git_odb_object_free(object) }
}

/// A commit's tree and parents, read from its raw header (`tree <hex>\n`, then `parent <hex>\n`
/// lines), as libgit2's commit parser reads them.
struct CommitHeader {
    var tree: ObjectID
    var parents: [ObjectID]

    init(odb: ObjectDatabase, id: ObjectID) throws(GitError) {
        let object = try RawObject(odb: odb, id: id, type: GIT_OBJECT_COMMIT)
        let bytes = object.bytes
        func hexID(after keyword: StaticString, at offset: Int) -> ObjectID? {
            let length = keyword.utf8CodeUnitCount
            guard offset + length + 41 <= bytes.count, let base = bytes.baseAddress,
                  memcmp(base + offset, keyword.utf8Start, length) == 0,
                  bytes[offset + length + 40] == UInt8(ascii: "\n") else { return nil }
            var oid = git_oid()
            guard git_oid_fromstrn(&oid, (base + offset + length).assumingMemoryBound(to: CChar.self), 40) == 0 else { return nil }
            return ObjectID(oid)
        }
        guard let tree = hexID(after: "tree ", at: 0) else { throw GitError(.other, "malformed commit \(id)") }
        self.tree = tree
        parents = []
        var offset = 46
        while let parent = hexID(after: "parent ", at: offset) {
            parents.append(parent)
            offset += 48
        }
    }
}

/// A tree object's bytes, read without libgit2's tree parser: a sequence of
/// `<octal mode> SP <name> NUL <20-byte id>` entries in git's order.
final class RawTree {
    private let object: RawObject
    var bytes: UnsafeRawBufferPointer { object.bytes }

    init(odb: ObjectDatabase, id: ObjectID) throws(GitError) {
        object = try RawObject(odb: odb, id: id, type: GIT_OBJECT_TREE)
    }

    var entries: Entries { Entries(bytes: bytes) }

    struct Entry {
        /// The whole entry: mode, name and id.
        var bytes: UnsafeRawBufferPointer
        var nameRange: Range<Int>
        var isTree: Bool

        var name: String { String(decoding: bytes[nameRange], as: UTF8.self) }

        func hasName(_ name: StaticString) -> Bool {
            nameRange.count == name.utf8CodeUnitCount
                && memcmp(bytes.baseAddress! + nameRange.lowerBound, name.utf8Start, nameRange.count) == 0
        }

        var idBytes: UnsafeRawPointer { bytes.baseAddress! + (bytes.count - 20) }

        var id: ObjectID {
            var oid = git_oid()
            git_oid_fromraw(&oid, idBytes.assumingMemoryBound(to: UInt8.self))
            return ObjectID(oid)
        }
    }

    struct Entries {
        let bytes: UnsafeRawBufferPointer
        var offset = 0

        init(bytes: UnsafeRawBufferPointer, offset: Int = 0) {
            self.bytes = bytes
            self.offset = offset
        }

        mutating func next() throws(GitError) -> Entry? {
            guard offset < bytes.count, bytes.baseAddress != nil else { return nil }
            let start = offset
            let entry = try RawTree.entry(in: bytes, at: start)
            offset = start + entry.bytes.count
            return entry
        }
    }

    /// The entry starting at `start`.
    static func entry(in bytes: UnsafeRawBufferPointer, at start: Int) throws(GitError) -> Entry {
        let base = bytes.baseAddress!
        let remaining = bytes.count - start
        guard let spacePointer = memchr(base + start, 0x20, min(remaining, 8)) else { throw GitError(.other, "malformed tree object") }
        let space = base.distance(to: UnsafeRawPointer(spacePointer))
        guard let nulPointer = memchr(base + space + 1, 0, bytes.count - space - 1) else {
            throw GitError(.other, "malformed tree object")
        }
        let nul = base.distance(to: UnsafeRawPointer(nulPointer))
        guard nul + 21 <= bytes.count else { throw GitError(.other, "malformed tree object") }
        // Trees are mode 40000 (git writes no leading zero).
        let isTree = space - start == 5 && base.load(fromByteOffset: start, as: UInt8.self) == UInt8(ascii: "4")
            && base.load(fromByteOffset: start + 1, as: UInt8.self) == UInt8(ascii: "0")
        let end = nul + 21
        return Entry(bytes: UnsafeRawBufferPointer(start: base + start, count: end - start),
                     nameRange: (space + 1 - start)..<(nul - start), isTree: isTree)
    }

    /// Same object id.
    static func sameID(_ a: Entry, _ b: Entry) -> Bool {
        memcmp(a.idBytes, b.idBytes, 20) == 0
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

    /// The length of the longest common prefix of two byte sequences.
    static func commonPrefix(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
        let count = min(a.count, b.count)
        guard count > 0 else { return 0 }
        let pa = a.baseAddress!, pb = b.baseAddress!
        var offset = 0
        // Whole chunks by memcmp (vectorised), then the differing chunk word by word and byte by byte.
        let chunk = 256
        while offset + chunk <= count, memcmp(pa + offset, pb + offset, chunk) == 0 { offset += chunk }
        while offset + 8 <= count,
              pa.loadUnaligned(fromByteOffset: offset, as: UInt64.self) == pb.loadUnaligned(fromByteOffset: offset, as: UInt64.self) {
            offset += 8
        }
        while offset < count, pa.load(fromByteOffset: offset, as: UInt8.self) == pb.load(fromByteOffset: offset, as: UInt8.self) {
            offset += 1
        }
        return offset
    }

    /// The length of the longest common suffix of two byte sequences.
    static func commonSuffix(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
        let count = min(a.count, b.count)
        guard count > 0 else { return 0 }
        let endA = a.baseAddress! + a.count, endB = b.baseAddress! + b.count
        var length = 0
        let chunk = 256
        while length + chunk <= count, memcmp(endA - length - chunk, endB - length - chunk, chunk) == 0 { length += chunk }
        while length + 8 <= count,
              (endA - length - 8).loadUnaligned(as: UInt64.self) == (endB - length - 8).loadUnaligned(as: UInt64.self) {
            length += 8
        }
        while length < count, (endA - length - 1).load(as: UInt8.self) == (endB - length - 1).load(as: UInt8.self) {
            length += 1
        }
        return length
    }
}

/// A raw tree with the offsets of its entries (`starts[i]` is where entry `i` begins, and a last
/// element is the tree's size), so that a comparison can skip to any entry.
struct IndexedTree {
    let raw: RawTree
    let starts: [Int32]

    init(raw: RawTree, starts: [Int32]) {
        self.raw = raw
        self.starts = starts
    }

    /// Parses every entry.
    init(_ raw: RawTree) throws(GitError) {
        var starts: [Int32] = [0]
        var entries = raw.entries
        while try entries.next() != nil { starts.append(Int32(entries.offset)) }
        self.raw = raw
        self.starts = starts
    }

    func entry(_ index: Int) -> RawTree.Entry {
        // The offsets come from a successful parse of these bytes.
        try! RawTree.entry(in: raw.bytes, at: Int(starts[index]))
    }
}
