import Foundation
import Logging
import NIOCore
import PostgresNIO
import RolloutCore

/// Why the PostgreSQL state cannot be used. Messages name the database without a password, and any
/// occurrence of the password in a server's or a library's text is replaced before it is kept.
public struct PostgresStateError: Error, CustomStringConvertible, Sendable {
    public var description: String

    init(_ location: PostgresLocation, doing what: String, _ error: Error, password: String?) {
        var text: String
        if let psql = error as? PSQLError {
            // PSQLError's own description is deliberately vague; the server's message says what went wrong.
            if let message = psql.serverInfo?[.message] {
                text = message + (psql.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? "")
            } else if let underlying = psql.underlying {
                text = "\(psql.code): \(underlying)"
            } else {
                text = "\(psql.code)"
            }
        } else {
            text = "\(error)"
        }
        description = Self.scrub("\(location.display): \(what): \(text)", password: password)
    }

    init(_ text: String) {
        description = text
    }

    static func scrub(_ text: String, password: String?) -> String {
        guard let password, !password.isEmpty else { return text }
        return text.replacingOccurrences(of: password, with: "********")
    }
}

/// The state of SPEC §5.10 in PostgreSQL (SPEC §10), for installations that run several replicas: the same
/// tables as the SQLite store, versioned migrations (a newer schema is refused), an audit log that the
/// database itself keeps append-only (a trigger raises on UPDATE, DELETE and TRUNCATE), the same intent/result
/// protocol and outbox.
///
/// One store is one session: every operation runs on it, one at a time, each in its own transaction. A
/// reconcile takes the installation's session advisory lock on that same session (`lockInstallation`), so
/// its writes can only land while it holds the lock; when the session drops, the server releases the lock and
/// every later operation of this store fails instead of reconnecting.
public final class PostgresStateStore: @unchecked Sendable {
    public let path: String
    public let location: PostgresLocation
    private let connection: PostgresConnection
    private let password: String?
    private let logger = Logger(label: "rolloutctl.state.postgres", factory: { _ in SwiftLogNoOpLogHandler() })
    /// Serialises operations: a transaction owns the session from BEGIN to COMMIT.
    private let serial = NSLock()
    /// How long one statement may take before the session is closed and the operation fails.
    private let statementTimeout: TimeAmount

    /// The advisory lock's first key: "rolloutctl" (the second is the installation's repository root).
    static let lockNamespace: Int32 = 0x726F_6C6C

    private init(
        location: PostgresLocation, connection: PostgresConnection, password: String?,
        statementTimeout: TimeAmount
    ) {
        self.location = location
        self.path = location.display
        self.connection = connection
        self.password = password
        self.statementTimeout = statementTimeout
    }

    deinit {
        // PostgresNIO insists on a closed connection before it goes; no event loop holds this store
        // (the statement timeout captures only the connection), so waiting here never blocks a loop.
        close()
    }

