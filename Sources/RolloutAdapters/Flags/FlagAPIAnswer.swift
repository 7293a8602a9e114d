import Foundation
import RolloutCore

/// Why a flag service's answer is not what its API promises: the detail a
/// `FlagStoreError.invalidResponse` carries (the store adds the flag and an excerpt of the body).
struct InvalidFlagAnswer: Error, Equatable {
    var detail: String

    /// `detail` on one line and at most 300 characters: keys and values quoted from an answer
    /// can be as long as the answer.
    init(detail: String) {
        self.detail = TextExcerpt.excerpt(detail, limit: 300)
    }

    init(_ detail: String, at position: SourcePosition) {
        self.init(detail: "line \(position.line), column \(position.column): \(detail)")
    }
}

/// Reading the flag stores' JSON with the core's strict parser: positions in every error, a
/// duplicate key refused (which of two values is in force would be a guess), nesting bounded.
enum FlagJSON {
    static func parse(_ bytes: [UInt8]) throws(InvalidFlagAnswer) -> JSONValue {
        do {
            return try JSONParser.parse(bytes)
        } catch {
            throw InvalidFlagAnswer("not JSON: \(error.message)", at: error.position)
        }
    }

    static func members(_ value: JSONValue, _ what: String) throws(InvalidFlagAnswer) -> [JSONValue.Member] {
        guard case .object(let members) = value.kind else {
            throw InvalidFlagAnswer("\(what) is \(value.typeName), not an object", at: value.position)
        }
        return members
    }

    static func field(_ name: String, of members: [JSONValue.Member]) -> JSONValue? {
        members.first { $0.key == name }?.value
    }

    /// `{"production": {"enabled": true, "coverage": 10}, …}`: each coverage a number in [0, 100].
    static func environments(_ value: JSONValue, of flag: String) throws(InvalidFlagAnswer)
        -> [String: FlagEnvironmentState]
    {
        var states: [String: FlagEnvironmentState] = [:]
        for environment in try members(value, "environments of \(flag)") {
            let fields = try members(environment.value, "environment \(environment.key) of \(flag)")
            guard case .bool(let enabled)? = field("enabled", of: fields)?.kind else {
                throw InvalidFlagAnswer(
                    "environment \(environment.key) of \(flag) has no boolean \"enabled\"",
                    at: environment.value.position)
            }
            guard let coverageValue = field("coverage", of: fields), case .number(let coverage) = coverageValue.kind,
                (0...100).contains(coverage)
            else {
                throw InvalidFlagAnswer(
                    "coverage of environment \(environment.key) of \(flag) is not a number "
                        + "in [0, 100]", at: field("coverage", of: fields)?.position ?? environment.value.position)
            }
            states[environment.key] = FlagEnvironmentState(enabled: enabled, coverage: coverage)
        }
        return states
    }
}

/// The flag API's bodies (SPEC §7), both ways: the flag it answers and the PATCH it is sent.
/// Foundation-only, so that a fuzz target can feed it any bytes (Fuzz/Targets/FlagAPIAnswerTarget.swift).
enum FlagAPIAnswer {
    typealias Invalid = InvalidFlagAnswer

    /// The flag in a 200 answer: `{"key": …, "version": 7 | "7", "environments": {"production":
    /// {"enabled": true, "coverage": 10}}}`. The version is the body's, else the ETag's; every
    /// coverage is a number in [0, 100]. Other members are ignored.
    static func snapshot(body: [UInt8], etag: String?, flag: String) throws(Invalid) -> FlagSnapshot {
        let root = try FlagJSON.members(try FlagJSON.parse(body), "the answer")
        var key = flag
        if let value = FlagJSON.field("key", of: root) {
            guard case .string(let text) = value.kind else {
                throw Invalid("\"key\" is \(value.typeName), not a string", at: value.position)
            }
            key = text
        }
        var version: String?
        switch FlagJSON.field("version", of: root) {
        case nil: version = etag.flatMap(Self.version(fromETag:))
        case let value?:
            switch value.kind {
            case .string(let text): version = text
            case .number(let number):
                // An integer as sent (exact beyond 2^53), any other number as the core writes it.
                let text = String(decoding: body[value.byteRange], as: UTF8.self)
                version =
                    text.allSatisfy(\.isNumber) || (text.hasPrefix("-") && text.dropFirst().allSatisfy(\.isNumber))
                    ? text : JSONOutput.number(number).render()
            default:
                throw Invalid("\"version\" is \(value.typeName), not a number or a string", at: value.position)
            }
        }
        guard let version, !version.isEmpty else {
            throw Invalid(detail: "the answer has neither a version nor an ETag")
        }
        guard let environments = FlagJSON.field("environments", of: root) else {
            throw Invalid(detail: "missing field environments")
        }
        return FlagSnapshot(key: key, version: version, environments: try FlagJSON.environments(environments, of: key))
    }

    /// `"7"` for version `7`; a version already quoted (or weak) is sent as it is.
    static func entityTag(_ version: String) -> String {
        if version.hasPrefix("\"") || version.hasPrefix("W/\"") || version == "*" {
            return version
        }
        return "\"\(version)\""
    }

    /// The version inside an ETag: `"7"` → `7`, `W/"7"` → `7`.
    static func version(fromETag etag: String) -> String? {
        var tag = etag.trimmingCharacters(in: .whitespaces)
        if tag.hasPrefix("W/") { tag.removeFirst(2) }
        if tag.count >= 2, tag.hasPrefix("\""), tag.hasSuffix("\"") {
            tag = String(tag.dropFirst().dropLast())
        }
        return tag.isEmpty ? nil : tag
    }

    /// `{"environment":"production","enabled":true,"coverage":50}`; `environment` and
    /// `coverage` are left out when nil; integral coverage is written without ".0".
    static func patchBody(_ patch: FlagPatch) -> String {
        var fields: [(String, JSONOutput)] = []
        if let environment = patch.environment {
            fields.append(("environment", .string(environment)))
        }
        fields.append(("enabled", .bool(patch.enabled)))
        if let coverage = patch.coverage {
            precondition(coverage.isFinite, "coverage must be a finite number")
            fields.append(("coverage", .number(coverage)))
        }
        return JSONOutput.object(fields).render(pretty: false)
    }
}
