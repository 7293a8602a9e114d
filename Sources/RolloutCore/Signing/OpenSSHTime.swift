import Foundation

// OpenSSH's calendar arithmetic for `valid-after`/`valid-before` (`parse_absolute_time`, UTC) and the
// times in its messages.

extension AllowedSigners {
    static func iso8601(_ seconds: Int64) -> String {
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let rem = seconds - days * 86400
        let (y, m, d) = civil(fromDays: days)
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let year =
            y >= 0 && y < 10000
            ? String(repeating: "0", count: max(0, 4 - String(y).count)) + String(y) : String(y)
        return "\(year)-\(two(m))-\(two(d))T\(two(rem / 3600)):\(two(rem % 3600 / 60)):\(two(rem % 60))Z"
    }

    // Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian, UTC).
    static func days(fromCivil y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    static func civil(fromDays z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? yoe + era * 400 + 1 : yoe + era * 400, m, d)
    }

    /// OpenSSH `parse_absolute_time` (glibc `strptime` + `timegm`): YYYYMMDD, YYYYMMDDHHMM or
    /// YYYYMMDDHHMMSS, optionally followed by `Z`/`z` or `UTC` (any case). Out-of-range days
    /// roll over as `timegm` rolls them (Feb 30 is Mar 2). Nil for anything else and for
    /// times not after 1970-01-01T00:00:00Z (OpenSSH rejects 0 and negative). Times without
    /// a suffix are read as UTC (see the note at the top of this file).
    static func parseTime(_ text: String) -> Int64? { parseTime(Array(text.utf8)) }

    static func parseTime(_ input: [UInt8]) -> Int64? {
        var s = input
        if let nul = s.firstIndex(of: 0) { s = Array(s[..<nul]) }
        var l = s.count
        func lower(_ c: UInt8) -> UInt8 { c >= 0x41 && c <= 0x5a ? c + 0x20 : c }
        if l > 1 && lower(s[l - 1]) == UInt8(ascii: "z") {
            l -= 1
        } else if l > 3 && s[(l - 3)...].map(lower) == Array("utc".utf8) {
            l -= 3
        }
        let fields: [(width: Int, min: Int64, max: Int64, digits: Int)]
        switch l {
        case 8: fields = [(4, 0, 9999, 4), (2, 1, 12, 2), (2, 1, 31, 2)]
        case 12: fields = [(4, 0, 9999, 4), (2, 1, 12, 2), (2, 1, 31, 2), (2, 0, 23, 2), (2, 0, 59, 2)]
        case 14: fields = [(4, 0, 9999, 4), (2, 1, 12, 2), (2, 1, 31, 2), (2, 0, 23, 2), (2, 0, 59, 2), (2, 0, 61, 2)]
        default: return nil
        }
        // OpenSSH copies the fields apart with separators ("%.4s-%.2s-%.2sT%.2s:%.2s:%.2s") and
        // strptime reads each number: leading white space skipped, then 1…n digits while the
        // value stays within range; the rest of the field must be the next separator.
        var values: [Int64] = []
        var offset = 0
        for field in fields {
            let piece = Array(s[offset..<offset + field.width])
            offset += field.width
            var i = 0
            while i < piece.count && SSHBase64.isSpace(piece[i]) { i += 1 }
            guard i < piece.count, piece[i] >= 0x30, piece[i] <= 0x39 else { return nil }
            var value: Int64 = 0
            var n = field.digits
            repeat {
                value = value * 10 + Int64(piece[i] - 0x30)
                i += 1
                n -= 1
            } while n > 0 && value * 10 <= field.max && i < piece.count && piece[i] >= 0x30 && piece[i] <= 0x39
            guard value >= field.min, value <= field.max, i == piece.count else { return nil }
            values.append(value)
        }
        while values.count < 6 { values.append(0) }
        // days(fromCivil:) is linear in the day, so day 31 of a short month rolls over as in timegm.
        let t = days(fromCivil: values[0], values[1], values[2]) * 86400 + values[3] * 3600 + values[4] * 60 + values[5]
        return t > 0 ? t : nil
    }
}