    /// Connects with the password from `PGPASSWORD` (never from the URL, never printed).
    static func connect(_ location: PostgresLocation, readOnly: Bool) throws -> PostgresStateStore {
        let password = ProcessInfo.processInfo.environment["PGPASSWORD"]
        var configuration = PostgresConnection.Configuration(
            host: location.host, port: location.port, username: location.user, password: password,
            database: location.database, tls: .disable)
        configuration.options.connectTimeout = .seconds(10)
        let logger = Logger(label: "rolloutctl.state.postgres", factory: { _ in SwiftLogNoOpLogHandler() })
        let future = PostgresConnection.connect(
            on: PostgresConnection.defaultEventLoopGroup.any(),
            configuration: configuration, id: 1, logger: logger)
        let connection: PostgresConnection
        do {
            connection = try future.wait()
        } catch {
            throw PostgresStateError(location, doing: "cannot connect", error, password: password)
        }
        let store = PostgresStateStore(
            location: location, connection: connection, password: password,
            statementTimeout: .seconds(60))
        if readOnly {
            try store.serialised { try store.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY") }
        }
        return store
    }

    /// False once the session is gone (closed here, or ended by the server): a long-lived reader opens another.
    public var isOpen: Bool { !connection.isClosed }

    /// Closes the session (releasing the advisory lock, if held).
    public func close() {
        guard !connection.isClosed else { return }
        _ = try? connection.close().wait()
    }

    // MARK: Opening, the SPEC §5.10 rules

    /// True when the database holds the rolloutctl schema.
    public static func schemaExists(_ location: PostgresLocation) throws -> Bool {
        let store = try connect(location, readOnly: true)
        defer { store.close() }
        return try store.serialised { try store.hasSchema() }
    }

    /// Creates the schema of a new installation (`rolloutctl init`); refuses a database that already has one.
    public static func create(_ location: PostgresLocation, installation: Installation) throws -> PostgresStateStore {
        let store = try connect(location, readOnly: false)
        if try store.serialised({ try store.hasSchema() }), try store.installation() != nil {
            throw StateStoreError.alreadyInitialised(path: location.display)
        }
        try store.migrate()
        try store.setInstallation(installation)
        return store
    }

    /// Opens the state for a reconcile; never creates one (SPEC §5.10).
    public static func open(_ location: PostgresLocation) throws -> PostgresStateStore {
        let store = try connect(location, readOnly: false)
        guard try store.serialised({ try store.hasSchema() }) else {
            throw StateStoreError.missing(path: location.display)
        }
        try store.migrate()
        return store
    }

    /// Opens the state read-only when it exists (`plan`, `status`, `history`); nil when the database has none.
    public static func openReadOnly(_ location: PostgresLocation) throws -> PostgresStateStore? {
        let store = try connect(location, readOnly: true)
        guard try store.serialised({ try store.hasSchema() }) else { return nil }
        let unknown = try store.serialised { try store.unknownMigrations() }
        guard unknown.isEmpty else { throw StateStoreError.newerSchema(path: location.display, unknown: unknown) }
        return store
    }

    // MARK: Migrations

    /// Versioned migrations, applied in order, each recorded in `schemaMigration`.
    static let migrations: [(identifier: String, statements: [String])] = [
        (
            "v1",
            [
                """
                CREATE TABLE rollout (name text PRIMARY KEY, flag text, phase text, enteredAt double precision,
                  status text NOT NULL, planBlob text, updatedAt double precision NOT NULL)
                """,
                """
                CREATE TABLE phaseEntry (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, rollout text NOT NULL,
                  phase text NOT NULL, enteredAt double precision NOT NULL, planBlob text)
                """,
                "CREATE INDEX phaseEntry_rollout ON phaseEntry (rollout)",
                """
                CREATE TABLE audit (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, time double precision NOT NULL,
                  rollout text NOT NULL, phase text, environment text, fromState text, toState text, reason text NOT NULL,
                  revision text, planBlob text, approvals text NOT NULL, kind text NOT NULL, result text,
                  intentID bigint REFERENCES audit (id), detail text, clockSupplied boolean NOT NULL DEFAULT false)
                """,
                "CREATE INDEX audit_rollout ON audit (rollout)",
                "CREATE INDEX audit_intentID ON audit (intentID)",
                // Append-only in the database itself: whatever client connects, the log cannot be rewritten.
                """
                CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$
                """,
                """
                CREATE TRIGGER audit_no_update_delete BEFORE UPDATE OR DELETE ON audit
                  FOR EACH ROW EXECUTE FUNCTION audit_append_only()
                """,
                """
                CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
                  FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()
                """,
                """
                CREATE TABLE installation (id integer PRIMARY KEY CHECK (id = 1), repositoryRoot text NOT NULL,
                  policyRootCommit text, policyRootDigest text)
                """,
                """
                CREATE TABLE run (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, time double precision NOT NULL,
                  clockSupplied boolean NOT NULL)
                """,
                "CREATE INDEX run_time ON run (time)",
                """
                CREATE TABLE outbox (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, eventKey text NOT NULL,
                  target text NOT NULL, rollout text NOT NULL, body text NOT NULL, createdAt double precision NOT NULL,
                  attempts bigint NOT NULL DEFAULT 0, lastError text, deliveredAt double precision,
                  expiredAt double precision, UNIQUE (eventKey, target))
                """,
                "CREATE INDEX outbox_pending ON outbox (id) WHERE deliveredAt IS NULL AND expiredAt IS NULL",
                // Intents without a result, kept small so that recovery never scans the audit log.
                "CREATE TABLE openIntent (intentID bigint PRIMARY KEY, rollout text NOT NULL)",
                """
                CREATE TABLE notifyBreach (rollout text NOT NULL, "check" text NOT NULL, PRIMARY KEY (rollout, "check"))
                """,
            ]
        ),
        // [r3] What the state keeps besides records: the branch and tip (SPEC §4.0), the guards (§5.13).
        ("v2-kept", ["CREATE TABLE kept (key text PRIMARY KEY, value text NOT NULL)"]),
    ]

    private func hasSchema() throws -> Bool {
        let rows = try query("SELECT to_regclass('schemaMigration') IS NOT NULL")
        return try rows.first?[0].decode(Bool.self) ?? false
    }

    private func unknownMigrations() throws -> [String] {
        let applied = try query("SELECT identifier FROM schemaMigration").map { try $0[0].decode(String.self) }
        let known = Set(Self.migrations.map(\.identifier))
        return applied.filter { !known.contains($0) }.sorted()
    }

    /// Applies the missing migrations in one transaction; two processes migrating at once take turns
    /// (a transaction-level advisory lock), and a schema with a migration this build does not know is refused.
    func migrate() throws {
        try transaction {
            try execute("SELECT pg_advisory_xact_lock(\(Self.lockNamespace), 0)")
            try execute(
                """
                CREATE TABLE IF NOT EXISTS schemaMigration (identifier text PRIMARY KEY,
                  appliedAt double precision NOT NULL)
                """)
            let unknown = try unknownMigrations()
            guard unknown.isEmpty else { throw StateStoreError.newerSchema(path: path, unknown: unknown) }
            let applied = Set(try query("SELECT identifier FROM schemaMigration").map { try $0[0].decode(String.self) })
            for migration in Self.migrations where !applied.contains(migration.identifier) {
                for statement in migration.statements { try execute(statement) }
                let now = Date().timeIntervalSince1970
                try run("INSERT INTO schemaMigration (identifier, appliedAt) VALUES (\(migration.identifier), \(now))")
            }
        }
    }

    // MARK: The installation lock (SPEC §5.11, §10)

    /// Takes the installation's session advisory lock, waiting up to `timeout`; false when another session
    /// holds it. The lock lives as long as this store's session.
    public func lockInstallation(timeout: Duration) throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            let taken = try serialised {
                try query(
                    """
                    SELECT pg_try_advisory_lock(\(Self.lockNamespace),
                      hashtext(coalesce((SELECT repositoryRoot FROM installation WHERE id = 1), '')))
                    """
                ).first?[0].decode(Bool.self) ?? false
            }
            if taken { return true }
            guard ContinuousClock.now < deadline else { return false }
            Thread.sleep(forTimeInterval: 0.1)
        }
    }

    /// Throws when the session that holds the lock is gone (the server has released the lock by then).
    public func checkSession() throws {
        try serialised { _ = try query("SELECT 1", timeout: .seconds(10)) }
    }

    // MARK: Session plumbing

    private func serialised<T>(_ body: () throws -> T) throws -> T {
        serial.lock()
        defer { serial.unlock() }
        return try body()
    }

    private func transaction<T>(_ body: () throws -> T) throws -> T {
        try serialised {
            try execute("BEGIN")
            do {
                let value = try body()
                try execute("COMMIT")
                return value
            } catch {
                _ = try? execute("ROLLBACK")
                throw error
            }
        }
    }

    private func execute(_ sql: String) throws {
        _ = try query(PostgresQuery(unsafeSQL: sql))
    }

    private func run(_ query: PostgresQuery) throws {
        _ = try self.query(query)
    }

    /// Runs one statement, waiting on the event loop's answer from this (non event loop) thread.
    /// A statement that hangs past the timeout closes the session: nothing may land after the wait gave up.
    private func query(_ query: PostgresQuery, timeout: TimeAmount? = nil) throws -> [PostgresRandomAccessRow] {
        // A query written to a closed channel is never answered: a session the server ended fails here, at once.
        guard !connection.isClosed else {
            throw PostgresStateError("\(path): the connection to the server was closed (the session ended)")
        }
        let statementTimeout = timeout ?? self.statementTimeout
        let future = connection.query(query, logger: logger)
        let loop = future.eventLoop
        let promise = loop.makePromise(of: PostgresQueryResult.self)
        let settled = Settled()
        let connection = self.connection
        let seconds = statementTimeout.nanoseconds / 1_000_000_000
        let message = "\(path): no answer within \(seconds) s; the session was closed"
        let timeout = loop.scheduleTask(in: statementTimeout) {
            guard !settled.done else { return }
            settled.done = true
            promise.fail(PostgresStateError(message))
            connection.close().whenComplete { _ in }
        }
        future.whenComplete { result in
            guard !settled.done else { return }
            settled.done = true
            timeout.cancel()
            promise.completeWith(result)
        }
        do {
            return try promise.futureResult.wait().rows.map { $0.makeRandomAccess() }
        } catch let error as PostgresStateError {
            throw error
        } catch {
            throw PostgresStateError(location, doing: "query failed", error, password: password)
        }
    }

    /// Confined to one event loop: the first of the answer and the timeout wins.
    private final class Settled: @unchecked Sendable {
        var done = false
    }

    // MARK: Decoding

    private static func stored(_ row: PostgresRandomAccessRow, path: String) throws -> StoredRollout {
        let entered = try row[3].decode(Double?.self)
        let name = try row[0].decode(String.self)
        let statusText = try row[4].decode(String.self)
        guard let status = RolloutStatus(rawValue: statusText) else {
            throw StateStoreError.unknownStatus(statusText, rollout: name, path: path)
        }
        return StoredRollout(
            name: name, flag: try row[1].decode(String?.self),
            record: RolloutRecord(
                phase: try row[2].decode(String?.self),
                enteredAt: entered.map { Date(timeIntervalSince1970: $0) },
                status: status,
                planBlob: try row[5].decode(String?.self)),
            updatedAt: Date(timeIntervalSince1970: try row[6].decode(Double.self)))
    }

    private static let rolloutColumns = "name, flag, phase, enteredAt, status, planBlob, updatedAt"
    private static let auditColumns = """
        a.id, a.time, a.rollout, a.phase, a.environment, a.fromState, a.toState, a.reason, a.revision, a.planBlob,
        a.approvals, a.kind, a.result, a.intentID, a.detail, a.clockSupplied
        """
    private static let outboxColumns = "id, eventKey, target, rollout, body, createdAt, attempts, deliveredAt"

    private static func entry(_ row: PostgresRandomAccessRow) throws -> AuditEntry {
        let decoder = JSONDecoder()
        func state(_ index: Int) throws -> FlagEnvironmentState? {
            guard let text = try row[index].decode(String?.self) else { return nil }
            return try? decoder.decode(FlagEnvironmentState.self, from: Data(text.utf8))
        }
        let approvalsText = try row[10].decode(String.self)
        var entry = AuditEntry(
            time: Date(timeIntervalSince1970: try row[1].decode(Double.self)), rollout: try row[2].decode(String.self),
            phase: try row[3].decode(String?.self), environment: try row[4].decode(String?.self), from: try state(5),
            to: try state(6), reason: try row[7].decode(String.self), revision: try row[8].decode(String?.self),
            planBlob: try row[9].decode(String?.self),
            approvals: (try? decoder.decode([String].self, from: Data(approvalsText.utf8))) ?? [],
            kind: AuditEntry.Kind(rawValue: try row[11].decode(String.self)) ?? .event,
            result: try row[12].decode(String?.self), intentID: try row[13].decode(Int64?.self),
            detail: try row[14].decode(String?.self))
        entry.id = try row[0].decode(Int64.self)
        entry.clockSupplied = try row[15].decode(Bool.self)
        return entry
    }

    private static func message(_ row: PostgresRandomAccessRow) throws -> (OutboxMessage, Bool) {
        var message = OutboxMessage(
            key: try row[1].decode(String.self), target: try row[2].decode(String.self),
            rollout: try row[3].decode(String.self), body: try row[4].decode(String.self),
            createdAt: Date(timeIntervalSince1970: try row[5].decode(Double.self)),
            attempts: try row[6].decode(Int.self))
        message.id = try row[0].decode(Int64.self)
        return (message, try row[7].decode(Double?.self) != nil)
    }

    // MARK: Writes shared by several operations (inside a transaction)

    private func insert(_ entry: AuditEntry) throws -> Int64 {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        func text<T: Encodable>(_ value: T?) throws -> String? {
            try value.map { String(decoding: try encoder.encode($0), as: UTF8.self) }
        }
        let from = try text(entry.from)
        let to = try text(entry.to)
        let approvals = try text(entry.approvals) ?? "[]"
        // One statement, so one round trip and atomic without BEGIN/COMMIT: the open-intent bookkeeping rides
        // along in data-modifying CTEs (each runs exactly once, whether or not the final SELECT reads it).
        var open = ""
        var close = " RETURNING id"
        if entry.kind == .intent {
            open = "WITH a AS ("
            close =
                " RETURNING id, rollout), o AS (INSERT INTO openIntent (intentID, rollout) "
                + "SELECT id, rollout FROM a) SELECT id FROM a"
        } else if let intentID = entry.intentID {
            open = "WITH a AS ("
            close = " RETURNING id), d AS (DELETE FROM openIntent WHERE intentID = \(intentID)) SELECT id FROM a"
        }
        let rows = try query(
            """
            \(unescaped: open)INSERT INTO audit (time, rollout, phase, environment, fromState, toState, reason, revision,
                               planBlob, approvals, kind, result, intentID, detail, clockSupplied)
            VALUES (\(entry.time.timeIntervalSince1970), \(entry.rollout), \(entry.phase), \(entry.environment),
                    \(from), \(to), \(entry.reason), \(entry.revision), \(entry.planBlob), \(approvals),
                    \(entry.kind.rawValue), \(entry.result), \(entry.intentID), \(entry.detail), \(entry.clockSupplied))
            \(unescaped: close)
            """ as PostgresQuery)
        guard let id = try rows.first?[0].decode(Int64.self) else {
            throw PostgresStateError("\(path): the audit insert returned no id")
        }
        return id
    }

    private func queue(_ outbox: [OutboxMessage]) throws {
        for message in outbox {
            try run(
                """
                INSERT INTO outbox (eventKey, target, rollout, body, createdAt)
                VALUES (\(message.key), \(message.target), \(message.rollout), \(message.body),
                        \(message.createdAt.timeIntervalSince1970))
                ON CONFLICT (eventKey, target) DO NOTHING
                """)
        }
    }
}

