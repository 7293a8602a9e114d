import Foundation
import GRDB
import RolloutCore

/// State and audit in SQLite (WAL), schema versioned with GRDB's migrator. Every write is a
/// transaction: a run killed at any point leaves the database as it was before or after a write.
public final class SQLiteStateStore: Sendable {
    private let queue: DatabaseQueue
    public let path: String

    /// Opens (and migrates) the database at `path`, creating it and its folder when missing.
    /// Commands use `create` (init), `open` (reconcile) or `openReadOnly` (plan, status, history).
    public convenience init(path: String) throws {
        try FileManager.default.createDirectory(
            at: URL(fileURLWithPath: path).deletingLastPathComponent(),
            withIntermediateDirectories: true)
        try self.init(existing: path, readOnly: false)
    }

    /// Why the state can only be read (SPEC §6 [r3]): nil when it is writable. A read-only mount or
    /// another user's file; a WAL database without its `-shm` in a folder that cannot be written is
    /// read as immutable (exact, since without `-shm` there is no uncheckpointed WAL to read).
    public let readOnlyReason: String?

    /// Set when the state was opened for a run but can only be read (see `open(path:)`).
    public let unwritableReason: String?

    private init(existing path: String, readOnly: Bool, unwritable: String? = nil) throws {
        self.path = path
        unwritableReason = unwritable
        // Only `init` creates a state: an existing file must be a state before anything is written to it.
        let fileExists = FileManager.default.fileExists(atPath: path)
        if fileExists { try StateFileCheck.check(path) }
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.readonly = readOnly
        if !readOnly {
            configuration.prepareDatabase { db in
                try db.execute(sql: "PRAGMA journal_mode = WAL")
                try db.execute(sql: "PRAGMA synchronous = FULL")
            }
        }
        do {
            let opened =
                readOnly
                ? try Self.openForReading(path, configuration: configuration)
                : (try DatabaseQueue(path: path, configuration: configuration), nil)
            queue = opened.0
            readOnlyReason = opened.1
            let (applied, known) = try queue.read { db -> (Set<String>, Bool) in
                let known = try db.tableExists("grdb_migrations")
                return (known ? try Self.migrator.appliedIdentifiers(db) : [], known)
            }
            if fileExists, !known {
                throw StateStoreError.damaged(
                    path: path, detail: "it is an SQLite database without rolloutctl's tables, not a state")
            }
            let unknown = applied.subtracting(Self.migrator.migrations)
            guard unknown.isEmpty else { throw StateStoreError.newerSchema(path: path, unknown: unknown.sorted()) }
            if !readOnly { try Self.migrator.migrate(queue) }
        } catch let error as DatabaseError {
            throw StateFileCheck.explain(error, path: path)
        }
    }

