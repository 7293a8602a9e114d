import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// ANSI colour, only on a terminal, and never with `--no-color` or `NO_COLOR` set.
public struct Style: Sendable {
    public var enabled: Bool

    public init(enabled: Bool) {
        self.enabled = enabled
    }

    /// Colour for standard output when it is a terminal and nobody asked for none.
    public static func forStandardOutput(noColor: Bool) -> Style {
        let env = ProcessInfo.processInfo.environment
        let disabled = noColor || (env["NO_COLOR"].map { !$0.isEmpty } ?? false) || env["TERM"] == "dumb"
        return Style(enabled: !disabled && isatty(STDOUT_FILENO) == 1)
    }

    private func wrap(_ text: String, _ code: String) -> String {
        enabled ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text
    }

    public func red(_ text: String) -> String { wrap(text, "31") }
    public func green(_ text: String) -> String { wrap(text, "32") }
    public func yellow(_ text: String) -> String { wrap(text, "33") }
    public func bold(_ text: String) -> String { wrap(text, "1") }
    public func dim(_ text: String) -> String { wrap(text, "2") }
}

/// Writes to standard error.
public func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