extension PostgresStateStore: StateStorage {
    public func breachingNotifyChecks(rollout: String) throws -> Set<String> {
        try serialised {
            Set(
                try query("SELECT \"check\" FROM notifyBreach WHERE rollout = \(rollout)")
                    .map { try $0[0].decode(String.self) })
        }
    }

    public func saveBreachingNotifyChecks(
        rollout: String, checks: Set<String>, audit entries: [AuditEntry],
        outbox: [OutboxMessage]
    ) throws {
        try transaction {
            try queue(outbox)
            try run("DELETE FROM notifyBreach WHERE rollout = \(rollout)")
            for check in checks.sorted() {
                try run("INSERT INTO notifyBreach (rollout, \"check\") VALUES (\(rollout), \(check))")
            }
            for entry in entries { _ = try insert(entry) }
        }
    }

    public func keptValues(prefix: String) throws -> [String: String] {
        try serialised {
            var values: [String: String] = [:]
            // A read-only look at a state not yet migrated to r3 has no such table: nothing kept yet.
            guard try query("SELECT to_regclass('kept') IS NOT NULL").first?[0].decode(Bool.self) == true else {
                return values
            }
            for row in try query("SELECT key, value FROM kept WHERE starts_with(key, \(prefix))") {
                values[try row[0].decode(String.self)] = try row[1].decode(String.self)
            }
            return values
        }
    }

