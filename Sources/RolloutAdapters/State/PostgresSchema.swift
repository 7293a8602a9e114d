import Foundation
import PostgresNIO

/// The PostgreSQL state's schema (SPEC §10): the same tables as the SQLite store, versioned migrations applied in
/// order and recorded in `schemaMigration` (a schema with a migration this build does not know is refused), and an
/// audit log the database itself keeps append-only (a trigger raises on UPDATE, DELETE and TRUNCATE).
enum PostgresSchema {
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

    /// True when the session's database holds the rolloutctl schema.
    static func exists(_ session: PostgresSession) throws -> Bool {
        let rows = try session.query("SELECT to_regclass('schemaMigration') IS NOT NULL")
        return try rows.first?[0].decode(Bool.self) ?? false
    }

    static func applied(_ session: PostgresSession) throws -> Set<String> {
        Set(try session.query("SELECT identifier FROM schemaMigration").map { try $0[0].decode(String.self) })
    }

    /// Migrations the database records that this build does not know (a newer rolloutctl wrote them).
    static func unknownMigrations(_ session: PostgresSession) throws -> [String] {
        let known = Set(migrations.map(\.identifier))
        return try applied(session).filter { !known.contains($0) }.sorted()
    }

    /// Migrations this build knows that the database has not applied yet.
    static func missingMigrations(_ session: PostgresSession) throws -> [String] {
        let applied = try applied(session)
        return migrations.map(\.identifier).filter { !applied.contains($0) }
    }

    /// Why the database refuses writes on this session (`default_transaction_read_only`, a standby); nil when
    /// it accepts them.
    static func refusesWrites(_ session: PostgresSession) throws -> String? {
        let rows = try session.query("SELECT current_setting('transaction_read_only'), pg_is_in_recovery()")
        guard let row = rows.first else { return nil }
        if try row[1].decode(Bool.self) { return "the server is a standby (read-only)" }
        if try row[0].decode(String.self) == "on" {
            return "the database accepts only read-only transactions (default_transaction_read_only)"
        }
        return nil
    }

    /// Applies the missing migrations in one transaction; two processes migrating at once take turns
    /// (a transaction-level advisory lock), and a schema with a migration this build does not know is refused.
    static func migrate(_ session: PostgresSession, path: String) throws {
        try session.transaction {
            try session.execute("SELECT pg_advisory_xact_lock(\(PostgresSession.lockNamespace), 0)")
            try session.execute(
                """
                CREATE TABLE IF NOT EXISTS schemaMigration (identifier text PRIMARY KEY,
                  appliedAt double precision NOT NULL)
                """)
            let unknown = try unknownMigrations(session)
            guard unknown.isEmpty else { throw StateStoreError.newerSchema(path: path, unknown: unknown) }
            let applied = try applied(session)
            for migration in migrations where !applied.contains(migration.identifier) {
                for statement in migration.statements { try session.execute(statement) }
                let now = Date().timeIntervalSince1970
                try session.run(
                    "INSERT INTO schemaMigration (identifier, appliedAt) VALUES (\(migration.identifier), \(now))")
            }
        }
    }
}
