import Foundation
import RolloutCore

/// The state of an installation (SPEC §5.10, §10): rollout records, phase entries, the append-only audit log,
/// open intents, the notification outbox, the installation identity and the runs. Two homes implement it:
/// `SQLiteStateStore` (SQLite, the embedded default) and `PostgresStateStore` (replicas on several machines).
/// Every method is one transaction: a run stopped at any point leaves the state as it was before or after it.
public protocol StateStorage: AnyObject, Sendable {
    /// Where the state lives, as shown to people: a file path, or a `postgres://` URL without any password.
    var path: String { get }

    func breachingNotifyChecks(rollout: String) throws -> Set<String>
    /// Replaces the breaching set of a rollout and appends the audit entries of the new episodes, in one transaction.
    func saveBreachingNotifyChecks(
        rollout: String, checks: Set<String>, audit entries: [AuditEntry],
        outbox: [OutboxMessage]) throws

    func rollout(_ name: String) throws -> StoredRollout?
    func allRollouts() throws -> [StoredRollout]
    /// Writes a rollout's record, the audit entries that explain it and its notifications, in one transaction.
    func save(
        rollout name: String, flag: String?, record: RolloutRecord, now: Date, enteredPhase: Bool,
        audit entries: [AuditEntry], outbox: [OutboxMessage]) throws
    /// Phase entry times of a rollout, oldest first.
    func phaseEntries(rollout: String) throws -> [(phase: String, enteredAt: Date)]

    /// Appends one audit entry in its own transaction and returns its id.
    @discardableResult
    func append(_ entry: AuditEntry) throws -> Int64
    /// Audit entries, newest first.
    func history(rollout: String?, limit: Int?) throws -> [AuditEntry]
    /// Intents that have no result: written by a run that stopped before the flag service answered.
    func unresolvedIntents(rollout: String) throws -> [AuditEntry]
    /// Every intent without a result, by rollout: one small read per run, whatever the audit's size.
    func allUnresolvedIntents() throws -> [String: [AuditEntry]]

    /// [r3] Values the state keeps by key (the branch and tip of SPEC §4.0, the guards of §5.13), those whose
    /// key starts with `prefix`.
    func keptValues(prefix: String) throws -> [String: String]
    /// Sets (or, for nil, removes) kept values, appends the audit entries that explain them and queues their
    /// notifications, in one transaction.
    func keep(_ values: [String: String?], audit entries: [AuditEntry], outbox: [OutboxMessage]) throws

    /// The installation this state belongs to; nil for a state made before `rolloutctl init` existed.
    func installation() throws -> Installation?
    func setInstallation(_ installation: Installation) throws
    /// The time of the latest reconcile run recorded (SPEC §5.12: time never runs backwards).
    func latestRunTime() throws -> Date?
    func recordRun(time: Date, clockSupplied: Bool) throws

    /// Notifications not yet delivered and queued less than `maxAge` before `now`, oldest first;
    /// older ones are marked expired (SPEC §5.10: retried for 24 hours).
    func pendingOutbox(now: Date, maxAge: TimeInterval) throws -> (pending: [OutboxMessage], expired: [OutboxMessage])
    /// Records one delivery attempt of an outbox message.
    func recordDelivery(id: Int64, at time: Date, error: String?) throws
    /// Every outbox message, delivered or not (for tests and `status`).
    func outbox() throws -> [(message: OutboxMessage, delivered: Bool)]
    /// Why this state, opened for a run, cannot be written (disk full, read-only); nil when it can.
    /// A run then records nothing, and still lowers exposure (SPEC §5 rule 3 [r3]).
    var unwritableReason: String? { get }
}

extension StateStorage {
    public var unwritableReason: String? { nil }

    public func saveBreachingNotifyChecks(rollout: String, checks: Set<String>, audit entries: [AuditEntry]) throws {
        try saveBreachingNotifyChecks(rollout: rollout, checks: checks, audit: entries, outbox: [])
    }

