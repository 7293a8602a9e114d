import Foundation
import NIOCore
import PostgresNIO
import RolloutCore

/// The state of SPEC §5.10 in PostgreSQL (SPEC §10), for installations that run several replicas: the tables of
/// `PostgresSchema`, the same intent/result protocol and outbox as the SQLite store, the same audit rows (`AuditRow`).
///
/// A store writes on one session (`PostgresSession`), one operation at a time, each in its own transaction. A
/// reconcile takes the installation's session advisory lock on that same session (`lockInstallation`), so its writes
/// can only land while it holds the lock; when the session drops, the server releases the lock and every later write
/// of this store fails instead of reconnecting. A store opened for a run then still reads, on a new read-only
/// session, and says why it cannot write (`unwritableReason`): the run lowers exposure and records nothing (SPEC §5
/// rule 3 [r3]: disabling needs no lock). The same holds for a database that refuses writes.
public final class PostgresStateStore: @unchecked Sendable {
    public let path: String
    public let location: PostgresLocation
    /// The session every write (and, while it lives, every read) runs on; the one that holds the lock.
    private let session: PostgresSession
    /// Opened for a reconcile (`open`, `create`): it may write, and falls back to reading when it cannot.
    private let forWriting: Bool
    private let state = NSLock()
    /// A read-only session that serves the reads of a store whose own session was lost.
    private var reader: PostgresSession?
    /// Why the database refuses writes (found on opening, or when a write was refused as read-only).
    private var refusal: String?

    private init(location: PostgresLocation, session: PostgresSession, forWriting: Bool) {
        self.location = location
        self.path = location.display
        self.session = session
        self.forWriting = forWriting
    }

    static func connect(_ location: PostgresLocation, readOnly: Bool) throws -> PostgresStateStore {
        PostgresStateStore(
            location: location, session: try PostgresSession.connect(location, readOnly: readOnly),
            forWriting: !readOnly)
    }

    /// False once the session is gone (closed here, or ended by the server): a long-lived reader opens another.
    public var isOpen: Bool { session.isOpen }

    /// Closes the session (releasing the advisory lock, if held), and the reader that replaced it, if any.
    public func close() {
        session.close()
        state.withLock { reader }?.close()
    }

    /// Why this store, opened for a run, cannot write: its session was lost (and with it the lock), or the
    /// database refuses writes. nil when it can (SPEC §5 rule 3 [r3]).
    public var unwritableReason: String? {
        guard forWriting else { return nil }
        if let refusal = state.withLock({ refusal }) {
            return "the state at \(path) cannot be written: \(refusal)"
        }
        if session.wasLost {
            return "the state at \(path) cannot be written: its session was lost (the connection to the server "
                + "closed, and any lock it held with it; another replica may hold the lock now)"
        }
        return nil
    }

    // MARK: Opening, the SPEC §5.10 rules

    /// True when the database holds the rolloutctl schema.
    public static func schemaExists(_ location: PostgresLocation) throws -> Bool {
        let session = try PostgresSession.connect(location, readOnly: true)
        defer { session.close() }
        return try session.serialised { try PostgresSchema.exists(session) }
    }

    /// Creates the schema of a new installation (`rolloutctl init`); refuses a database that already has one.
    public static func create(_ location: PostgresLocation, installation: Installation) throws -> PostgresStateStore {
        let store = try connect(location, readOnly: false)
        let session = store.session
        if try session.serialised({ try PostgresSchema.exists(session) }), try store.installation() != nil {
            throw StateStoreError.alreadyInitialised(path: location.display)
        }
        try PostgresSchema.migrate(session, path: store.path)
        try store.setInstallation(installation)
        return store
    }

    /// Opens the state for a reconcile; never creates one (SPEC §5.10). A database that refuses writes is opened
    /// for reading, with `unwritableReason` set: the run records nothing and still lowers exposure (SPEC §5 rule 3).
    public static func open(_ location: PostgresLocation) throws -> PostgresStateStore {
        let store = try connect(location, readOnly: false)
        let session = store.session
        guard try session.serialised({ try PostgresSchema.exists(session) }) else {
            throw StateStoreError.missing(path: location.display)
        }
        if let refusal = try session.serialised({ try PostgresSchema.refusesWrites(session) }) {
            let (unknown, missing) = try session.serialised {
                (try PostgresSchema.unknownMigrations(session), try PostgresSchema.missingMigrations(session))
            }
            guard unknown.isEmpty else { throw StateStoreError.newerSchema(path: store.path, unknown: unknown) }
            guard missing.isEmpty else {
                throw StateStoreError.unwritable(
                    path: store.path,
                    detail: "\(refusal), and it needs the migrations \(missing.joined(separator: ", "))")
            }
            store.state.withLock { store.refusal = refusal }
            return store
        }
        try PostgresSchema.migrate(session, path: store.path)
        return store
    }

