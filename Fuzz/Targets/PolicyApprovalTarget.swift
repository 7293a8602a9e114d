// fuzz-dictionary: json
@testable import RolloutCore

/// `policies/approvals/fuzz.json` (policy approval file),
/// read as `validate` reads it: every diagnostic points inside the file.
enum PolicyApprovalTarget: FuzzTarget {
    static let name = "policy-approval"

    static func run(_ bytes: [UInt8]) throws(FuzzViolation) {
        _ = try Fuzz.loadAlone(path: "policies/approvals/fuzz.json", bytes)
    }
}
