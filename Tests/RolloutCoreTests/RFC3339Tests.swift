import Foundation
import RolloutCore
import Testing

/// `--now` takes RFC 3339 and nothing else: Foundation's parser alone read odd forms as other
/// times (issue 14, found by fuzzing: Fuzz/regressions/rfc3339).
@Suite struct RFC3339Tests {
    @Test func acceptsRFC3339() {
        #expect(RFC3339.parse("2027-01-01T00:00:00Z")?.timeIntervalSince1970 == 1_798_761_600)
        #expect(RFC3339.parse("2027-01-01T02:00:00+02:00")?.timeIntervalSince1970 == 1_798_761_600)
        #expect(RFC3339.parse("2027-01-01T00:00:00.5Z")?.timeIntervalSince1970 == 1_798_761_600.5)
        #expect(RFC3339.parse("2028-02-29T00:00:00Z") != nil)
    }

    @Test func rejectsWhatItWouldMisread() {
        for bad in [
            "0-00011-01T00:00:00Z", "2026-02-30T00:00:00Z", "2027-02-29T00:00:00Z", "2027-01-01T24:00:00Z",
            "2027-01-01T00:00:00+24:00", "2027-01-01T00:00:00.Z", "2027-01-01T00:00:00.1234567890Z",
            "1969-12-31T23:59:59Z", "2027-01-01t00:00:00z", " 2027-01-01T00:00:00Z",
            "2027-01-01T00:00:00Zjunk",
        ] {
            #expect(RFC3339.parse(bad) == nil, "\(bad)")
        }
    }

    /// The calendar arithmetic against Foundation's ISO8601DateFormatter, which it replaced for speed: the same
    /// text for every time, the same time for every text (seeded, 20,000 times each, 1970 to 9999).
    @Test func formatsAndParsesAsFoundationsFormatterDoes() {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        var random = SeededRandom(seed: 20_261_207)
        let last = 253_402_300_799.0  // 9999-12-31T23:59:59Z
        var times = [0, 59, 86_399, 86_400, 951_782_400, 1_798_761_600, last - 1, last]
        for _ in 0..<20_000 { times.append(Double(random.next() % UInt64(last))) }
        for seconds in times {
            let date = Date(timeIntervalSince1970: seconds + 0.75)
            let text = RFC3339.format(date)
            #expect(text == formatter.string(from: date), "\(seconds)")
            #expect(RFC3339.parse(text) == formatter.date(from: text), "\(text)")
            let hours = Int(random.next() % 24)
            let minutes = Int(random.next() % 60)
            let sign = random.next() % 2 == 0 ? "+" : "-"
            let offset = "\(sign)\(hours < 10 ? "0" : "")\(hours):\(minutes < 10 ? "0" : "")\(minutes)"
            let shifted = String(text.dropLast()) + ".\(random.next() % 1000)" + offset
            guard let expected = fractional.date(from: shifted) else { continue }  // outside 1970 … 9999 in UTC
            #expect(RFC3339.parse(shifted) == expected, "\(shifted)")
        }
    }
}

/// SplitMix64: the same numbers on every run.
struct SeededRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