    /// Opens the state read-only when it exists (`plan`, `status`, `history`); nil when the database has none.
    public static func openReadOnly(_ location: PostgresLocation) throws -> PostgresStateStore? {
        let store = try connect(location, readOnly: true)
        let session = store.session
        guard try session.serialised({ try PostgresSchema.exists(session) }) else { return nil }
        let unknown = try session.serialised { try PostgresSchema.unknownMigrations(session) }
        guard unknown.isEmpty else { throw StateStoreError.newerSchema(path: location.display, unknown: unknown) }
        return store
    }

    // MARK: The installation lock (SPEC §5.11, §10)

    /// Takes the installation's session advisory lock, waiting up to `timeout`; false when another session
    /// holds it. The lock lives as long as this store's session.
    public func lockInstallation(timeout: Duration) throws -> Bool {
        try session.lockInstallation(timeout: timeout)
    }

    /// Throws when the session that holds the lock is gone (the server has released the lock by then).
    public func checkSession() throws {
        try session.check()
    }

    // MARK: Reads and writes

    /// A read, on the store's session; for a store opened for a run whose session was lost, on a new read-only
    /// session (a read changes nothing, so it needs no lock).
    private func reading<T>(_ what: String, _ body: (PostgresSession) throws -> T) throws -> T {
        var target = session
        if forWriting, session.wasLost {
            target = try state.withLock {
                if let reader, reader.isOpen { return reader }
                let fresh = try PostgresSession.connect(location, readOnly: true)
                reader = fresh
                return fresh
            }
        }
        do {
            return try target.serialised { try body(target) }
        } catch let error as PostgresStateError {
            throw error.doing(what)
        }
    }

    /// A write in one transaction on the store's session (never another: a write needs the lock). A write the
    /// database refused as read-only makes the store say so (`unwritableReason`).
    private func writing<T>(_ what: String, transaction: Bool = true, _ body: (PostgresSession) throws -> T) throws -> T
    {
        do {
            return try transaction
                ? session.transaction { try body(session) } : session.serialised { try body(session) }
        } catch let error as PostgresStateError {
            if forWriting, error.isReadOnlyTransaction {
                state.withLock { refusal = refusal ?? "the database refuses writes (\(error.description))" }
            }
            throw error.doing(what)
        }
    }

    // MARK: The state (SPEC §5.10)

    public func breachingNotifyChecks(rollout: String) throws -> Set<String> {
        try reading("reading the breaching notify checks of \(rollout)") { s in
            Set(
                try s.query("SELECT \"check\" FROM notifyBreach WHERE rollout = \(rollout)")
                    .map { try $0[0].decode(String.self) })
        }
    }

    public func saveBreachingNotifyChecks(
        rollout: String, checks: Set<String>, audit entries: [AuditEntry],
        outbox: [OutboxMessage]
    ) throws {
        try writing("saving the breaching notify checks of \(rollout)") { s in
            try PostgresRows.queue(outbox, s)
            try s.run("DELETE FROM notifyBreach WHERE rollout = \(rollout)")
            for check in checks.sorted() {
                try s.run("INSERT INTO notifyBreach (rollout, \"check\") VALUES (\(rollout), \(check))")
            }
            for entry in entries { _ = try PostgresRows.insert(entry, s, path: path) }
        }
    }

    public func keptValues(prefix: String) throws -> [String: String] {
        try reading("reading the kept values") { s in
            var values: [String: String] = [:]
            // A read-only look at a state not yet migrated to r3 has no such table: nothing kept yet.
            guard try s.query("SELECT to_regclass('kept') IS NOT NULL").first?[0].decode(Bool.self) == true else {
                return values
            }
            for row in try s.query("SELECT key, value FROM kept WHERE starts_with(key, \(prefix))") {
                values[try row[0].decode(String.self)] = try row[1].decode(String.self)
            }
            return values
        }
    }

