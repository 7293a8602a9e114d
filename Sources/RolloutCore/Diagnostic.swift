/// A problem found in a file of the rollout repository, reported as `path:line:column: message`.
public struct Diagnostic: Error, Equatable, Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The path inside the repository, e.g. `rollouts/exp-001-autosave/plan.json`.
    public var path: String
    /// 1-based line; 1 when the whole file is meant.
    public var line: Int
    /// 1-based column (in characters); 1 when the whole line or file is meant.
    public var column: Int
    public var message: String

    public init(path: String, line: Int = 1, column: Int = 1, message: String) {
        self.path = path
        self.line = line
        self.column = column
        self.message = message
    }

    public var description: String { "\(path):\(line):\(column): \(message)" }

    /// A value echoed in a message, shortened when long: a megabyte-long value must not make a
    /// megabyte-long message. `"999…(200000 characters)"`.
    public static func shortened(_ text: some StringProtocol, limit: Int = 40) -> String {
        text.count > limit ? "\(text.prefix(limit / 2))…(\(text.count) characters)" : String(text)
    }

    public static func < (a: Diagnostic, b: Diagnostic) -> Bool {
        (a.path, a.line, a.column, a.message) < (b.path, b.line, b.column, b.message)
    }
}
