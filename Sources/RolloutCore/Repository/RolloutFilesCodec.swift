/// A rollout folder decoded on its own, before the checks across rollouts (SPEC §3: two rollouts may not
/// drive one flag): what a cache keyed by the folder's tree id keeps, so that an unchanged folder is not
/// read or decoded again (issue 22).
public struct DecodedRollout: Equatable, Sendable {
    public var files: RolloutFiles
    /// The flag the plan names and where, when plan.json decoded (valid or not).
    public var flag: String?
    public var flagPosition: SourcePosition?

    public init(files: RolloutFiles, flag: String?, flagPosition: SourcePosition?) {
        self.files = files
        self.flag = flag
        self.flagPosition = flagPosition
    }
}

/// The bytes of a `DecodedRollout`, for the history walk's cache file (which checks length, checksum and
/// version around them). Every field of the decoded files is written, so that a folder read back equals the
/// folder decoded (`RolloutFilesCodecTests`); a field added to these types must be added here, and the
/// cache's format version bumped.
public enum RolloutFilesCodec {
    public static func encode(_ rollout: DecodedRollout, into bytes: inout [UInt8]) {
        var w = ByteWriter(bytes: bytes)
        bytes = []
        w.rollout(rollout)
        bytes = w.bytes
    }

    /// Reads one rollout at `offset`, advancing it; nil when the bytes are not one.
    public static func decode(_ bytes: UnsafeRawBufferPointer, offset: inout Int) -> DecodedRollout? {
        var r = ByteReader(buffer: bytes, offset: offset)
        guard let rollout = r.rollout() else { return nil }
        offset = r.offset
        return rollout
    }
}

private struct ByteWriter {
    var bytes: [UInt8]

    mutating func u8(_ value: UInt8) { bytes.append(value) }

    mutating func u64(_ value: UInt64) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func int(_ value: Int) { u64(UInt64(bitPattern: Int64(value))) }

    mutating func double(_ value: Double) { u64(value.bitPattern) }

    mutating func bool(_ value: Bool) { u8(value ? 1 : 0) }

    mutating func string(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            int(utf8.count)
            bytes.append(contentsOf: utf8)
        }
    }

    mutating func optional<T>(_ value: T?, _ write: (inout ByteWriter, T) -> Void) {
        u8(value == nil ? 0 : 1)
        if let value { write(&self, value) }
    }

    mutating func array<T>(_ values: [T], _ write: (inout ByteWriter, T) -> Void) {
        int(values.count)
        for value in values { write(&self, value) }
    }

    mutating func position(_ value: SourcePosition) {
        int(value.line)
        int(value.column)
    }

    mutating func diagnostic(_ value: Diagnostic) {
        string(value.path)
        int(value.line)
        int(value.column)
        string(value.message)
    }

    mutating func check(_ value: HealthCheck) {
        string(value.name)
        string(value.query)
        optional(value.min) { $0.double($1) }
        optional(value.max) { $0.double($1) }
        string(value.onBreach.rawValue)
        string(value.onNoData.rawValue)
    }

    mutating func phase(_ value: Plan.Phase) {
        string(value.name)
        string(value.environment)
        double(value.coverage)
        optional(value.bake) { $0.int($1.seconds) }
        array(value.approvals) { $0.string($1) }
        array(value.approvalPositions) { $0.position($1) }
        position(value.position)
        position(value.coveragePosition)
    }

    mutating func plan(_ value: Plan) {
        string(value.apiVersion)
        string(value.name)
        position(value.namePosition)
        string(value.flag)
        optional(value.description) { $0.string($1) }
        string(value.state.rawValue)
        array(value.phases) { $0.phase($1) }
        array(value.health.checks) { $0.check($1) }
        optional(value.health.use) { $0.string($1) }
        optional(value.health.usePosition) { $0.position($1) }
        bool(value.rollback.automatic)
        array(value.rollback.notify) { $0.string($1) }
        array(value.panels) { w, panel in
            w.string(panel.title)
            w.string(panel.query)
            w.optional(panel.unit) { $0.string($1) }
        }
    }

    mutating func approval(_ value: ApprovalFile) {
        string(value.path)
        string(value.blobID)
        string(value.pathPhase)
        optional(value.record) { w, record in
            w.string(record.rollout)
            w.string(record.phase)
            w.string(record.role)
            w.string(record.approver)
            w.string(record.plan)
            w.optional(record.comment) { $0.string($1) }
        }
        array(value.diagnostics) { $0.diagnostic($1) }
    }

    mutating func rollout(_ value: DecodedRollout) {
        let files = value.files
        string(files.name)
        optional(files.plan) { $0.plan($1) }
        optional(files.planBlob) { $0.string($1) }
        array(files.checks) { $0.check($1) }
        array(files.approvals) { $0.approval($1) }
        array(files.diagnostics) { $0.diagnostic($1) }
        bool(files.hasNameProblem)
        optional(value.flag) { $0.string($1) }
        optional(value.flagPosition) { $0.position($1) }
    }
}

/// A bounds-checked cursor; every read fails (nil) past the end or on a value out of range.
private struct ByteReader {
    let buffer: UnsafeRawBufferPointer
    var offset: Int

    mutating func u8() -> UInt8? {
        guard offset < buffer.count else { return nil }
        defer { offset += 1 }
        return buffer[offset]
    }