    public func keep(_ values: [String: String?], audit entries: [AuditEntry], outbox: [OutboxMessage]) throws {
        try writing("keeping values") { s in
            try PostgresRows.queue(outbox, s)
            for (key, value) in values.sorted(by: { $0.key < $1.key }) {
                if let value {
                    try s.run(
                        "INSERT INTO kept (key, value) VALUES (\(key), \(value)) ON CONFLICT (key) DO UPDATE SET value = \(value)"
                    )
                } else {
                    try s.run("DELETE FROM kept WHERE key = \(key)")
                }
            }
            for entry in entries { _ = try PostgresRows.insert(entry, s, path: path) }
        }
    }

    public func rollout(_ name: String) throws -> StoredRollout? {
        try reading("reading rollout \(name)") { s in
            try s.query("SELECT \(unescaped: PostgresRows.rolloutColumns) FROM rollout WHERE name = \(name)")
                .first.map { try PostgresRows.stored($0, path: path) }
        }
    }

    public func allRollouts() throws -> [StoredRollout] {
        try reading("reading the rollouts") { s in
            // COLLATE "C": the byte order SQLite sorts names in.
            try s.query(
                "SELECT \(unescaped: PostgresRows.rolloutColumns) FROM rollout ORDER BY name COLLATE \"C\""
                    as PostgresQuery
            ).map { try PostgresRows.stored($0, path: path) }
        }
    }

    public func save(
        rollout name: String, flag: String?, record: RolloutRecord, now: Date, enteredPhase: Bool,
        audit entries: [AuditEntry], outbox: [OutboxMessage]
    ) throws {
        try writing("saving rollout \(name)") { s in
            try PostgresRows.queue(outbox, s)
            try s.run(
                """
                INSERT INTO rollout (name, flag, phase, enteredAt, status, planBlob, updatedAt)
                VALUES (\(name), \(flag), \(record.phase), \(record.enteredAt?.timeIntervalSince1970),
                        \(record.status.rawValue), \(record.planBlob), \(now.timeIntervalSince1970))
                ON CONFLICT (name) DO UPDATE SET flag = excluded.flag, phase = excluded.phase,
                  enteredAt = excluded.enteredAt, status = excluded.status, planBlob = excluded.planBlob,
                  updatedAt = excluded.updatedAt
                """)
            if enteredPhase, let phase = record.phase, let entered = record.enteredAt {
                try s.run(
                    """
                    INSERT INTO phaseEntry (rollout, phase, enteredAt, planBlob)
                    VALUES (\(name), \(phase), \(entered.timeIntervalSince1970), \(record.planBlob))
                    """)
            }
            for entry in entries { _ = try PostgresRows.insert(entry, s, path: path) }
        }
    }

    public func phaseEntries(rollout: String) throws -> [(phase: String, enteredAt: Date)] {
        try reading("reading the phase entries of \(rollout)") { s in
            try s.query("SELECT phase, enteredAt FROM phaseEntry WHERE rollout = \(rollout) ORDER BY id").map {
                (try $0[0].decode(String.self), Date(timeIntervalSince1970: try $0[1].decode(Double.self)))
            }
        }
    }

    @discardableResult
    public func append(_ entry: AuditEntry) throws -> Int64 {
        // One statement: atomic on its own.
        try writing("appending to the audit log", transaction: false) { s in
            try PostgresRows.insert(entry, s, path: path)
        }
    }

    public func history(rollout: String?, limit: Int?) throws -> [AuditEntry] {
        try reading("reading the audit log") { s in
            var sql: PostgresQuery = "SELECT \(unescaped: PostgresRows.auditColumns) FROM audit a ORDER BY a.id DESC"
            if let rollout {
                sql = """
                    SELECT \(unescaped: PostgresRows.auditColumns) FROM audit a WHERE a.rollout = \(rollout) ORDER BY a.id DESC
                    """
            }
            if let limit {
                sql = PostgresQuery(unsafeSQL: sql.sql + " LIMIT \(max(0, limit))", binds: sql.binds)
            }
            return try s.query(sql).map(PostgresRows.entry)
        }
    }

