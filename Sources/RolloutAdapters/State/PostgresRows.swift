import Foundation
import PostgresNIO
import RolloutCore

/// The rows of the PostgreSQL state: the columns each read selects, a row read back into a record (an audit row
/// through the codec both homes share, `AuditRow`), and the writes several operations share (inside their
/// transaction).
enum PostgresRows {
    // MARK: Reading rows

    static func stored(_ row: PostgresRandomAccessRow, path: String) throws -> StoredRollout {
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

    static let rolloutColumns = "name, flag, phase, enteredAt, status, planBlob, updatedAt"
    static let auditColumns = """
        a.id, a.time, a.rollout, a.phase, a.environment, a.fromState, a.toState, a.reason, a.revision, a.planBlob,
        a.approvals, a.kind, a.result, a.intentID, a.detail, a.clockSupplied
        """
    static let outboxColumns = "id, eventKey, target, rollout, body, createdAt, attempts, deliveredAt"

    static func entry(_ row: PostgresRandomAccessRow) throws -> AuditEntry {
        AuditRow(
            id: try row[0].decode(Int64.self), time: try row[1].decode(Double.self),
            rollout: try row[2].decode(String.self),
            phase: try row[3].decode(String?.self), environment: try row[4].decode(String?.self),
            fromState: try row[5].decode(String?.self), toState: try row[6].decode(String?.self),
            reason: try row[7].decode(String.self), revision: try row[8].decode(String?.self),
            planBlob: try row[9].decode(String?.self), approvals: try row[10].decode(String.self),
            kind: try row[11].decode(String.self), result: try row[12].decode(String?.self),
            intentID: try row[13].decode(Int64?.self), detail: try row[14].decode(String?.self),
            clockSupplied: try row[15].decode(Bool?.self)
        ).entry
    }

    static func message(_ row: PostgresRandomAccessRow) throws -> (OutboxMessage, Bool) {
        var message = OutboxMessage(
            key: try row[1].decode(String.self), target: try row[2].decode(String.self),
            rollout: try row[3].decode(String.self), body: try row[4].decode(String.self),
            createdAt: Date(timeIntervalSince1970: try row[5].decode(Double.self)),
            attempts: try row[6].decode(Int.self))
        message.id = try row[0].decode(Int64.self)
        return (message, try row[7].decode(Double?.self) != nil)
    }

    // MARK: Writes shared by several operations (inside a transaction)

    static func insert(_ entry: AuditEntry, _ s: PostgresSession, path: String) throws -> Int64 {
        let row = AuditRow(entry)
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
        let rows = try s.query(
            """
            \(unescaped: open)INSERT INTO audit (time, rollout, phase, environment, fromState, toState, reason, revision,
                               planBlob, approvals, kind, result, intentID, detail, clockSupplied)
            VALUES (\(row.time), \(row.rollout), \(row.phase), \(row.environment), \(row.fromState), \(row.toState),
                    \(row.reason), \(row.revision), \(row.planBlob), \(row.approvals), \(row.kind), \(row.result),
                    \(row.intentID), \(row.detail), \(row.clockSupplied))
            \(unescaped: close)
            """ as PostgresQuery)
        guard let id = try rows.first?[0].decode(Int64.self) else {
            throw PostgresStateError("\(path): the audit insert returned no id")
        }
        return id
    }

    static func queue(_ outbox: [OutboxMessage], _ s: PostgresSession) throws {
        for message in outbox {
            try s.run(
                """
                INSERT INTO outbox (eventKey, target, rollout, body, createdAt)
                VALUES (\(message.key), \(message.target), \(message.rollout), \(message.body),
                        \(message.createdAt.timeIntervalSince1970))
                ON CONFLICT (eventKey, target) DO NOTHING
                """)
        }
    }
}
