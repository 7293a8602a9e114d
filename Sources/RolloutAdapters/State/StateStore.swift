import Foundation
import GRDB
import RolloutCore

/// One row of the append-only audit log.
public struct AuditEntry: Equatable, Sendable, Codable {
    public enum Kind: String, Sendable, Codable {
        /// Written before a flag-API call.
        case intent
        /// The call's outcome, written after it (or by the next run, for an interrupted one).
        case result
        /// A decision without a flag call: a hold, a rollback already in force, a recovered state.
        case event
    }

    public var id: Int64?
    public var time: Date
    public var rollout: String
    public var phase: String?
    public var environment: String?
    public var from: FlagEnvironmentState?
    public var to: FlagEnvironmentState?
    public var reason: String
    public var revision: String?
    public var planBlob: String?
    /// The approvals that allowed the change: `role=approver@commit` items.
    public var approvals: [String]
    public var kind: Kind
    /// For a result: `applied`, `failed`, `conflict`, `interrupted-applied`, `interrupted-not-applied`.
    public var result: String?
    /// For a result: the intent it answers.
    public var intentID: Int64?
    public var detail: String?

    public init(time: Date, rollout: String, phase: String?, environment: String?, from: FlagEnvironmentState?,
                to: FlagEnvironmentState?, reason: String, revision: String?, planBlob: String?, approvals: [String],
                kind: Kind, result: String? = nil, intentID: Int64? = nil, detail: String? = nil) {
        self.time = time
        self.rollout = rollout
        self.phase = phase
        self.environment = environment
        self.from = from
        self.to = to
        self.reason = reason
        self.revision = revision
        self.planBlob = planBlob
        self.approvals = approvals
        self.kind = kind
        self.result = result
        self.intentID = intentID
        self.detail = detail
    }
}

/// A rollout's stored state, with when it was last written.
public struct StoredRollout: Equatable, Sendable {
    public var name: String
    public var flag: String?
    public var record: RolloutRecord
    public var updatedAt: Date
}

/// State and audit in SQLite (WAL), schema versioned with GRDB's migrator. Every write is a
/// transaction: a run killed at any point leaves the database as it was before or after a write.
public final class StateStore: Sendable {
    private let queue: DatabaseQueue
    public let path: String

    /// Opens (and migrates) the database at `path`, creating its folder.
    public init(path: String) throws {
        self.path = path
        try FileManager.default.createDirectory(at: URL(fileURLWithPath: path).deletingLastPathComponent(),
                                                withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA journal_mode = WAL")
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        queue = try DatabaseQueue(path: path, configuration: configuration)
        try Self.migrator.migrate(queue)
    }

    /// Opens the database only when it exists (for `plan`, which must not create state).
    public static func openIfExists(path: String) throws -> StateStore? {
        FileManager.default.fileExists(atPath: path) ? try StateStore(path: path) : nil
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
            try db.execute(sql: """
                CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN
                  SELECT RAISE(ABORT, 'the audit log is append-only'); END;
                CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN
                  SELECT RAISE(ABORT, 'the audit log is append-only'); END;
                """)
        }
        // [issue 11] The `notify` checks breaching at the last run (NotifyWatch's episodes).
        migrator.registerMigration("v2-notify-watch") { db in
            try db.create(table: "notifyBreach") { t in
                t.column("rollout", .text).notNull()
                t.column("check", .text).notNull()
                t.primaryKey(["rollout", "check"])
            }
        }
        return migrator
    }

    // MARK: Notify checks

    /// The `notify` checks of a rollout breaching at its last applied run.
    public func breachingNotifyChecks(rollout: String) throws -> Set<String> {
        try queue.read { db in
            Set(try String.fetchAll(db, sql: "SELECT \"check\" FROM notifyBreach WHERE rollout = ?",
                                    arguments: [rollout]))
        }
    }

    /// Replaces the breaching set of a rollout and appends the audit entries of the new episodes, in one transaction.
    public func saveBreachingNotifyChecks(rollout: String, checks: Set<String>, audit entries: [AuditEntry]) throws {
        try queue.write { db in
            try db.execute(sql: "DELETE FROM notifyBreach WHERE rollout = ?", arguments: [rollout])
            for check in checks.sorted() {
                try db.execute(sql: "INSERT INTO notifyBreach (rollout, \"check\") VALUES (?, ?)",
                               arguments: [rollout, check])
            }
            for entry in entries { _ = try Self.insert(entry, db) }
        }
    }

    // MARK: Rollouts

