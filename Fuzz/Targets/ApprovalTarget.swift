// fuzz-dictionary: json
@testable import RolloutCore

/// `rollouts/fuzz/approvals/canary/fuzz.json` (approval file),
/// read as `validate` reads it: every diagnostic points inside the file.
enum ApprovalTarget: FuzzTarget {
    static let name = "approval"

    static func run(_ bytes: [UInt8]) throws(FuzzViolation) {
        _ = try Fuzz.loadAlone(path: "rollouts/fuzz/approvals/canary/fuzz.json", bytes)
    }
}
