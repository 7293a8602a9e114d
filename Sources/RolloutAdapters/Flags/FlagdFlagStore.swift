import Foundation
import RolloutCore

/// The flag store behind `--flags ENV=flagd:PATH` (SPEC §7.1): one OpenFeature flagd
/// flag-definition file (`https://flagd.dev/schema/v0/flags.json`) is one environment.
///
/// rolloutctl owns the flag's `defaultVariant` and `targeting` and nothing else:
/// - disabled: `defaultVariant` is the false variant and there is no `targeting`;
/// - coverage c: `defaultVariant` is the false variant and `targeting` is
///   `{"fractional": [{"cat": [{"var": "$flagd.flagKey"}, {"var": "targetingKey"}]}, [TRUE, t], [FALSE, f]]}`,
///   the true variant first, so raising c only adds users (flagd maps a hash to a bucket and walks the
///   variants in order). `t : f` is `c : 100 - c` in integers; a coverage with decimals scales both
///   (12.5 → 125 : 875).
///
/// Read accepts only those shapes, plus a static `defaultVariant` (the true variant without
/// targeting is everyone). Anything else (a hand-written rule, a `$ref`, other variants) is
/// `FlagStoreError.notManaged` for that rollout, and the file is never written for it. A flag whose
/// `state` is `DISABLED` reads as disabled (flagd serves the code default), and a write keeps it so.
///
/// A write changes only the bytes of those two members, so every other flag, field, `$evaluators`,
/// key order and formatting stay as they were; it is made under `PATH.lock` by temp file, fsync and
/// rename, so flagd's watcher never sees half a file. The version is a hash of the flag's own bytes:
/// an edit of another flag is not a conflict, an edit of this one is.
public final class FlagdFlagStore: FlagStore, @unchecked Sendable {
    public let path: String
    /// The one environment this file is.
    public let environment: String

    public init(path: String, environment: String) {
        self.path = path
        self.environment = environment
    }

    private var lockPath: String { path + ".lock" }

    // MARK: FlagStore

    public func read(flag: String) async throws -> FlagSnapshot {
        let lock = try FileLock.acquireBlocking(path: lockPath)
        defer { lock.release() }
        let (bytes, root) = try load()
        let found = try Self.find(flag, in: root, path: path)
        let state = try Self.interpret(found, flag: flag, path: path)
        // `find` returns the member named `flag` (a key twice is refused by the parser).
        return try FlagSnapshot(
            key: found.key, version: Self.version(bytes[found.value.byteRange]),
            environments: [environment: state.current]
        ).answering(flag, service: path)
    }

    public func apply(flag: String, patch: FlagPatch, ifMatch version: String) async throws -> FlagSnapshot {
        if let target = patch.environment, target != environment {
            throw FlagStoreError.notManaged("\(path) is environment \(environment), not \(target)")
        }
        let lock = try FileLock.acquireBlocking(path: lockPath)
        defer { lock.release() }
        let (bytes, root) = try load()
        let found = try Self.find(flag, in: root, path: path)
        guard Self.version(bytes[found.value.byteRange]) == version else {
            throw FlagStoreError.versionConflict(flag: flag)
        }
        let edit = try Self.edit(
            bytes, flag: flag, enabled: patch.enabled, coverage: patch.coverage, path: path, parsed: found)
        try AtomicFile.write(Data(edit.bytes), to: path, throughSymlinks: true)
        return FlagSnapshot(key: flag, version: edit.version, environments: [environment: edit.written.current])
    }

    /// The file with one flag set to `enabled` at `coverage` (its coverage in force when nil), every
    /// other byte as it was: `defaultVariant` the false variant, and rolloutctl's split as the
    /// targeting (none at 0). Returns the flag as it reads back and its new version. `member` is the
    /// flag as already parsed from these very bytes, if the caller has it (one parse fewer).
    static func edit(
        _ bytes: [UInt8], flag: String, enabled: Bool, coverage requested: Double?,
        path: String, parsed member: JSONValue.Member? = nil
    ) throws -> (bytes: [UInt8], written: Shape, version: String) {
        var bytes = bytes
        var found = try member ?? find(flag, in: try parse(bytes, path: path), path: path)
        let shape = try interpret(found, flag: flag, path: path)
        let coverage = enabled ? min(100, max(0, requested ?? shape.current.coverage)) : 0
        let targeting: String? =
            coverage > 0
            ? Self.targeting(trueVariant: shape.trueVariant, falseVariant: shape.falseVariant, coverage: coverage)
            : nil
        // Two splices, the file parsed again between them so each works on true offsets.
        bytes = JSONSplice.set(
            member: "defaultVariant", to: JSONOutput.quote(shape.falseVariant),
            in: found.value, of: bytes)
        found = try find(flag, in: try parse(bytes, path: path), path: path)
        bytes = JSONSplice.set(member: "targeting", to: targeting, in: found.value, of: bytes)
        found = try find(flag, in: try parse(bytes, path: path), path: path)
        let written = try interpret(found, flag: flag, path: path)
        return (bytes, written, version(bytes[found.value.byteRange]))
    }

    // MARK: The file

