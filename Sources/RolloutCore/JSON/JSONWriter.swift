/// JSON output with keys in the order written (the order SPEC §6 shows), pretty-printed.
public indirect enum JSONOutput: Equatable, Sendable {
    case object([(String, JSONOutput)])
    case array([JSONOutput])
    case string(String)
    case number(Double)
    case bool(Bool)
    case null

    public static func == (a: JSONOutput, b: JSONOutput) -> Bool { a.render() == b.render() }

    /// An object without the members whose value is nil.
    public static func members(_ pairs: [(String, JSONOutput?)]) -> JSONOutput {
        .object(pairs.compactMap { key, value in value.map { (key, $0) } })
    }

    public func render(indent: Int = 0, pretty: Bool = true) -> String {
        let pad = pretty ? String(repeating: "  ", count: indent + 1) : ""
        let close = pretty ? String(repeating: "  ", count: indent) : ""
        let newline = pretty ? "\n" : ""
        switch self {
        case .object(let members):
            if members.isEmpty { return "{}" }
            let body = members.map {
                "\(pad)\(Self.quote($0.0)):\(pretty ? " " : "")\($0.1.render(indent: indent + 1, pretty: pretty))"
            }
            return "{" + newline + body.joined(separator: "," + newline) + newline + close + "}"
        case .array(let elements):
            if elements.isEmpty { return "[]" }
            let body = elements.map { pad + $0.render(indent: indent + 1, pretty: pretty) }
            return "[" + newline + body.joined(separator: "," + newline) + newline + close + "]"
        case .string(let text):
            return Self.quote(text)
        case .number(let value):
            guard value.isFinite else { return "null" }
            return exactNumberText(value)
        case .bool(let flag):
            return flag ? "true" : "false"
        case .null:
            return "null"
        }
    }

    public static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

extension JSONOutput {
    public static func string(_ text: String?) -> JSONOutput? { text.map { .string($0) } }
    public static func int(_ value: Int) -> JSONOutput { .number(Double(value)) }
}

extension JSONOutput {
    /// A parsed value written back, members in their order (a fixture echoing what it was sent).
    public init(_ value: JSONValue) {
        switch value.kind {
        case .object(let members): self = .object(members.map { ($0.key, JSONOutput($0.value)) })
        case .array(let elements): self = .array(elements.map(JSONOutput.init))
        case .string(let text): self = .string(text)
        case .number(let number): self = .number(number)
        case .bool(let flag): self = .bool(flag)
        case .null: self = .null
        }
    }
}
