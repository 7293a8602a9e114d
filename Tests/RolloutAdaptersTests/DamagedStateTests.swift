import Foundation
import GRDB
import RolloutAdapters
import RolloutCore
import RolloutTestSupport
import Testing

/// A damaged or hand-edited state database (SQLite allows a text in a REAL column, any text as a
/// status): reading it is an error naming the table and column, never a trap (which would stop every
/// rollout of the installation) and never "progressing" (which could raise a rolled-back flag again).
@Suite struct DamagedStateTests {
    @Test func anUnknownStatusOrAValueOfTheWrongTypeIsAnError() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("state.sqlite")
        let store = try SQLiteStateStore(path: path)
        try store.save(
            rollout: "exp-001", flag: "portal_form_autosave",
            record: RolloutRecord(
                phase: "canary-10", enteredAt: Date(timeIntervalSince1970: 1_800_000_000), status: .rolledBack,
                planBlob: "abc"),
            now: Date(timeIntervalSince1970: 1_800_000_100), enteredPhase: true)
        #expect(try store.rollout("exp-001")?.record.status == .rolledBack)

        let raw = try DatabaseQueue(path: path)
        try raw.write { try $0.execute(sql: "UPDATE rollout SET status = 'rolled back by hand'") }
        #expect(
            throws: StateStoreError.corrupt(
                path: path, detail: "rollout exp-001 has the unknown status \"rolled back by hand\"")
        ) { try store.allRollouts() }

        try raw.write { try $0.execute(sql: "UPDATE rollout SET status = 'rolled-back', updatedAt = 'yesterday'") }
        #expect {
            try store.rollout("exp-001")
        } throws: { error in
            "\(error)".contains("rollout.updatedAt holds \"yesterday\", not a Double")
                && "\(error)".hasSuffix("restore it from a backup")
        }
    }

    /// The one audit-row codec of both homes (`AuditRow`): a kind this build does not know reads as `event` — a
    /// record that claims no flag call — never as an intent or a result, and does not close the intent it names.
    @Test func anAuditRowOfAnUnknownKindReadsAsAnEvent() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("state.sqlite")
        let store = try SQLiteStateStore(path: path)
        let intentID = try store.append(AuditRowFixture.intent)
        let raw = try DatabaseQueue(path: path)
        try raw.write {
            try $0.execute(
                sql: """
                    INSERT INTO audit (time, rollout, reason, approvals, kind, intentID)
                    VALUES (1800000100, 'exp-001', 'by hand', '[]', 'compensation', ?)
                    """, arguments: [intentID])
        }
        #expect(AuditRowFixture.unknownKindProblem(try store.history(rollout: "exp-001"), intentID: intentID) == nil)
        #expect(try store.unresolvedIntents(rollout: "exp-001").map(\.id) == [intentID])
    }
}
