// fuzz-dictionary: json
// fuzz-module RolloutAdapters: Sources/RolloutAdapters/Flags/FlagdFlagStore.swift
// fuzz-module RolloutAdapters: Sources/RolloutAdapters/Flags/AnsweredFlag.swift Sources/RolloutAdapters/HTTP/TextExcerpt.swift
// fuzz-module RolloutAdapters: Sources/RolloutAdapters/FileLock.swift Sources/RolloutAdapters/AtomicFile.swift
@testable import RolloutAdapters
@testable import RolloutCore

/// A flagd flag-definition file: any bytes give each flag's state or an error whose position
/// lies inside the file. Every flag rolloutctl can read, it can set to 0, 10, 33.3 and 100%:
/// the edit reads back as that coverage, and every other flag's bytes stay as they were.
enum FlagdFileTarget: FuzzTarget {
    static let name = "flagd-file"

    static func run(_ bytes: [UInt8]) throws(FuzzViolation) {
        let root: JSONValue
        do {
            root = try FlagdFlagStore.parse(bytes, path: "f.json")
        } catch {
            try requirePositionInside(error, bytes)
            return
        }
        guard case .object(let top) = root.kind, let flags = top.first(where: { $0.key == "flags" })?.value,
            case .object(let members) = flags.kind
        else { return }
        for member in members.prefix(4) {
            let shape: FlagdFlagStore.Shape
            do {
                shape = try FlagdFlagStore.interpret(member, flag: member.key, path: "f.json")
            } catch {
                try requirePositionInside(error, bytes)
                continue
            }
            try Fuzz.require((0...100).contains(shape.current.coverage), "coverage \(shape.current.coverage)")
            let others = members.filter { $0.key != member.key }.map { Array(bytes[$0.value.byteRange]) }
            for coverage in [0, 10, 33.3, 100] {
                let edit: (bytes: [UInt8], written: FlagdFlagStore.Shape, version: String)
                do {
                    edit = try FlagdFlagStore.edit(
                        bytes, flag: member.key, enabled: coverage > 0, coverage: coverage,
                        path: "f.json")
                } catch {
                    throw FuzzViolation("a flag it reads cannot be set to \(coverage): \(error)")
                }
                let expected = coverage > 0 && !isDisabledByState(member) ? coverage : 0
                try Fuzz.require(
                    abs(edit.written.current.coverage - expected) < 1e-6,
                    "set to \(coverage), reads back \(edit.written.current.coverage)")
                guard let again = try? FlagdFlagStore.parse(edit.bytes, path: "f.json"),
                    case .object(let topAgain) = again.kind,
                    case .object(let membersAgain)? = topAgain.first(where: { $0.key == "flags" })?.value.kind
                else { throw FuzzViolation("the edited file does not parse") }
                let othersAgain = membersAgain.filter { $0.key != member.key }.map {
                    Array(edit.bytes[$0.value.byteRange])
                }
                try Fuzz.require(othersAgain == others, "an edit changed another flag's bytes")
            }
        }
    }

    static func isDisabledByState(_ member: JSONValue.Member) -> Bool {
        guard case .object(let fields) = member.value.kind,
            case .string("DISABLED")? = fields.first(where: { $0.key == "state" })?.value.kind
        else { return false }
        return true
    }

    /// `f.json:LINE:COLUMN: …` errors point inside the file.
    static func requirePositionInside(_ error: Error, _ bytes: [UInt8]) throws(FuzzViolation) {
        let text = "\(error)"
        guard text.hasPrefix("f.json:") else { return }
        let parts = text.dropFirst("f.json:".count).split(separator: ":", maxSplits: 2)
        guard parts.count == 3, let line = Int(parts[0]), let column = Int(parts[1]) else { return }
        try Fuzz.requireInside([(line, column, text)], bytes)
    }
}