    public func unresolvedIntents(rollout: String) throws -> [AuditEntry] {
        try reading("reading the open intents of \(rollout)") { s in
            try s.query(
                """
                SELECT \(unescaped: PostgresRows.auditColumns) FROM openIntent o JOIN audit a ON a.id = o.intentID
                WHERE o.rollout = \(rollout) ORDER BY o.intentID
                """
            ).map(PostgresRows.entry)
        }
    }

    public func allUnresolvedIntents() throws -> [String: [AuditEntry]] {
        try reading("reading the open intents") { s in
            let entries = try s.query(
                """
                SELECT \(unescaped: PostgresRows.auditColumns) FROM openIntent o JOIN audit a ON a.id = o.intentID
                ORDER BY o.intentID
                """ as PostgresQuery
            ).map(PostgresRows.entry)
            return Dictionary(grouping: entries, by: \.rollout)
        }
    }

    public func installation() throws -> Installation? {
        try reading("reading the installation") { s in
            guard try PostgresSchema.exists(s) else { return nil }
            return try s.query(
                "SELECT repositoryRoot, policyRootCommit, policyRootDigest FROM installation WHERE id = 1"
            )
            .first.map {
                Installation(
                    repositoryRoot: try $0[0].decode(String.self),
                    policyRootCommit: try $0[1].decode(String?.self),
                    policyRootDigest: try $0[2].decode(String?.self))
            }
        }
    }

    public func setInstallation(_ installation: Installation) throws {
        try writing("recording the installation", transaction: false) { s in
            try s.run(
                """
                INSERT INTO installation (id, repositoryRoot, policyRootCommit, policyRootDigest)
                VALUES (1, \(installation.repositoryRoot), \(installation.policyRootCommit),
                        \(installation.policyRootDigest))
                ON CONFLICT (id) DO UPDATE SET repositoryRoot = excluded.repositoryRoot,
                  policyRootCommit = excluded.policyRootCommit, policyRootDigest = excluded.policyRootDigest
                """)
        }
    }

    public func latestRunTime() throws -> Date? {
        try reading("reading the latest run") { s in
            try s.query("SELECT max(time) FROM run").first?[0].decode(Double?.self)
                .map { Date(timeIntervalSince1970: $0) }
        }
    }

    public func recordRun(time: Date, clockSupplied: Bool) throws {
        try writing("recording the run", transaction: false) { s in
            try s.run("INSERT INTO run (time, clockSupplied) VALUES (\(time.timeIntervalSince1970), \(clockSupplied))")
        }
    }

    public func pendingOutbox(now: Date, maxAge: TimeInterval) throws
        -> (pending: [OutboxMessage], expired: [OutboxMessage])
    {
        try writing("reading the outbox") { s in
            let rows = try s.query(
                """
                SELECT \(unescaped: PostgresRows.outboxColumns) FROM outbox
                WHERE deliveredAt IS NULL AND expiredAt IS NULL ORDER BY id
                """ as PostgresQuery)
            var pending: [OutboxMessage] = []
            var expired: [OutboxMessage] = []
            for row in rows {
                let (message, _) = try PostgresRows.message(row)
                if message.hasExpired(at: now, maxAge: maxAge) {
                    try s.run("UPDATE outbox SET expiredAt = \(now.timeIntervalSince1970) WHERE id = \(message.id)")
                    expired.append(message)
                } else {
                    pending.append(message)
                }
            }
            return (pending, expired)
        }
    }

    public func recordDelivery(id: Int64, at time: Date, error: String?) throws {
        try writing("recording a delivery", transaction: false) { s in
            if let error {
                try s.run("UPDATE outbox SET attempts = attempts + 1, lastError = \(error) WHERE id = \(id)")
            } else {
                try s.run(
                    """
                    UPDATE outbox SET attempts = attempts + 1, lastError = NULL,
                      deliveredAt = \(time.timeIntervalSince1970) WHERE id = \(id)
                    """)
            }
        }
    }

    public func outbox() throws -> [(message: OutboxMessage, delivered: Bool)] {
        try reading("reading the outbox") { s in
            try s.query("SELECT \(unescaped: PostgresRows.outboxColumns) FROM outbox ORDER BY id" as PostgresQuery)
                .map { row -> (message: OutboxMessage, delivered: Bool) in
                    let (message, delivered) = try PostgresRows.message(row)
                    return (message, delivered)
                }
        }
    }
}

extension PostgresStateStore: StateStorage {}
