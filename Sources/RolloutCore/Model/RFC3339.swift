import Foundation

/// RFC 3339 times in UTC, as `--now` takes and the JSON output gives: the one home of date text
/// (every output, store and fixture formats and parses times here).
public enum RFC3339 {
    /// `2026-02-03T10:00:00Z` (whole seconds, rounded down, as ISO8601DateFormatter writes them).
    public static func format(_ date: Date) -> String {
        // Calendar arithmetic, not a formatter: each ISO8601DateFormatter costs an ICU calendar (a third of a
        // no-change reconcile of 1,000 rollouts, measured).
        CivilCalendar.iso8601(Int64(date.timeIntervalSince1970.rounded(.down)))
    }

    /// `2026-02-03 10:00 UTC`: minutes are what people plan with (the human output and the status page).
    public static func minutes(_ date: Date) -> String {
        // `YYYY-MM-DDTHH:MM:SSZ` for the years 1970 to 9999 that times here have.
        let full = format(date)
        return String(full.prefix(10)) + " " + String(full.dropFirst(11).prefix(5)) + " UTC"
    }

    /// A time `--now` and the stores accept; nil for anything but well-formed RFC 3339.
    public static func parse(_ text: String) -> Date? {
        guard isWellFormed(text) else { return nil }
        let b = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int {
            b[range].reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        }
        var seconds =
            Int(CivilCalendar.days(year: Int64(number(0..<4)), month: Int64(number(5..<7)), day: Int64(number(8..<10))))
            * 86_400
            + number(11..<13) * 3600 + number(14..<16) * 60 + number(17..<19)
        var index = 19
        var fraction = 0.0
        if b[index] == UInt8(ascii: ".") {
            var scale = 0.1
            index += 1
            while index < b.count, b[index] >= UInt8(ascii: "0"), b[index] <= UInt8(ascii: "9") {
                fraction += Double(b[index] - UInt8(ascii: "0")) * scale
                scale /= 10
                index += 1
            }
            // Milliseconds, as ISO8601DateFormatter reads a fraction.
            fraction = (fraction * 1000).rounded(.down) / 1000
        }
        if b[index] != UInt8(ascii: "Z") {
            let offset = number((index + 1)..<(index + 3)) * 3600 + number((index + 4)..<(index + 6)) * 60
            seconds += b[index] == UInt8(ascii: "+") ? -offset : offset
        }
        return Date(timeIntervalSince1970: Double(seconds) + fraction)
    }

    /// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` with a real calendar date, years 1970 to 9999.
    /// ISO8601DateFormatter alone reads odd forms as other times (`0-00011-01T00:00:00Z` as
    /// 0001-11-01, found by fuzzing; `2026-02-30` as March 2): they are errors here.
    static func isWellFormed(_ text: String) -> Bool {
        let b = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= b.count else { return nil }
            var value = 0
            for byte in b[range] {
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            return value
        }
        func byte(_ index: Int, _ expected: Character) -> Bool {
            index < b.count && b[index] == expected.asciiValue
        }
        guard let year = number(0..<4), byte(4, "-"), let month = number(5..<7), byte(7, "-"),
            let day = number(8..<10), byte(10, "T"), let hour = number(11..<13), byte(13, ":"),
            let minute = number(14..<16), byte(16, ":"), let second = number(17..<19),
            (1970...9999).contains(year), (1...12).contains(month), hour <= 23, minute <= 59, second <= 59
        else { return false }
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
        guard (1...days).contains(day) else { return false }
        var index = 19
        if byte(index, ".") {
            let start = index + 1
            index = start
            while number(index..<(index + 1)) != nil { index += 1 }
            guard (1...9).contains(index - start) else { return false }
        }
        if byte(index, "Z") { return index + 1 == b.count }
        guard byte(index, "+") || byte(index, "-"), b.count == index + 6,
            let offsetHours = number((index + 1)..<(index + 3)), byte(index + 3, ":"),
            let offsetMinutes = number((index + 4)..<(index + 6))
        else { return false }
        return offsetHours <= 23 && offsetMinutes <= 59
    }
}