    /// A read-only connection; when SQLite cannot open it so (a WAL database whose `-shm` is missing
    /// and cannot be made), the file as immutable.
    private static func openForReading(_ path: String, configuration: Configuration) throws
        -> (DatabaseQueue, String?)
    {
        let writable =
            access(path, W_OK) == 0
            && access(URL(fileURLWithPath: path).deletingLastPathComponent().path, W_OK) == 0
        let reason =
            writable
            ? nil : "it cannot be written (a read-only mount or another user's file); it is read without writing"
        do {
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            _ = try queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM sqlite_master") }
            return (queue, reason)
        } catch let error as DatabaseError
            where error.resultCode == .SQLITE_CANTOPEN || error.resultCode == .SQLITE_READONLY
        {
            let wal = (try? FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? NSNumber)??.intValue
            guard (wal ?? 0) == 0 else {
                throw StateStoreError.unwritable(
                    path: path,
                    detail: "it can only be read with its -shm file, which is missing and cannot be created, "
                        + "and its -wal holds changes not yet in the database; mount it writable once, or copy "
                        + "the state, its -wal and -shm elsewhere to read it")
            }
            var encoded = "file:"
            for byte in path.utf8 {
                let safe =
                    (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                    || "/._-~".utf8.contains(byte)
                encoded += safe ? String(UnicodeScalar(byte)) : String(format: "%%%02X", byte)
            }
            let queue = try DatabaseQueue(path: encoded + "?immutable=1", configuration: configuration)
            return (queue, reason ?? "it is read as immutable (its -shm file cannot be created)")
        }
    }

    /// `queue.read`, with SQLite's errors about the file itself explained (path, what, what to do).
    private func read<T>(_ body: (Database) throws -> T) throws -> T {
        do { return try queue.read(body) } catch let error as DatabaseError {
            throw StateFileCheck.explain(error, path: path)
        }
    }

    /// `queue.write`, with SQLite's errors about the file itself explained.
    private func write<T>(_ body: (Database) throws -> T) throws -> T {
        do { return try queue.write(body) } catch let error as DatabaseError {
            throw StateFileCheck.explain(error, path: path)
        }
    }

    /// Creates the state of a new installation (`rolloutctl init`); refuses an existing one.
    public static func create(path: String, installation: Installation) throws -> SQLiteStateStore {
        guard !FileManager.default.fileExists(atPath: path) else {
            throw StateStoreError.alreadyInitialised(path: path)
        }
        let store = try SQLiteStateStore(path: path)
        try store.setInstallation(installation)
        return store
    }

    /// Opens the state of an installation for a reconcile; never creates one (SPEC §5.10).
    /// A state that cannot be written (disk full, read-only) is opened for reading, with
    /// `unwritableReason` set: the run records nothing and still lowers exposure (SPEC §5 rule 3 [r3]).
    public static func open(path: String) throws -> SQLiteStateStore {
        guard FileManager.default.fileExists(atPath: path) else { throw StateStoreError.missing(path: path) }
        do {
            return try SQLiteStateStore(existing: path, readOnly: false)
        } catch StateStoreError.unwritable(_, let detail) {
            return try SQLiteStateStore(
                existing: path, readOnly: true, unwritable: "the state at \(path) cannot be written: \(detail)")
        }
    }

    /// Opens the database read-only when it exists (for `plan` and `status`, which never write it).
    public static func openReadOnly(path: String) throws -> SQLiteStateStore? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        return try SQLiteStateStore(existing: path, readOnly: true)
    }