    public func rollout(_ name: String) throws -> StoredRollout? {
        try queue.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM rollout WHERE name = ?", arguments: [name]).map(Self.stored)
        }
    }

    public func allRollouts() throws -> [StoredRollout] {
        try queue.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM rollout ORDER BY name").map(Self.stored)
        }
    }

    private static func stored(_ row: Row) -> StoredRollout {
        let entered: Double? = row["enteredAt"]
        return StoredRollout(
            name: row["name"], flag: row["flag"],
            record: RolloutRecord(phase: row["phase"], enteredAt: entered.map { Date(timeIntervalSince1970: $0) },
                                  status: RolloutStatus(rawValue: row["status"]) ?? .progressing, planBlob: row["planBlob"]),
            updatedAt: Date(timeIntervalSince1970: row["updatedAt"]))
    }

    /// Writes a rollout's record, and the audit entries that explain it, in one transaction.
    public func save(rollout name: String, flag: String?, record: RolloutRecord, now: Date,
                     enteredPhase: Bool, audit entries: [AuditEntry] = []) throws {
        try queue.write { db in
            try db.execute(sql: """
                INSERT INTO rollout (name, flag, phase, enteredAt, status, planBlob, updatedAt)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(name) DO UPDATE SET flag = excluded.flag, phase = excluded.phase,
                  enteredAt = excluded.enteredAt, status = excluded.status, planBlob = excluded.planBlob,
                  updatedAt = excluded.updatedAt
                """, arguments: [name, flag, record.phase, record.enteredAt?.timeIntervalSince1970,
                                 record.status.rawValue, record.planBlob, now.timeIntervalSince1970])
            if enteredPhase, let phase = record.phase, let entered = record.enteredAt {
                try db.execute(sql: "INSERT INTO phaseEntry (rollout, phase, enteredAt, planBlob) VALUES (?, ?, ?, ?)",
                               arguments: [name, phase, entered.timeIntervalSince1970, record.planBlob])
            }
            for entry in entries { _ = try Self.insert(entry, db) }
        }
    }

    /// Phase entry times of a rollout, oldest first.
    public func phaseEntries(rollout: String) throws -> [(phase: String, enteredAt: Date)] {
        try queue.read { db in
            try Row.fetchAll(db, sql: "SELECT phase, enteredAt FROM phaseEntry WHERE rollout = ? ORDER BY id",
                             arguments: [rollout]).map { ($0["phase"], Date(timeIntervalSince1970: $0["enteredAt"])) }
        }
    }

    // MARK: Audit

    /// Appends one entry in its own transaction and returns its id.
    @discardableResult
    public func append(_ entry: AuditEntry) throws -> Int64 {
        try queue.write { db in try Self.insert(entry, db) }
    }

    private static func insert(_ entry: AuditEntry, _ db: Database) throws -> Int64 {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        func text<T: Encodable>(_ value: T?) throws -> String? {
            try value.map { String(decoding: try encoder.encode($0), as: UTF8.self) }
        }
        try db.execute(sql: """
            INSERT INTO audit (time, rollout, phase, environment, fromState, toState, reason, revision, planBlob,
                               approvals, kind, result, intentID, detail)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [entry.time.timeIntervalSince1970, entry.rollout, entry.phase, entry.environment,
                             try text(entry.from), try text(entry.to), entry.reason, entry.revision, entry.planBlob,
                             try text(entry.approvals) ?? "[]", entry.kind.rawValue, entry.result, entry.intentID,
                             entry.detail])
        return db.lastInsertedRowID
    }

    /// Audit entries, newest first.
    public func history(rollout: String? = nil, limit: Int? = nil) throws -> [AuditEntry] {
        try queue.read { db in
            var sql = "SELECT * FROM audit"
            var arguments: StatementArguments = []
            if let rollout {
                sql += " WHERE rollout = ?"
                arguments += [rollout]
            }
            sql += " ORDER BY id DESC"
            if let limit { sql += " LIMIT \(max(0, limit))" }
            return try Row.fetchAll(db, sql: sql, arguments: arguments).map(Self.entry)
        }
    }

    /// Intents that have no result: written by a run that stopped before the flag service answered.
    public func unresolvedIntents(rollout: String) throws -> [AuditEntry] {
        try queue.read { db in
            try Row.fetchAll(db, sql: """
                SELECT * FROM audit i WHERE i.rollout = ? AND i.kind = 'intent'
                  AND NOT EXISTS (SELECT 1 FROM audit r WHERE r.intentID = i.id)
                ORDER BY i.id
                """, arguments: [rollout]).map(Self.entry)
        }
    }

    private static func entry(_ row: Row) -> AuditEntry {
        let decoder = JSONDecoder()
        func state(_ column: String) -> FlagEnvironmentState? {
            guard let text: String = row[column] else { return nil }
            return try? decoder.decode(FlagEnvironmentState.self, from: Data(text.utf8))
        }
        let approvalsText: String = row["approvals"]
        var entry = AuditEntry(
            time: Date(timeIntervalSince1970: row["time"]), rollout: row["rollout"], phase: row["phase"],
            environment: row["environment"], from: state("fromState"), to: state("toState"), reason: row["reason"],
            revision: row["revision"], planBlob: row["planBlob"],
            approvals: (try? decoder.decode([String].self, from: Data(approvalsText.utf8))) ?? [],
            kind: AuditEntry.Kind(rawValue: row["kind"]) ?? .event, result: row["result"], intentID: row["intentID"],
            detail: row["detail"])
        entry.id = row["id"]
        return entry
    }
}
