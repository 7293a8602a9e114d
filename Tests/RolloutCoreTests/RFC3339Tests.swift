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
}
