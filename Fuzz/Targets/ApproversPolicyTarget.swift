// fuzz-dictionary: json
@testable import RolloutCore

/// `policies/approvers.json` (approvers policy),
/// read as `validate` reads it: every diagnostic points inside the file.
enum ApproversPolicyTarget: FuzzTarget {
    static let name = "approvers"

    static func run(_ bytes: [UInt8]) throws(FuzzViolation) {
        _ = try Fuzz.loadAlone(path: "policies/approvers.json", bytes)
    }
}
