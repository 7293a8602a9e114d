import Foundation

// OpenSSH's reading of `valid-after`/`valid-before` (`parse_absolute_time`, UTC) and the
// times in its messages.

extension AllowedSigners {
    static func iso8601(_ seconds: Int64) -> String { CivilCalendar.iso8601(seconds) }

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
        // CivilCalendar.days is linear in the day, so day 31 of a short month rolls over as in timegm.
        let t =
            CivilCalendar.days(year: values[0], month: values[1], day: values[2]) * 86400 + values[3] * 3600 + values[4]
            * 60 + values[5]
        return t > 0 ? t : nil
    }
}