    public func save(
        rollout name: String, flag: String?, record: RolloutRecord, now: Date, enteredPhase: Bool,
        audit entries: [AuditEntry] = []
    ) throws {
        try save(
            rollout: name, flag: flag, record: record, now: now, enteredPhase: enteredPhase, audit: entries,
            outbox: [])
    }

    public func keep(_ values: [String: String?], audit entries: [AuditEntry]) throws {
        try keep(values, audit: entries, outbox: [])
    }

    public func history() throws -> [AuditEntry] { try history(rollout: nil, limit: nil) }
    public func history(rollout: String?) throws -> [AuditEntry] { try history(rollout: rollout, limit: nil) }

    public func pendingOutbox(now: Date) throws -> (pending: [OutboxMessage], expired: [OutboxMessage]) {
        try pendingOutbox(now: now, maxAge: OutboxMessage.retention)
    }
}

extension SQLiteStateStore: StateStorage {}

/// What `--state` names: a SQLite file (the default), or a PostgreSQL database (`postgres://USER@HOST:PORT/DB`).
public enum StateLocation: Equatable, Sendable {
    case sqlite(path: String)
    case postgres(PostgresLocation)

    /// Reads a `--state` value; a `postgres://` or `postgresql://` URL selects PostgreSQL, anything else is a path.
    public init(parsing text: String) throws {
        if PostgresLocation.isURL(text) {
            self = .postgres(try PostgresLocation(parsing: text))
        } else {
            self = .sqlite(path: text)
        }
    }

    /// True for a `postgres://` value (no file, no `.lock` beside it).
    public static func isPostgres(_ text: String) -> Bool { PostgresLocation.isURL(text) }

    /// As shown to people (never with a password).
    public var display: String {
        switch self {
        case .sqlite(let path): return path
        case .postgres(let location): return location.display
        }
    }
}

/// Makes the `StateStorage` a `--state` value names (a `SQLiteStateStore` or a `PostgresStateStore`), with the same
/// rules for both homes (SPEC §5.10): `create` for `init` (refuses an existing state), `open` for a reconcile (never
/// creates one), `openReadOnly` for `plan`, `status` and `history` (nil when there is none).
public enum StateStorageFactory {
    /// True when a state exists at `location` (a file, or a database holding the rolloutctl schema).
    public static func exists(_ location: StateLocation) throws -> Bool {
        switch location {
        case .sqlite(let path): return FileManager.default.fileExists(atPath: path)
        case .postgres(let location): return try PostgresStateStore.schemaExists(location)
        }
    }

    public static func create(_ location: StateLocation, installation: Installation) throws -> any StateStorage {
        switch location {
        case .sqlite(let path): return try SQLiteStateStore.create(path: path, installation: installation)
        case .postgres(let location): return try PostgresStateStore.create(location, installation: installation)
        }
    }

    public static func open(_ location: StateLocation) throws -> any StateStorage {
        switch location {
        case .sqlite(let path): return try SQLiteStateStore.open(path: path)
        case .postgres(let location): return try PostgresStateStore.open(location)
        }
    }

    public static func openReadOnly(_ location: StateLocation) throws -> (any StateStorage)? {
        switch location {
        case .sqlite(let path): return try SQLiteStateStore.openReadOnly(path: path)
        case .postgres(let location): return try PostgresStateStore.openReadOnly(location)
        }
    }

    /// The `String` forms the commands and `RunSettings` carry.
    public static func exists(_ text: String) throws -> Bool { try exists(StateLocation(parsing: text)) }
    public static func open(_ text: String) throws -> any StateStorage { try open(StateLocation(parsing: text)) }
    public static func openReadOnly(_ text: String) throws -> (any StateStorage)? {
        try openReadOnly(StateLocation(parsing: text))
    }
    public static func create(_ text: String, installation: Installation) throws -> any StateStorage {
        try create(StateLocation(parsing: text), installation: installation)
    }
}
