// fuzz-dictionary: json
@testable import RolloutCore

/// `policies/health/fuzz.json` (health set file),
/// read as `validate` reads it: every diagnostic points inside the file.
enum HealthSetTarget: FuzzTarget {
    static let name = "health-set"

    static func run(_ bytes: [UInt8]) throws(FuzzViolation) {
        _ = try Fuzz.loadAlone(path: "policies/health/fuzz.json", bytes)
    }
}
