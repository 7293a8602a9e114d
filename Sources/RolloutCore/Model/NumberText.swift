// The one home of number text: `50.0` is written `50` everywhere (human output, JSON, fixtures).

/// A whole number without its `.0` (`50.0` → `50`); nil for a fraction, or beyond ±1e15 where a
/// Double no longer holds every integer.
public func wholeNumberText(_ value: Double) -> String? {
    value.rounded() == value && abs(value) < 1e15 ? String(Int64(value)) : nil
}

/// Numbers exactly, as JSON carries them: `50`, `0.1`, `1e+20` (Swift's shortest round-tripping form).
public func exactNumberText(_ value: Double) -> String {
    wholeNumberText(value) ?? "\(value)"
}

/// Numbers as people write them: `10`, `0.02`, `12.5`.
public func formatNumber(_ value: Double) -> String {
    if let whole = wholeNumberText(value) { return whole }
    // Beyond 1e15 (and for what is not finite) scaling by 1e6 would overflow Int: Swift's own form.
    guard value.isFinite, abs(value) < 1e15 else {
        let text = "\(value)"
        return text.hasSuffix(".0") ? String(text.dropLast(2)) : text
    }
    var text = String(format4: value)
    while text.hasSuffix("0") { text.removeLast() }
    if text.hasSuffix(".") { text.removeLast() }
    return text
}

extension String {
    fileprivate init(format4 value: Double) {
        // Up to 6 decimals without Foundation: enough for coverage and ratios.
        let scaled = (value * 1_000_000).rounded()
        let negative = scaled < 0
        let magnitude = Int(abs(scaled))
        let whole = magnitude / 1_000_000
        let fraction = magnitude % 1_000_000
        var digits = String(fraction)
        digits = String(repeating: "0", count: 6 - digits.count) + digits
        self = (negative ? "-" : "") + "\(whole).\(digits)"
    }
}