    mutating func u64() -> UInt64? {
        guard buffer.count - offset >= 8 else { return nil }
        defer { offset += 8 }
        return UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    mutating func int() -> Int? { u64().map { Int(Int64(bitPattern: $0)) } }

    /// A length or count: at least 0, and no more than the bytes left (each element takes a byte at least).
    mutating func count() -> Int? {
        guard let value = int(), value >= 0, value <= buffer.count - offset else { return nil }
        return value
    }

    mutating func double() -> Double? { u64().map { Double(bitPattern: $0) } }

    mutating func bool() -> Bool? {
        guard let value = u8(), value <= 1 else { return nil }
        return value == 1
    }

    mutating func string() -> String? {
        guard let length = count() else { return nil }
        defer { offset += length }
        return String(decoding: UnsafeRawBufferPointer(rebasing: buffer[offset..<(offset + length)]), as: UTF8.self)
    }

    /// nil when unreadable; .some(nil) when absent.
    mutating func optional<T>(_ read: (inout ByteReader) -> T?) -> T?? {
        guard let flag = u8(), flag <= 1 else { return nil }
        if flag == 0 { return .some(nil) }
        guard let value = read(&self) else { return nil }
        return .some(value)
    }

    mutating func array<T>(_ read: (inout ByteReader) -> T?) -> [T]? {
        guard let count = count() else { return nil }
        var result: [T] = []
        result.reserveCapacity(count)
        for _ in 0..<count {
            guard let value = read(&self) else { return nil }
            result.append(value)
        }
        return result
    }

    mutating func position() -> SourcePosition? {
        guard let line = int(), let column = int() else { return nil }
        return SourcePosition(line: line, column: column)
    }

    mutating func diagnostic() -> Diagnostic? {
        guard let path = string(), let line = int(), let column = int(), let message = string() else { return nil }
        return Diagnostic(path: path, line: line, column: column, message: message)
    }

    mutating func check() -> HealthCheck? {
        guard let name = string(), let query = string(), let min = optional({ $0.double() }),
            let max = optional({ $0.double() }), let onBreach = string().flatMap(HealthCheck.Action.init(rawValue:)),
            let onNoData = string().flatMap(HealthCheck.NoDataAction.init(rawValue:))
        else { return nil }
        return HealthCheck(name: name, query: query, min: min, max: max, onBreach: onBreach, onNoData: onNoData)
    }

    mutating func phase() -> Plan.Phase? {
        guard let name = string(), let environment = string(), let coverage = double(),
            let bake = optional({ $0.int() }), let approvals = array({ $0.string() }),
            let approvalPositions = array({ $0.position() }), let at = position(), let coveragePosition = position()
        else { return nil }
        var phase = Plan.Phase(
            name: name, environment: environment, coverage: coverage,
            bake: bake.map { RolloutDuration(seconds: $0) }, approvals: approvals, position: at)
        phase.approvalPositions = approvalPositions
        phase.coveragePosition = coveragePosition
        return phase
    }

    mutating func plan() -> Plan? {
        guard let apiVersion = string(), let name = string(), let namePosition = position(), let flag = string(),
            let description = optional({ $0.string() }), let state = string().flatMap(Plan.State.init(rawValue:)),
            let phases = array({ $0.phase() }), let checks = array({ $0.check() }), let use = optional({ $0.string() }),
            let usePosition = optional({ $0.position() }), let automatic = bool(),
            let notify = array({ $0.string() }),
            let panels = array({ r -> DashboardPanel? in
                guard let title = r.string(), let query = r.string(), let unit = r.optional({ $0.string() }) else {
                    return nil
                }
                return DashboardPanel(title: title, query: query, unit: unit)
            })
        else { return nil }
        return Plan(
            apiVersion: apiVersion, name: name, namePosition: namePosition, flag: flag, description: description,
            state: state, phases: phases, health: Plan.Health(checks: checks, use: use, usePosition: usePosition),
            rollback: Plan.Rollback(automatic: automatic, notify: notify), panels: panels)
    }

    mutating func approval() -> ApprovalFile? {
        guard let path = string(), let blobID = string(), let pathPhase = string(),
            let record = optional({ r -> ApprovalRecord? in
                guard let rollout = r.string(), let phase = r.string(), let role = r.string(),
                    let approver = r.string(), let plan = r.string(), let comment = r.optional({ $0.string() })
                else { return nil }
                return ApprovalRecord(
                    rollout: rollout, phase: phase, role: role, approver: approver, plan: plan, comment: comment)
            }),
            let diagnostics = array({ $0.diagnostic() })
        else { return nil }
        return ApprovalFile(
            path: path, blobID: blobID, pathPhase: pathPhase, record: record, diagnostics: diagnostics)
    }

    mutating func rollout() -> DecodedRollout? {
        guard let name = string(), let plan = optional({ $0.plan() }), let planBlob = optional({ $0.string() }),
            let checks = array({ $0.check() }), let approvals = array({ $0.approval() }),
            let diagnostics = array({ $0.diagnostic() }), let hasNameProblem = bool(),
            let flag = optional({ $0.string() }), let flagPosition = optional({ $0.position() })
        else { return nil }
        var files = RolloutFiles(
            name: name, plan: plan, planBlob: planBlob, checks: checks, approvals: approvals,
            diagnostics: diagnostics)
        files.hasNameProblem = hasNameProblem
        return DecodedRollout(files: files, flag: flag, flagPosition: flagPosition)
    }
}