    public func keep(_ values: [String: String?], audit entries: [AuditEntry], outbox: [OutboxMessage]) throws {
        try transaction {
            try queue(outbox)
            for (key, value) in values.sorted(by: { $0.key < $1.key }) {
                if let value {
                    try run(
                        "INSERT INTO kept (key, value) VALUES (\(key), \(value)) ON CONFLICT (key) DO UPDATE SET value = \(value)"
                    )
                } else {
                    try run("DELETE FROM kept WHERE key = \(key)")
                }
            }
            for entry in entries { _ = try insert(entry) }
        }
    }

    public func rollout(_ name: String) throws -> StoredRollout? {
        try serialised {
            try query("SELECT \(unescaped: Self.rolloutColumns) FROM rollout WHERE name = \(name)")
                .first.map { try Self.stored($0, path: path) }
        }
    }

    public func allRollouts() throws -> [StoredRollout] {
        try serialised {
            // COLLATE "C": the byte order SQLite sorts names in.
            try query(
                "SELECT \(unescaped: Self.rolloutColumns) FROM rollout ORDER BY name COLLATE \"C\""
                    as PostgresQuery
            ).map { try Self.stored($0, path: path) }
        }
    }

    public func save(
        rollout name: String, flag: String?, record: RolloutRecord, now: Date, enteredPhase: Bool,
        audit entries: [AuditEntry], outbox: [OutboxMessage]
    ) throws {
        try transaction {
            try queue(outbox)
            try run(
                """
                INSERT INTO rollout (name, flag, phase, enteredAt, status, planBlob, updatedAt)
                VALUES (\(name), \(flag), \(record.phase), \(record.enteredAt?.timeIntervalSince1970),
                        \(record.status.rawValue), \(record.planBlob), \(now.timeIntervalSince1970))
                ON CONFLICT (name) DO UPDATE SET flag = excluded.flag, phase = excluded.phase,
                  enteredAt = excluded.enteredAt, status = excluded.status, planBlob = excluded.planBlob,
                  updatedAt = excluded.updatedAt
                """)
            if enteredPhase, let phase = record.phase, let entered = record.enteredAt {
                try run(
                    """
                    INSERT INTO phaseEntry (rollout, phase, enteredAt, planBlob)
                    VALUES (\(name), \(phase), \(entered.timeIntervalSince1970), \(record.planBlob))
                    """)
            }
            for entry in entries { _ = try insert(entry) }
        }
    }

