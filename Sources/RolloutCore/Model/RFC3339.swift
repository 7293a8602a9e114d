import Foundation

/// RFC 3339 times in UTC, as `--now` takes and the JSON output gives: the one home of date text
/// (every output, store and fixture formats and parses times here).
public enum RFC3339 {
    /// `2026-02-03T10:00:00Z` (whole seconds, rounded down, as ISO8601DateFormatter writes them).
    public static func format(_ date: Date) -> String {
        // Calendar arithmetic, not a formatter: a run formats and parses thousands of times, and each
        // ISO8601DateFormatter costs an ICU calendar (a third of a no-change reconcile, measured).
        let total = Int(date.timeIntervalSince1970.rounded(.down))
        let days = total >= 0 ? total / 86_400 : (total - 86_399) / 86_400
        let seconds = total - days * 86_400
        let (year, month, day) = civil(fromDays: days)
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let yearText = String(repeating: "0", count: max(0, 4 - String(year).count)) + String(year)
        return
            "\(yearText)-\(two(month))-\(two(day))T\(two(seconds / 3600)):\(two(seconds / 60 % 60)):\(two(seconds % 60))Z"
    }

    /// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's `civil_from_days`).
    static func civil(fromDays days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shifted = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * shifted + 2) / 5 + 1
        let month = shifted < 10 ? shifted + 3 : shifted - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// (year, month, day) → days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
    static func days(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
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
            days(year: number(0..<4), month: number(5..<7), day: number(8..<10)) * 86_400
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