    private func load() throws -> ([UInt8], JSONValue) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FlagStoreError.unavailable("cannot read the flagd file \(path)")
        }
        let bytes = [UInt8](data)
        return (bytes, try Self.parse(bytes, path: path))
    }

    static func parse(_ bytes: [UInt8], path: String) throws -> JSONValue {
        do {
            return try JSONParser.parse(bytes)
        } catch {
            throw FlagStoreError.notManaged(
                "\(path):\(error.position.line):\(error.position.column): \(error.message)")
        }
    }

    /// The flag's member in `flags` (the object form; flagd's array form is not written by rolloutctl).
    static func find(_ flag: String, in root: JSONValue, path: String) throws -> JSONValue.Member {
        guard case .object(let top) = root.kind,
            let flags = top.first(where: { $0.key == "flags" })?.value
        else {
            throw FlagStoreError.notManaged("\(path): not a flagd flag-definition file (no \"flags\" object)")
        }
        guard case .object(let members) = flags.kind else {
            throw FlagStoreError.notManaged(
                "\(path):\(flags.position.line):\(flags.position.column): "
                    + "\"flags\" is \(flags.typeName); rolloutctl edits the object form only")
        }
        guard let member = members.first(where: { $0.key == flag }) else {
            throw FlagStoreError.notFound(flag: flag)
        }
        return member
    }

    /// The flag as rolloutctl reads it: its two variants and the state in force.
    struct Shape {
        var trueVariant: String
        var falseVariant: String
        var current: FlagEnvironmentState
    }

    static func interpret(_ member: JSONValue.Member, flag: String, path: String) throws -> Shape {
        let value = member.value
        func problem(_ at: SourcePosition, _ message: String) -> FlagStoreError {
            .notManaged(
                "\(path):\(at.line):\(at.column): flag \(flag): \(message); "
                    + "rolloutctl owns only a targeting it wrote, and leaves this one untouched")
        }
        guard case .object(let fields) = value.kind else {
            throw problem(value.position, "the flag is \(value.typeName), not an object")
        }
        func field(_ name: String) -> JSONValue? { fields.first { $0.key == name }?.value }
        guard let variants = field("variants"), case .object(let variantMembers) = variants.kind else {
            throw problem(value.position, "no \"variants\" object")
        }
        var trueVariant: String?
        var falseVariant: String?
        for variant in variantMembers {
            switch variant.value.kind {
            case .bool(true) where trueVariant == nil: trueVariant = variant.key
            case .bool(false) where falseVariant == nil: falseVariant = variant.key
            default:
                throw problem(
                    variant.keyPosition,
                    "variant \"\(variant.key)\" is not the one true or the one false "
                        + "variant a boolean rollout needs")
            }
        }
        guard let trueVariant, let falseVariant else {
            throw problem(
                variants.position,
                "a rollout needs one variant whose value is true and one whose value is false")
        }
        var disabledByState = false
        if let state = field("state") {
            switch state.kind {
            case .string("ENABLED"): break
            case .string("DISABLED"): disabledByState = true
            default: throw problem(state.position, "\"state\" must be \"ENABLED\" or \"DISABLED\"")
            }
        }
        let defaultVariant: String?
        switch field("defaultVariant")?.kind {
        case .string(let name)?: defaultVariant = name
        case .null?, nil: defaultVariant = nil
        case .some:
            throw problem(field("defaultVariant")?.position ?? value.position, "\"defaultVariant\" must be a string")
        }
        let targeting = field("targeting")
        let hasTargeting: Bool
        switch targeting?.kind {
        case nil: hasTargeting = false
        case .object(let members)?: hasTargeting = !members.isEmpty
        default: hasTargeting = true
        }
        var current: FlagEnvironmentState
        if !hasTargeting {
            switch defaultVariant {
            case trueVariant?: current = FlagEnvironmentState(enabled: true, coverage: 100)
            case falseVariant?: current = .disabled
            default:
                throw problem(
                    value.position,
                    "\"defaultVariant\" is neither \"\(trueVariant)\" nor \"\(falseVariant)\"")
            }
        } else {
            guard let targeting,
                let weights = fractionalWeights(
                    targeting, trueVariant: trueVariant,
                    falseVariant: falseVariant)
            else {
                throw problem(
                    targeting?.position ?? value.position,
                    "its targeting is not the fractional split rolloutctl writes")
            }
            guard defaultVariant == falseVariant else {
                throw problem(
                    value.position,
                    "with rolloutctl's targeting, \"defaultVariant\" must be \"\(falseVariant)\"")
            }
            let coverage = Double(weights.true) * 100 / Double(weights.true + weights.false)
            current = weights.true > 0 ? FlagEnvironmentState(enabled: true, coverage: coverage) : .disabled
        }
        if disabledByState { current = .disabled }
        return Shape(trueVariant: trueVariant, falseVariant: falseVariant, current: current)
    }

    /// The weights of rolloutctl's split, or nil for any other targeting.
    static func fractionalWeights(
        _ targeting: JSONValue, trueVariant: String,
        falseVariant: String
    ) -> (true: Int, false: Int)? {
        guard case .object(let top) = targeting.kind, top.count == 1, top[0].key == "fractional",
            case .array(let arguments) = top[0].value.kind, arguments.count == 3,
            isBucketing(arguments[0]),
            let first = weight(arguments[1], variant: trueVariant),
            let second = weight(arguments[2], variant: falseVariant),
            first + second > 0, first + second <= Int(Int32.max)
        else { return nil }
        return (first, second)
    }

    /// `{"cat": [{"var": "$flagd.flagKey"}, {"var": "targetingKey"}]}`.
    private static func isBucketing(_ value: JSONValue) -> Bool {
        func variable(_ value: JSONValue, _ name: String) -> Bool {
            guard case .object(let members) = value.kind, members.count == 1, members[0].key == "var",
                case .string(name) = members[0].value.kind
            else { return false }
            return true
        }
        guard case .object(let members) = value.kind, members.count == 1, members[0].key == "cat",
            case .array(let parts) = members[0].value.kind, parts.count == 2
        else { return false }
        return variable(parts[0], "$flagd.flagKey") && variable(parts[1], "targetingKey")
    }

    private static func weight(_ value: JSONValue, variant: String) -> Int? {
        guard case .array(let pair) = value.kind, pair.count == 2, case .string(variant) = pair[0].kind,
            case .number(let number) = pair[1].kind, number >= 0, number == number.rounded(),
            number <= Double(Int32.max)
        else { return nil }
        return Int(number)
    }

    /// The targeting rolloutctl writes for `coverage` in (0, 100], on one line.
    static func targeting(trueVariant: String, falseVariant: String, coverage: Double) -> String {
        let (on, off) = weights(coverage: coverage)
        return #"{"fractional": [{"cat": [{"var": "$flagd.flagKey"}, {"var": "targetingKey"}]}, "#
            + "[\(JSONOutput.quote(trueVariant)), \(on)], [\(JSONOutput.quote(falseVariant)), \(off)]]}"
    }

    /// Integer weights with `on : off == coverage : 100 - coverage`: the smallest power of ten
    /// that makes the coverage whole (at most 10^7, so the sum stays under flagd's Int32 limit).
    static func weights(coverage: Double) -> (on: Int, off: Int) {
        var scale = 1.0
        for _ in 0..<7 {
            let scaled = coverage * scale
            if abs(scaled - scaled.rounded()) < 1e-9 * max(1, scaled) { break }
            scale *= 10
        }
        let total = Int((100 * scale).rounded())
        let on = min(total, Int((coverage * scale).rounded()))
        return (on, total - on)
    }

    /// FNV-1a (64 bits) of the flag's bytes, in hex: a change detector, not a security measure.
    static func version(_ bytes: ArraySlice<UInt8>) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return String(hash, radix: 16)
    }
}

