/// Collects every problem in one file, so `validate` reports all of them, not just the first.
public final class DiagnosticSink {
    public let path: String
    public private(set) var diagnostics: [Diagnostic] = []

    public init(path: String) {
        self.path = path
    }

    public func report(_ message: String, at position: SourcePosition) {
        diagnostics.append(Diagnostic(path: path, line: position.line, column: position.column, message: message))
    }

    public func report(_ message: String, at value: JSONValue) {
        report(message, at: value.position)
    }
}

/// Reads the fields of one JSON object, reporting unknown fields, missing fields and wrong types
/// into a sink. Each accessor returns nil after reporting, so callers carry on and find more.
public struct ObjectReader {
    public let value: JSONValue
    public let sink: DiagnosticSink
    private let members: [String: JSONValue.Member]
    /// A phrase naming this object in messages, e.g. "phase \"canary-10\"".
    private let name: String

    /// Returns nil (after reporting) when `value` is not an object. Unknown keys are reported here.
    public init?(_ value: JSONValue, sink: DiagnosticSink, name: String, allowed: [String]) {
        guard case .object(let list) = value.kind else {
            sink.report("\(name) must be an object, found \(value.typeName)", at: value)
            return nil
        }
        self.value = value
        self.sink = sink
        self.name = name
        var members: [String: JSONValue.Member] = [:]
        for member in list {
            members[member.key] = member
            if !allowed.contains(member.key) {
                let hint = Self.closest(to: member.key, in: allowed).map { "; did you mean \"\($0)\"?" } ?? ""
                sink.report("unknown field \"\(member.key)\" in \(name)\(hint)", at: member.keyPosition)
            }
        }
        self.members = members
    }

    public func has(_ key: String) -> Bool { members[key] != nil }

    public subscript(key: String) -> JSONValue? { members[key]?.value }

    private func missing(_ key: String) {
        sink.report("\(name) is missing the required field \"\(key)\"", at: value)
    }

    private func wrongType(_ key: String, expected: String, found: JSONValue) {
        sink.report("\"\(key)\" must be \(expected), found \(found.typeName)", at: found)
    }

    public func string(_ key: String, required: Bool = true) -> (String, SourcePosition)? {
        guard let field = self[key] else {
            if required { missing(key) }
            return nil
        }
        guard case .string(let text) = field.kind else {
            wrongType(key, expected: "a string", found: field)
            return nil
        }
        return (text, field.position)
    }

    public func number(_ key: String, required: Bool = true) -> (Double, SourcePosition)? {
        guard let field = self[key] else {
            if required { missing(key) }
            return nil
        }
        guard case .number(let number) = field.kind else {
            wrongType(key, expected: "a number", found: field)
            return nil
        }
        return (number, field.position)
    }

    public func bool(_ key: String) -> Bool? {
        guard let field = self[key] else { return nil }
        guard case .bool(let flag) = field.kind else {
            wrongType(key, expected: "true or false", found: field)
            return nil
        }
        return flag
    }

    public func array(_ key: String, required: Bool = true) -> [JSONValue]? {
        guard let field = self[key] else {
            if required { missing(key) }
            return nil
        }
        guard case .array(let elements) = field.kind else {
            wrongType(key, expected: "an array", found: field)
            return nil
        }
        return elements
    }

    /// An array of strings; wrong elements are reported one by one and skipped.
    public func strings(_ key: String, required: Bool = true) -> [(String, SourcePosition)]? {
        guard let elements = array(key, required: required) else { return nil }
        var result: [(String, SourcePosition)] = []
        for element in elements {
            guard case .string(let text) = element.kind else {
                sink.report("elements of \"\(key)\" must be strings, found \(element.typeName)", at: element)
                continue
            }
            result.append((text, element.position))
        }
        return result
    }

    /// A string that must be one of `choices`.
    public func choice(_ key: String, _ choices: [String], required: Bool = false) -> (String, SourcePosition)? {
        guard let (text, position) = string(key, required: required) else { return nil }
        guard choices.contains(text) else {
            let list = choices.map { "\"\($0)\"" }.joined(separator: ", ")
            sink.report("\"\(key)\" must be one of \(list), found \"\(text)\"", at: position)
            return nil
        }
        return (text, position)
    }

    /// The allowed key nearest to a typo, when it is close enough to be a likely intent.
    static func closest(to key: String, in allowed: [String]) -> String? {
        let scored = allowed.map { ($0, editDistance(key.lowercased(), $0.lowercased())) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= max(1, best.0.count / 3) else { return nil }
        return best.0
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a)
        let b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}
