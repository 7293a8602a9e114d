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
        let store = try StateStore(path: path)
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
}
