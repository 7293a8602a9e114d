@testable import RolloutCore

/// Durations (`bake`, `--interval`): a parsed duration is within the limit, formats without
/// trapping, and its seconds re-parse to the same duration.
enum DurationTarget: FuzzTarget {
    static let name = "duration"

    static func run(_ bytes: [UInt8]) throws(FuzzViolation) {
        guard let duration = RolloutDuration(parsing: String(decoding: bytes, as: UTF8.self)) else { return }
        try Fuzz.require(
            (0...RolloutDuration.maxSeconds).contains(duration.seconds),
            "\(duration.seconds) s is outside 0...\(RolloutDuration.maxSeconds)")
        _ = duration.description + duration.prometheus
        try Fuzz.require(
            RolloutDuration(parsing: "\(duration.seconds)s") == duration,
            "\(duration.seconds)s does not re-parse")
    }
}
