// fuzz-dictionary: json
@testable import RolloutCore

/// The positional JSON parser: errors point inside the input; a parsed document renders back to
/// JSON (JSONWriter) that parses to the same values.
enum JSONParserTarget: FuzzTarget {
    static let name = "json"

    static func run(_ bytes: [UInt8]) throws(FuzzViolation) {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes)
        } catch {
            try Fuzz.requireInside([(error.position.line, error.position.column, error.message)], bytes)
            return
        }
        var positions: [(line: Int, column: Int, what: String)] = []
        collect(value, into: &positions)
        try Fuzz.requireInside(positions, bytes)
        let rendered = Array(output(value).render().utf8)
        let again: JSONValue
        do {
            again = try JSONParser.parse(rendered)
        } catch {
            throw FuzzViolation("rendered JSON does not parse: \(error.message)")
        }
        try Fuzz.require(same(value, again), "rendered JSON parses to other values")
    }

    static func collect(_ value: JSONValue, into positions: inout [(line: Int, column: Int, what: String)]) {
        positions.append((value.position.line, value.position.column, "a value"))
        switch value.kind {
        case .object(let members):
            for member in members {
                positions.append((member.keyPosition.line, member.keyPosition.column, "key \(member.key)"))
                collect(member.value, into: &positions)
            }
        case .array(let elements):
            for element in elements { collect(element, into: &positions) }
        default: break
        }
    }

    static func output(_ value: JSONValue) -> JSONOutput {
        switch value.kind {
        case .object(let members): return .object(members.map { ($0.key, output($0.value)) })
        case .array(let elements): return .array(elements.map(output))
        case .string(let text): return .string(text)
        case .number(let number): return .number(number)
        case .bool(let flag): return .bool(flag)
        case .null: return .null
        }
    }

    /// Equal values, positions aside.
    static func same(_ a: JSONValue, _ b: JSONValue) -> Bool {
        switch (a.kind, b.kind) {
        case (.object(let x), .object(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && same($0.value, $1.value) }
        case (.array(let x), .array(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { same($0, $1) }
        default:
            return a.kind == b.kind
        }
    }
}