    public func phaseEntries(rollout: String) throws -> [(phase: String, enteredAt: Date)] {
        try serialised {
            try query("SELECT phase, enteredAt FROM phaseEntry WHERE rollout = \(rollout) ORDER BY id").map {
                (try $0[0].decode(String.self), Date(timeIntervalSince1970: try $0[1].decode(Double.self)))
            }
        }
    }

    @discardableResult
    public func append(_ entry: AuditEntry) throws -> Int64 {
        try serialised { try insert(entry) }  // one statement: atomic on its own
    }

    public func history(rollout: String?, limit: Int?) throws -> [AuditEntry] {
        try serialised {
            var sql: PostgresQuery = "SELECT \(unescaped: Self.auditColumns) FROM audit a ORDER BY a.id DESC"
            if let rollout {
                sql = """
                    SELECT \(unescaped: Self.auditColumns) FROM audit a WHERE a.rollout = \(rollout) ORDER BY a.id DESC
                    """
            }
            if let limit {
                sql = PostgresQuery(unsafeSQL: sql.sql + " LIMIT \(max(0, limit))", binds: sql.binds)
            }
            return try query(sql).map(Self.entry)
        }
    }

    public func unresolvedIntents(rollout: String) throws -> [AuditEntry] {
        try serialised {
            try query(
                """
                SELECT \(unescaped: Self.auditColumns) FROM openIntent o JOIN audit a ON a.id = o.intentID
                WHERE o.rollout = \(rollout) ORDER BY o.intentID
                """
            ).map(Self.entry)
        }
    }

