@testable import RolloutGit

/// The raw tree entry reader (unsafe pointers over the object's bytes): entries tile the bytes
/// exactly, each ends with a 20-byte id, and names, ids and git's order read without trapping.
enum TreeEntriesTarget: FuzzTarget {
    static let name = "tree-entries"

    static func run(_ bytes: [UInt8]) throws(FuzzViolation) {
        try bytes.withUnsafeBytes { (buffer) throws(FuzzViolation) in
            guard let starts = try? IndexedTree.starts(of: buffer) else { return }
            try Fuzz.require(starts.first == 0 && Int(starts.last ?? -1) == buffer.count, "entries do not tile the tree")
            var previous: RawTree.Entry?
            for index in 0..<(starts.count - 1) {
                guard let entry = try? RawTree.entry(in: buffer, at: Int(starts[index])) else {
                    throw FuzzViolation("entry \(index) does not re-read")
                }
                try Fuzz.require(Int(starts[index]) + entry.bytes.count == Int(starts[index + 1]), "entry \(index) size")
                _ = entry.name
                _ = entry.id
                _ = entry.hasName("plan.json")
                if let previous {
                    _ = RawTree.order(previous, entry)
                    _ = RawTree.sameID(previous, entry)
                    _ = RawTree.commonPrefix(previous.bytes, entry.bytes) + RawTree.commonSuffix(previous.bytes, entry.bytes)
                }
                previous = entry
            }
        }
    }
}
