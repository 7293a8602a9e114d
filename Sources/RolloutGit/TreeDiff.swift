import CLibgit2
import Foundation
import RolloutCore

/// One change to a tracked file between two `rollouts` trees.
struct FileChange {
    var path: String
    var blob: ObjectID
    /// The blob before; nil when the file is new.
    var oldBlob: ObjectID?
}

/// The difference between a first-parent commit's `rollouts` tree and its parent's.
enum TreeDiff {
    /// The tracked files of `new` that differ from `old`, and `new` indexed for the next step.
    ///
    /// A merge join over the two trees' raw entries (both in git's order) that skips what they share
    /// without parsing it: the common prefix and suffix of their bytes are found by bulk comparison,
    /// the old tree's entry offsets (known from the previous step) say where the prefix's last whole
    /// entry starts, and the new tree is parsed from there only until both sides reach the same
    /// entry boundary inside the common suffix.
    static func forward(old: IndexedTree?, new newRaw: RawTree, odb: ObjectDatabase) throws(GitError)
        -> (files: [FileChange], indexed: IndexedTree)
    {
        var files: [FileChange] = []
        func report(_ entry: RawTree.Entry, old: RawTree.Entry?) throws(GitError) {
            guard entry.isTree else { return }
            let oldID = old.flatMap { $0.isTree ? $0.id : nil }
            try descend(
                entry.id, oldID, path: RepositoryLayout.rolloutFolder(entry.name), level: 1, odb: odb, into: &files)
        }
        guard let old else {
            let indexed = try IndexedTree(newRaw)
            for index in 0..<(indexed.starts.count - 1) { try report(indexed.entry(index), old: nil) }
            return (files, indexed)
        }
        let oldBytes = old.raw.bytes
        let newBytes = newRaw.bytes
        // Offsets are Int32 (IndexedTree): a tree of 2 GiB or more is an error, not a trap below.
        guard newBytes.count <= Int(Int32.max) else {
            throw GitError(.other, "tree object larger than \(Int32.max) bytes")
        }
        let oldStarts = old.starts
        let oldCount = oldStarts.count - 1
        let newEnd = newBytes.count
        let oldEnd = oldBytes.count
        let prefix = RawTree.commonPrefix(newBytes, oldBytes)
        let suffix = min(RawTree.commonSuffix(newBytes, oldBytes), min(newEnd, oldEnd) - prefix)
        let delta = newEnd - oldEnd
        // The old entries before `low` lie wholly inside the common prefix: the same on both sides.
        var low = 0
        var high = oldCount
        while low < high {
            let middle = (low + high + 1) / 2
            if Int(oldStarts[middle]) <= prefix { low = middle } else { high = middle - 1 }
        }
        var oldIndex = low
        var newOffset = Int(oldStarts[low])
        var newStarts = [Int32](oldStarts[0...low])
        newStarts.reserveCapacity(oldStarts.count + 2)
        while true {
            let oldOffset = Int(oldStarts[oldIndex])
            if newOffset - oldOffset == delta, newEnd - newOffset <= suffix {
                // Both sides at the same boundary with identical bytes to the end: nothing else changed.
                for start in oldStarts[(oldIndex + 1)...] { newStarts.append(start + Int32(delta)) }
                break
            }
            guard newOffset < newEnd else { break }  // only removals are left
            let entry = try RawTree.entry(in: newBytes, at: newOffset)
            if oldIndex < oldCount {
                let oldEntry = try RawTree.entry(in: oldBytes, at: oldOffset)
                let order = RawTree.order(oldEntry, entry)
                if order < 0 {  // removed from the new tree
                    oldIndex += 1
                    continue
                }
                if order == 0 {
                    if !RawTree.sameID(oldEntry, entry) { try report(entry, old: oldEntry) }
                    oldIndex += 1
                } else {
                    try report(entry, old: nil)
                }
            } else {
                try report(entry, old: nil)
            }
            newOffset += entry.bytes.count
            newStarts.append(Int32(newOffset))
        }
        return (files, IndexedTree(raw: newRaw, starts: newStarts))
    }

    /// Compares a rollout folder (level 1), its `approvals` folder (2) or a phase folder (3) of a new
    /// tree with the same path's folder in the old tree (nil when absent), appending changed
    /// tracked files: `plan.json` at level 1, files at level 3.
    private static func descend(
        _ id: ObjectID, _ oldID: ObjectID?, path: String, level: Int, odb: ObjectDatabase,
        into changed: inout [FileChange]
    ) throws(GitError) {
        let tree = try RawTree(odb: odb, id: id)
        let oldTree = try oldID.map { id throws(GitError) in try RawTree(odb: odb, id: id) }
        func visit(_ entry: RawTree.Entry, old: RawTree.Entry?) throws(GitError) {
            if let old, RawTree.sameID(old, entry), old.isTree == entry.isTree { return }
            switch (level, entry.isTree) {
            case (1, true) where entry.hasName(RepositoryLayout.approvalsFolder), (2, true):
                let oldID = old.flatMap { $0.isTree ? $0.id : nil }
                try descend(entry.id, oldID, path: path + "/" + entry.name, level: level + 1, odb: odb, into: &changed)
            case (1, false) where entry.hasName(RepositoryLayout.planFile), (3, false):
                let oldBlob = old.flatMap { $0.isTree ? nil : $0.id }
                changed.append(FileChange(path: path + "/" + entry.name, blob: entry.id, oldBlob: oldBlob))
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
}