/// Edits one member of a JSON object in place, leaving every other byte of the file as it was
/// (the positional parser's byte ranges say where).
enum JSONSplice {
    /// Sets `member` of `object` to the JSON text `value` (replacing its value, or adding the
    /// member after the last one, indented like it), or removes the member when `value` is nil.
    static func set(member name: String, to value: String?, in object: JSONValue, of bytes: [UInt8]) -> [UInt8] {
        guard case .object(let members) = object.kind else { return bytes }
        var bytes = bytes
        if let index = members.firstIndex(where: { $0.key == name }) {
            let existing = members[index]
            if let value {
                bytes.replaceSubrange(existing.value.byteRange, with: Array(value.utf8))
            } else if index > 0 {
                // From the end of the previous value: the comma and the layout before this member go too.
                let previousEnd = members[index - 1].value.byteRange.upperBound
                bytes.removeSubrange(previousEnd..<existing.value.byteRange.upperBound)
            } else if members.count > 1 {
                bytes.removeSubrange(existing.keyOffset..<members[1].keyOffset)
            } else {
                bytes.removeSubrange(existing.keyOffset..<existing.value.byteRange.upperBound)
            }
            return bytes
        }
        guard let value else { return bytes }
        let entry = Array("\(JSONOutput.quote(name)): \(value)".utf8)
        guard let last = members.last else {
            bytes.replaceSubrange(object.byteRange, with: Array("{ ".utf8) + entry + Array(" }".utf8))
            return bytes
        }
        // The layout between the previous member and the last one (", \n      ") is reused.
        var separator: [UInt8] = Array(", ".utf8)
        if members.count > 1 {
            let gap = bytes[members[members.count - 2].value.byteRange.upperBound..<last.keyOffset]
            if gap.allSatisfy({ [0x20, 0x09, 0x0A, 0x0D, UInt8(ascii: ",")].contains($0) }) { separator = Array(gap) }
        } else {
            var lineStart = last.keyOffset
            while lineStart > 0, bytes[lineStart - 1] != 0x0A { lineStart -= 1 }
            let indent = bytes[lineStart..<last.keyOffset]
            if lineStart > object.byteRange.lowerBound, indent.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) {
                separator = [UInt8(ascii: ","), 0x0A] + indent
            }
        }
        bytes.insert(contentsOf: separator + entry, at: last.value.byteRange.upperBound)
        return bytes
    }
}
