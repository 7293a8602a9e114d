@testable import RolloutGit

/// The raw tree entry reader (unsafe pointers over the object's bytes): entries tile the bytes
/// exactly, each ends with a 20-byte id, and names, ids and git's order read without trapping.
enum TreeEntriesTarget: FuzzTarget {
    static let name = "tree-entries"

    static func run(_ bytes: [UInt8]) throws(FuzzViolation) {
        let violation: String? = bytes.withUnsafeBytes { buffer in
            guard let starts = try? IndexedTree.starts(of: buffer) else { return nil }
            guard starts.first == 0, Int(starts.last ?? -1) == buffer.count else {
                return "entries do not tile the tree"
            }
            var previous: RawTree.Entry?
            for index in 0..<(starts.count - 1) {
                guard let entry = try? RawTree.entry(in: buffer, at: Int(starts[index])) else {
                    return "entry \(index) does not re-read"
                }
                guard Int(starts[index]) + entry.bytes.count == Int(starts[index + 1]), entry.bytes.count >= 22 else {
                    return "entry \(index) has the wrong size"
                }
                _ = entry.name
                _ = entry.id
                _ = entry.hasName("plan.json")
                if let previous {
                    _ = RawTree.order(previous, entry)
                    _ = RawTree.sameID(previous, entry)
                    _ = RawTree.commonPrefix(previous.bytes, entry.bytes)
                    _ = RawTree.commonSuffix(previous.bytes, entry.bytes)
                }
                previous = entry
            }
            // Offsets past the end are errors, not reads out of bounds.
            if (try? RawTree.entry(in: buffer, at: buffer.count)) != nil { return "an entry past the end" }
            return nil
        }
        if let violation { throw FuzzViolation(violation) }
    }
}
