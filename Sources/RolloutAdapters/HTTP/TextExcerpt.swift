import Foundation

/// A short, single-line excerpt of an answer body for error messages.
enum TextExcerpt {
    static func excerpt(_ text: String, limit: Int = 200) -> String {
        let oneLine = text.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " ")
        let trimmed = oneLine.trimmingCharacters(in: .whitespaces)
        if trimmed.count <= limit { return trimmed }
        return String(trimmed.prefix(limit)) + "…"
    }
}