    public func allUnresolvedIntents() throws -> [String: [AuditEntry]] {
        try serialised {
            let entries = try query(
                """
                SELECT \(unescaped: Self.auditColumns) FROM openIntent o JOIN audit a ON a.id = o.intentID
                ORDER BY o.intentID
                """ as PostgresQuery
            ).map(Self.entry)
            return Dictionary(grouping: entries, by: \.rollout)
        }
    }

    public func installation() throws -> Installation? {
        try serialised {
            guard try hasSchema() else { return nil }
            return try query("SELECT repositoryRoot, policyRootCommit, policyRootDigest FROM installation WHERE id = 1")
                .first.map {
                    Installation(
                        repositoryRoot: try $0[0].decode(String.self),
                        policyRootCommit: try $0[1].decode(String?.self),
                        policyRootDigest: try $0[2].decode(String?.self))
                }
        }
    }

    public func setInstallation(_ installation: Installation) throws {
        try serialised {
            try run(
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
        try serialised {
            try query("SELECT max(time) FROM run").first?[0].decode(Double?.self)
                .map { Date(timeIntervalSince1970: $0) }
        }
    }

    public func recordRun(time: Date, clockSupplied: Bool) throws {
        try serialised {
            try run("INSERT INTO run (time, clockSupplied) VALUES (\(time.timeIntervalSince1970), \(clockSupplied))")
        }
    }

    public func pendingOutbox(now: Date, maxAge: TimeInterval) throws
        -> (pending: [OutboxMessage], expired: [OutboxMessage])
    {
        try transaction {
            let rows = try query(
                """
                SELECT \(unescaped: Self.outboxColumns) FROM outbox
                WHERE deliveredAt IS NULL AND expiredAt IS NULL ORDER BY id
                """ as PostgresQuery)
            var pending: [OutboxMessage] = []
            var expired: [OutboxMessage] = []
            for row in rows {
                let (message, _) = try Self.message(row)
                if now.timeIntervalSince(message.createdAt) > maxAge {
                    try run("UPDATE outbox SET expiredAt = \(now.timeIntervalSince1970) WHERE id = \(message.id)")
                    expired.append(message)
                } else {
                    pending.append(message)
                }
            }
            return (pending, expired)
        }
    }

    public func recordDelivery(id: Int64, at time: Date, error: String?) throws {
        try serialised {
            if let error {
                try run("UPDATE outbox SET attempts = attempts + 1, lastError = \(error) WHERE id = \(id)")
            } else {
                try run(
                    """
                    UPDATE outbox SET attempts = attempts + 1, lastError = NULL,
                      deliveredAt = \(time.timeIntervalSince1970) WHERE id = \(id)
                    """)
            }
        }
    }

    public func outbox() throws -> [(message: OutboxMessage, delivered: Bool)] {
        try serialised {
            try query("SELECT \(unescaped: Self.outboxColumns) FROM outbox ORDER BY id" as PostgresQuery)
                .map { row -> (message: OutboxMessage, delivered: Bool) in
                    let (message, delivered) = try Self.message(row)
                    return (message, delivered)
                }
        }
    }
}
