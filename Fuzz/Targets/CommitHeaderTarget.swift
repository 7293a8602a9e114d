@testable import RolloutGit

/// The raw commit header reader (unsafe pointers over the object's bytes): any bytes give a
/// header or an error, and the ids read are the hex the header spells.
enum CommitHeaderTarget: FuzzTarget {
    static let name = "commit-header"

    static func run(_ bytes: [UInt8]) throws(FuzzViolation) {
        guard let zero = ObjectID(hex: String(repeating: "0", count: 40)) else { throw FuzzViolation("no zero id") }
        let header = bytes.withUnsafeBytes { try? CommitHeader(bytes: $0, id: zero) }
        guard let header else { return }
        let text = String(decoding: bytes.prefix(45), as: UTF8.self).lowercased()
        try Fuzz.require(text == "tree \(header.tree)", "tree \(header.tree) is not what \(text) says")
        try Fuzz.require(bytes.count >= 46 + 48 * header.parents.count, "more parents than lines")
        for (index, parent) in header.parents.enumerated() {
            let start = 46 + 48 * index + 7
            let spelled = String(decoding: bytes[start..<(start + 40)], as: UTF8.self).lowercased()
            try Fuzz.require(spelled == parent.description, "parent \(parent) is not what \(spelled) says")
        }
    }
}