    /// Opens the database only when it exists, read-only.
    public static func openIfExists(path: String) throws -> SQLiteStateStore? {
        try openReadOnly(path: path)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: "rollout") { t in
                t.primaryKey("name", .text)
                t.column("flag", .text)
                t.column("phase", .text)
                t.column("enteredAt", .double)
                t.column("status", .text).notNull()
                t.column("planBlob", .text)
                t.column("updatedAt", .double).notNull()
            }
            try db.create(table: "phaseEntry") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("rollout", .text).notNull().indexed()
                t.column("phase", .text).notNull()
                t.column("enteredAt", .double).notNull()
                t.column("planBlob", .text)
            }
            try db.create(table: "audit") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("time", .double).notNull()
                t.column("rollout", .text).notNull().indexed()
                t.column("phase", .text)
                t.column("environment", .text)
                t.column("fromState", .text)
                t.column("toState", .text)
                t.column("reason", .text).notNull()
                t.column("revision", .text)
                t.column("planBlob", .text)
                t.column("approvals", .text).notNull()
                t.column("kind", .text).notNull()
                t.column("result", .text)
                t.column("intentID", .integer).references("audit")
                t.column("detail", .text)
            }
            // Append-only: the log refuses updates and deletes.
            try db.execute(
                sql: """
                    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN
                      SELECT RAISE(ABORT, 'the audit log is append-only'); END;
                    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN
                      SELECT RAISE(ABORT, 'the audit log is append-only'); END;
                    """)
        }
        migrator.registerMigration("v2-installation-outbox-open-intents") { db in
            try db.execute(
                sql: """
                    CREATE TABLE installation (
                      id INTEGER PRIMARY KEY CHECK (id = 1), repositoryRoot TEXT NOT NULL,
                      policyRootCommit TEXT, policyRootDigest TEXT);
                    CREATE TABLE run (id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL,
                      clockSupplied INTEGER NOT NULL);
                    CREATE TABLE outbox (
                      id INTEGER PRIMARY KEY AUTOINCREMENT, eventKey TEXT NOT NULL, target TEXT NOT NULL,
                      rollout TEXT NOT NULL, body TEXT NOT NULL, createdAt REAL NOT NULL,
                      attempts INTEGER NOT NULL DEFAULT 0, lastError TEXT, deliveredAt REAL, expiredAt REAL,
                      UNIQUE (eventKey, target));
                    CREATE INDEX outbox_pending ON outbox(id) WHERE deliveredAt IS NULL AND expiredAt IS NULL;
                    -- Intents without a result, kept small so that recovery never scans the audit log.
                    CREATE TABLE openIntent (intentID INTEGER PRIMARY KEY, rollout TEXT NOT NULL);
                    INSERT INTO openIntent (intentID, rollout)
                      SELECT i.id, i.rollout FROM audit i WHERE i.kind = 'intent'
                        AND NOT EXISTS (SELECT 1 FROM audit r WHERE r.intentID = i.id);
                    ALTER TABLE audit ADD COLUMN clockSupplied INTEGER NOT NULL DEFAULT 0;
                    CREATE INDEX audit_intentID ON audit(intentID);
                    CREATE INDEX run_time ON run(time);
                    """)
        }
        // [issue 11] The `notify` checks breaching at the last run (NotifyWatch's episodes).
        migrator.registerMigration("v3-notify-watch") { db in
            try db.create(table: "notifyBreach") { t in
                t.column("rollout", .text).notNull()
                t.column("check", .text).notNull()
                t.primaryKey(["rollout", "check"])
            }
        }
        // [r3] What the state keeps besides records: the branch and tip (SPEC §4.0), the guards (§5.13).
        migrator.registerMigration("v4-kept") { db in
            try db.create(table: "kept") { t in
                t.primaryKey("key", .text)
                t.column("value", .text).notNull()
            }
        }
        return migrator
    }

    // MARK: Kept values

    public func keptValues(prefix: String) throws -> [String: String] {
        try queue.read { db in
            guard try db.tableExists("kept") else { return [:] }  // a read-only state not yet migrated
            var values: [String: String] = [:]
            for row in try Row.fetchAll(
                db, sql: "SELECT key, value FROM kept WHERE substr(key, 1, ?) = ?",
                arguments: [prefix.utf8.count, prefix])
            {
                let key: String? = row[0]
                let value: String? = row[1]
                if let key, let value { values[key] = value }
            }
            return values
        }
    }

    public func keep(_ values: [String: String?], audit entries: [AuditEntry], outbox: [OutboxMessage]) throws {
        try queue.write { db in
            try Self.queue(outbox, db)
            for (key, value) in values.sorted(by: { $0.key < $1.key }) {
                if let value {
                    try db.execute(
                        sql: "INSERT INTO kept (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = ?",
                        arguments: [key, value, value])
                } else {
                    try db.execute(sql: "DELETE FROM kept WHERE key = ?", arguments: [key])
                }
            }
            for entry in entries { _ = try Self.insert(entry, db) }
        }
    }

    // MARK: Notify checks

    /// The `notify` checks of a rollout breaching at its last applied run.
    public func breachingNotifyChecks(rollout: String) throws -> Set<String> {
        try read { db in
            Set(
                try String.fetchAll(
                    db, sql: "SELECT \"check\" FROM notifyBreach WHERE rollout = ?",
                    arguments: [rollout]))
        }
    }

    /// Replaces the breaching set of a rollout and appends the audit entries of the new episodes, in one transaction.
    public func saveBreachingNotifyChecks(
        rollout: String, checks: Set<String>, audit entries: [AuditEntry],
        outbox: [OutboxMessage] = []
    ) throws {
        try write { db in
            try Self.queue(outbox, db)
            try db.execute(sql: "DELETE FROM notifyBreach WHERE rollout = ?", arguments: [rollout])
            for check in checks.sorted() {
                try db.execute(
                    sql: "INSERT INTO notifyBreach (rollout, \"check\") VALUES (?, ?)",
                    arguments: [rollout, check])
            }
            for entry in entries { _ = try Self.insert(entry, db) }
        }
    }

    // MARK: Rollouts

    public func rollout(_ name: String) throws -> StoredRollout? {
        try read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM rollout WHERE name = ?", arguments: [name]).map { try stored($0) }
        }
    }

    public func allRollouts() throws -> [StoredRollout] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM rollout ORDER BY name").map { try stored($0) }
        }
    }

    private func stored(_ row: Row) throws -> StoredRollout {
        let row = CheckedRow(row: row, table: "rollout", path: path)
        let entered: Double? = try row.optional("enteredAt")
        let name: String = try row.value("name")
        let statusText: String = try row.value("status")
        guard let status = RolloutStatus(rawValue: statusText) else {
            throw StateStoreError.unknownStatus(statusText, rollout: name, path: path)
        }
        return StoredRollout(
            name: name, flag: try row.optional("flag"),
            record: RolloutRecord(
                phase: try row.optional("phase"), enteredAt: entered.map { Date(timeIntervalSince1970: $0) },
                status: status, planBlob: try row.optional("planBlob")),
            updatedAt: Date(timeIntervalSince1970: try row.value("updatedAt")))
    }

    /// Queues notifications in the caller's transaction (delivered after the run by the outbox).
    private static func queue(_ outbox: [OutboxMessage], _ db: Database) throws {
        for message in outbox {
            try db.execute(
                sql: """
                    INSERT OR IGNORE INTO outbox (eventKey, target, rollout, body, createdAt) VALUES (?, ?, ?, ?, ?)
                    """,
                arguments: [
                    message.key, message.target, message.rollout, message.body,
                    message.createdAt.timeIntervalSince1970,
                ])
        }
    }

    /// Writes a rollout's record, and the audit entries that explain it, in one transaction.
    public func save(
        rollout name: String, flag: String?, record: RolloutRecord, now: Date,
        enteredPhase: Bool, audit entries: [AuditEntry] = [], outbox: [OutboxMessage] = []
    ) throws {
        try write { db in
            try Self.queue(outbox, db)
            try db.execute(
                sql: """
                    INSERT INTO rollout (name, flag, phase, enteredAt, status, planBlob, updatedAt)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT(name) DO UPDATE SET flag = excluded.flag, phase = excluded.phase,
                      enteredAt = excluded.enteredAt, status = excluded.status, planBlob = excluded.planBlob,
                      updatedAt = excluded.updatedAt
                    """,
                arguments: [
                    name, flag, record.phase, record.enteredAt?.timeIntervalSince1970,
                    record.status.rawValue, record.planBlob, now.timeIntervalSince1970,
                ])
            if enteredPhase, let phase = record.phase, let entered = record.enteredAt {
                try db.execute(
                    sql: "INSERT INTO phaseEntry (rollout, phase, enteredAt, planBlob) VALUES (?, ?, ?, ?)",
                    arguments: [name, phase, entered.timeIntervalSince1970, record.planBlob])
            }
            for entry in entries { _ = try Self.insert(entry, db) }
        }
    }

    /// Phase entry times of a rollout, oldest first.
    public func phaseEntries(rollout: String) throws -> [(phase: String, enteredAt: Date)] {
        try read { db in
            try Row.fetchAll(
                db, sql: "SELECT phase, enteredAt FROM phaseEntry WHERE rollout = ? ORDER BY id",
                arguments: [rollout]
            ).map { ($0["phase"], Date(timeIntervalSince1970: $0["enteredAt"])) }
        }
    }

    // MARK: Audit

    /// Appends one entry in its own transaction and returns its id.
    @discardableResult
    public func append(_ entry: AuditEntry) throws -> Int64 {
        try write { db in try Self.insert(entry, db) }
    }

    private static func insert(_ entry: AuditEntry, _ db: Database) throws -> Int64 {
        let row = AuditRow(entry)
        try db.execute(
            sql: """
                INSERT INTO audit (time, rollout, phase, environment, fromState, toState, reason, revision, planBlob,
                                   approvals, kind, result, intentID, detail, clockSupplied)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                row.time, row.rollout, row.phase, row.environment, row.fromState, row.toState, row.reason,
                row.revision, row.planBlob, row.approvals, row.kind, row.result, row.intentID, row.detail,
                row.clockSupplied,
            ])
        let id = db.lastInsertedRowID
        if entry.kind == .intent {
            try db.execute(
                sql: "INSERT INTO openIntent (intentID, rollout) VALUES (?, ?)", arguments: [id, entry.rollout])
        } else if let intentID = entry.intentID {
            try db.execute(sql: "DELETE FROM openIntent WHERE intentID = ?", arguments: [intentID])
        }
        return id
    }

    /// Audit entries, newest first.
    public func history(rollout: String? = nil, limit: Int? = nil) throws -> [AuditEntry] {
        try read { db in
            var sql = "SELECT * FROM audit"
            var arguments: StatementArguments = []
            if let rollout {
                sql += " WHERE rollout = ?"
                arguments += [rollout]
            }
            sql += " ORDER BY id DESC"
            if let limit { sql += " LIMIT \(max(0, limit))" }
            return try Row.fetchAll(db, sql: sql, arguments: arguments).map { try entry($0) }
        }
    }

    /// Intents that have no result: written by a run that stopped before the flag service answered.
    public func unresolvedIntents(rollout: String) throws -> [AuditEntry] {
        try read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT a.* FROM openIntent o CROSS JOIN audit a ON a.id = o.intentID WHERE o.rollout = ?
                    ORDER BY o.intentID
                    """, arguments: [rollout]
            ).map { try entry($0) }
        }
    }

    /// Every intent without a result, by rollout: one small read per run, whatever the audit's size.
    public func allUnresolvedIntents() throws -> [String: [AuditEntry]] {
        try read { db in
            // CROSS JOIN keeps openIntent the outer loop: without statistics SQLite would scan the
            // whole audit log and probe openIntent (what made reconcile grow with the log).
            let entries = try Row.fetchAll(
                db,
                sql: """
                    SELECT a.* FROM openIntent o CROSS JOIN audit a ON a.id = o.intentID ORDER BY o.intentID
                    """
            ).map { try entry($0) }
            return Dictionary(grouping: entries, by: \.rollout)
        }
    }

    // MARK: Installation and runs

    /// The installation this state belongs to; nil for a state made before `rolloutctl init` existed.
    public func installation() throws -> Installation? {
        try read { db in
            guard try db.tableExists("installation") else { return nil }
            return try Row.fetchOne(db, sql: "SELECT * FROM installation WHERE id = 1").map {
                Installation(
                    repositoryRoot: $0["repositoryRoot"], policyRootCommit: $0["policyRootCommit"],
                    policyRootDigest: $0["policyRootDigest"])
            }
        }
    }

    public func setInstallation(_ installation: Installation) throws {
        try write { db in
            try db.execute(
                sql: """
                    INSERT INTO installation (id, repositoryRoot, policyRootCommit, policyRootDigest) VALUES (1, ?, ?, ?)
                    ON CONFLICT(id) DO UPDATE SET repositoryRoot = excluded.repositoryRoot,
                      policyRootCommit = excluded.policyRootCommit, policyRootDigest = excluded.policyRootDigest
                    """,
                arguments: [
                    installation.repositoryRoot, installation.policyRootCommit,
                    installation.policyRootDigest,
                ])
        }
    }

    /// The time of the latest reconcile run recorded (SPEC §5.12: time never runs backwards).
    public func latestRunTime() throws -> Date? {
        try read { db in
            guard try db.tableExists("run") else { return nil }
            return try Double.fetchOne(db, sql: "SELECT max(time) FROM run").map { Date(timeIntervalSince1970: $0) }
        }
    }

    public func recordRun(time: Date, clockSupplied: Bool) throws {
        try write { db in
            try db.execute(
                sql: "INSERT INTO run (time, clockSupplied) VALUES (?, ?)",
                arguments: [time.timeIntervalSince1970, clockSupplied])
        }
    }

    // MARK: Outbox

    /// Notifications not yet delivered and queued less than `maxAge` before `now`, oldest first;
    /// older ones are marked expired (SPEC §5.10: retried for 24 hours).
    public func pendingOutbox(now: Date, maxAge: TimeInterval = OutboxMessage.retention) throws -> (
        pending: [OutboxMessage], expired: [OutboxMessage]
    ) {
        try write { db in
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT * FROM outbox WHERE deliveredAt IS NULL AND expiredAt IS NULL ORDER BY id
                    """)
            var pending: [OutboxMessage] = []
            var expired: [OutboxMessage] = []
            for row in rows {
                let message = try outboxMessage(row)
                if message.hasExpired(at: now, maxAge: maxAge) {
                    try db.execute(
                        sql: "UPDATE outbox SET expiredAt = ? WHERE id = ?",
                        arguments: [now.timeIntervalSince1970, message.id])
                    expired.append(message)
                } else {
                    pending.append(message)
                }
            }
            return (pending, expired)
        }
    }

    /// Records one delivery attempt of an outbox message.
    public func recordDelivery(id: Int64, at time: Date, error: String?) throws {
        try write { db in
            if let error {
                try db.execute(
                    sql: "UPDATE outbox SET attempts = attempts + 1, lastError = ? WHERE id = ?",
                    arguments: [error, id])
            } else {
                try db.execute(
                    sql: "UPDATE outbox SET attempts = attempts + 1, lastError = NULL, deliveredAt = ? WHERE id = ?",
                    arguments: [time.timeIntervalSince1970, id])
            }
        }
    }

    /// Every outbox message, delivered or not (for tests and `status`).
    public func outbox() throws -> [(message: OutboxMessage, delivered: Bool)] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM outbox ORDER BY id").map { row in
                let message = try outboxMessage(row)
                let delivered: Double? = try CheckedRow(row: row, table: "outbox", path: path).optional("deliveredAt")
                return (message, delivered != nil)
            }
        }
    }

    private func outboxMessage(_ row: Row) throws -> OutboxMessage {
        let row = CheckedRow(row: row, table: "outbox", path: path)
        var message = OutboxMessage(
            key: try row.value("eventKey"), target: try row.value("target"), rollout: try row.value("rollout"),
            body: try row.value("body"), createdAt: Date(timeIntervalSince1970: try row.value("createdAt")),
            attempts: try row.value("attempts"))
        message.id = try row.value("id")
        return message
    }

    private func entry(_ row: Row) throws -> AuditEntry {
        let row = CheckedRow(row: row, table: "audit", path: path)
        return AuditRow(
            id: try row.value("id"), time: try row.value("time"), rollout: try row.value("rollout"),
            phase: try row.optional("phase"), environment: try row.optional("environment"),
            fromState: try row.optional("fromState"), toState: try row.optional("toState"),
            reason: try row.value("reason"), revision: try row.optional("revision"),
            planBlob: try row.optional("planBlob"),
            approvals: try row.value("approvals"), kind: try row.value("kind"), result: try row.optional("result"),
            intentID: try row.optional("intentID"), detail: try row.optional("detail"),
            clockSupplied: try row.optional("clockSupplied")
        ).entry
    }
}
