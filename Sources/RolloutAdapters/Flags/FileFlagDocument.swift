import Foundation
import RolloutCore

/// The `file:` flag store's file: `{"flags": {"<key>": {"version": 3, "environments":
/// {"production": {"enabled": true, "coverage": 10}}}}}`. Foundation-only, so that a fuzz target
/// can feed it any bytes (Fuzz/Targets/FileFlagDocumentTarget.swift).
struct FileFlagDocument: Encodable, Equatable {
    var flags: [String: Flag] = [:]

    struct Flag: Encodable, Equatable {
        /// Raised by one on every write; a file's version is at most 2^53, so it never overflows.
        var version: Int
        var environments: [String: FlagEnvironmentState]
    }

    /// Reads a file and checks what a store write relies on: versions whole numbers from 0 to
    /// 2^53 (raised by one on a write, never overflowing), coverage a number in [0, 100], no key twice.
    static func decode(_ bytes: [UInt8]) throws(InvalidFlagAnswer) -> FileFlagDocument {
        let root = try FlagJSON.members(try FlagJSON.parse(bytes), "the file")
        guard let flagsValue = FlagJSON.field("flags", of: root) else {
            throw InvalidFlagAnswer(detail: "missing field flags")
        }
        var document = FileFlagDocument()
        for member in try FlagJSON.members(flagsValue, "\"flags\"") {
            let fields = try FlagJSON.members(member.value, "flag \(member.key)")
            guard let versionValue = FlagJSON.field("version", of: fields),
                case .number(let number) = versionValue.kind,
                number >= 0, number <= 9_007_199_254_740_992, number == number.rounded()
            else {
                throw InvalidFlagAnswer(
                    "flag \(member.key): \"version\" is not a whole number from 0 to 2^53",
                    at: FlagJSON.field("version", of: fields)?.position ?? member.value.position)
            }
            guard let environments = FlagJSON.field("environments", of: fields) else {
                throw InvalidFlagAnswer("flag \(member.key) has no \"environments\"", at: member.value.position)
            }
            document.flags[member.key] = Flag(
                version: Int(number), environments: try FlagJSON.environments(environments, of: member.key))
        }
        return document
    }
}
