@testable import RolloutGit

/// The raw commit header reader (unsafe pointers over the object's bytes): any bytes give a
/// header or an error, and the ids read are the hex the header spells.
enum CommitHeaderTarget: FuzzTarget {
    static let name = "commit-header"

    static func run(_ bytes: [UInt8]) throws(FuzzViolation) {
        let zero = ObjectID(git_oid())
        try bytes.withUnsafeBytes { (buffer) throws(FuzzViolation) in
            guard let header = try? CommitHeader(bytes: buffer, id: zero) else { return }
            let text = String(decoding: bytes.prefix(45), as: UTF8.self).lowercased()
            try Fuzz.require(text == "tree \(header.tree)", "tree \(header.tree) is not what \(text) says")
            try Fuzz.require(bytes.count >= 46 + 48 * header.parents.count, "more parents than lines")
        }
    }
}
