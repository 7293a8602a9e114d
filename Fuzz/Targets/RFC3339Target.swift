import Foundation

@testable import RolloutCore

/// RFC 3339 times (`--now`): a parsed time formats, and the formatted text parses to the same
/// second.
enum RFC3339Target: FuzzTarget {
    static let name = "rfc3339"

    static func run(_ bytes: [UInt8]) throws(FuzzViolation) {
        guard let date = RFC3339.parse(String(decoding: bytes, as: UTF8.self)) else { return }
        let text = RFC3339.format(date)
        guard let again = RFC3339.parse(text) else { throw FuzzViolation("\(text) does not re-parse") }
        try Fuzz.require(
            abs(again.timeIntervalSince1970 - date.timeIntervalSince1970) < 1,
            "\(text) re-parses to another time")
    }
}
