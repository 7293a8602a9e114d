/// A duration written as in the plan files: `90s`, `30m`, `24h`, `2d`, or a sum like `1h30m`.
public struct RolloutDuration: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var seconds: Int

    public init(seconds: Int) {
        self.seconds = seconds
    }

    /// The longest duration a file or option may give: 36500 days (100 years). Longer ones are
    /// not durations, so that sums and formats of them can never overflow.
    public static let maxSeconds = 36_500 * 86_400
    public static let maxDescription = "36500d"

    /// Parses `90s`, `30m`, `24h`, `2d`, `1h30m`. Returns nil for anything else, and for more than
    /// `maxSeconds`.
    public init?(parsing text: String) {
        guard let (seconds, overLimit) = Self.sum(text), !overLimit else { return nil }
        self.seconds = seconds
    }

    /// True when `text` is written as a duration but is longer than `maxSeconds`.
    public static func isOverLimit(_ text: String) -> Bool {
        sum(text)?.overLimit ?? false
    }

    private static func sum(_ text: String) -> (seconds: Int, overLimit: Bool)? {
        guard !text.isEmpty else { return nil }
        var total = 0
        var overLimit = false
        var digits = ""
        var sawUnit = false
        for character in text {
            if character.isASCII, character.isNumber {
                digits.append(character)
                continue
            }
            let unit: Int
            switch character {
            case "s": unit = 1
            case "m": unit = 60
            case "h": unit = 3600
            case "d": unit = 86400
            default: return nil
            }
            guard !digits.isEmpty else { return nil }
            // A term of more than 10 significant digits, or a sum past the limit ("999999999d"
            // repeated), is over the limit; the sum stops growing there, so it never overflows.
            let significant = digits.drop(while: { $0 == "0" })
            if significant.count > 10 { overLimit = true }
            if !overLimit {
                let amount = Int(significant) ?? 0  // all zeros: nothing significant
                total += amount * unit
                if total > maxSeconds { overLimit = true }
            }
            digits = ""
            sawUnit = true
        }
        guard digits.isEmpty, sawUnit else { return nil }
        return (total, overLimit)
    }

    /// `13h20m`, `2d4h`, `45s`: the largest two units that are not zero, as people read a countdown.
    public var description: String { Self.format(seconds: seconds) }

    public static func format(seconds: Int) -> String {
        if seconds <= 0 { return "0s" }
        let parts: [(Int, String)] = [(86400, "d"), (3600, "h"), (60, "m"), (1, "s")]
        var rest = seconds
        var out = ""
        var used = 0
        for (size, unit) in parts where used < 2 {
            let amount = rest / size
            if amount > 0 {
                out += "\(amount)\(unit)"
                rest -= amount * size
                used += 1
            } else if used > 0 {
                used += 1  // keep the two units adjacent: 1d0h5m shows as 1d
            }
        }
        return out
    }

    /// A Prometheus range duration (`3600s`), for `{{window}}`.
    public var prometheus: String { "\(max(seconds, 1))s" }
}
