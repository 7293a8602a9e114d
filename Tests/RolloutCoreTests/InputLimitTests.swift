import Foundation
import Testing

@testable import RolloutCore

/// Values from input that used to trap or grow without bound (issue 14), and the limits that
/// replace them. The fuzz targets (Fuzz/) replay the same inputs; these name each rule.
@Suite struct InputLimitTests {
    /// `formatNumber(1e20)` scaled the value by 1e6 into an Int: a trap while writing the message
    /// "coverage 1e20 is outside 0…100".
    @Test func numbersBeyondIntFormatWithoutTrapping() {
        #expect(formatNumber(1e20) == "1e+20")
        #expect(formatNumber(-1e300) == "-1e+300")
        #expect(formatNumber(2.5e15) == "2500000000000000")
        #expect(formatNumber(12.5) == "12.5")
        #expect(formatNumber(100) == "100")
    }

    /// A sum of terms overflowed Int (110,000 × "999999999d"); the limit is now 36500 days in all.
    @Test func durationsHaveALimit() {
        let huge = String(repeating: "999999999d", count: 110_000)
        #expect(RolloutDuration(parsing: huge) == nil)
        #expect(RolloutDuration.isOverLimit(huge))
        #expect(RolloutDuration(parsing: "36500d")?.seconds == 36_500 * 86_400)
        #expect(RolloutDuration(parsing: "3153600000s")?.seconds == 3_153_600_000)
        #expect(RolloutDuration(parsing: "36500d1s") == nil)
        #expect(RolloutDuration.isOverLimit("36500d1s"))
        #expect(RolloutDuration(parsing: "00000000000000090s")?.seconds == 90)
        #expect(!RolloutDuration.isOverLimit("soon"))
    }

    @Test func bakeOverTheLimitNamesTheLimit() throws {
        let text =
            #"{"apiVersion": "rolloutctl/v1", "name": "r", "flag": "f", "phases": "#
            + #"[{"name": "a", "environment": "e", "coverage": 1, "bake": "40000d"}]}"#
        let sink = DiagnosticSink(path: "plan.json")
        _ = Plan.decode(try JSONParser.parse(Array(text.utf8)), sink: sink)
        #expect(
            sink.diagnostics.map(\.description) == [
                "plan.json:1:127: bake \"40000d\" is longer than the limit of 36500d"
            ])
    }

    /// Times from the state database are input: a corrupt row must not trap in `Int(_:)`.
    @Test func elapsedSecondsClamps() {
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        #expect(elapsedSeconds(from: now.addingTimeInterval(-90), to: now) == 90)
        #expect(elapsedSeconds(from: Date(timeIntervalSince1970: -1e300), to: now) == RolloutDuration.maxSeconds * 10)
        #expect(elapsedSeconds(from: Date(timeIntervalSince1970: .nan), to: now) == 0)
    }

    @Test func longNumbersAreShortenedInMessages() {
        let digits = "1" + String(repeating: "0", count: 100_000)
        let message = "number 10000000000000000000…(100001 characters) is out of range"
        #expect(throws: JSONSyntaxError(position: .start, message: message)) {
            try JSONParser.parse(Array(digits.utf8))
        }
    }
}
