import Foundation
import RolloutCore
import RolloutTestSupport
import Testing

@testable import RolloutAdapters
@testable import RolloutKit

/// What a killed run or a lost state database leaves behind, and how the next run converges.
@Suite(.serialized) struct ReconcileRecoveryTests {
    /// Writes the intent of the canary-10 advance exactly as a run at `hours` would, and
    /// returns its id: the state a run killed right after writing it leaves.
    private func writeCanary10Intent(_ w: FlagServiceWorld, hours: Double) throws -> Int64 {
        let store = try SQLiteStateStore(path: w.world.statePath)
        return try store.append(
            AuditEntry(
                time: w.world.time(hours: hours), rollout: "exp-001-autosave", phase: "canary-10",
                environment: "production", from: nil, to: .on(10), reason: "advance",
                revision: try w.world.repo.head(), planBlob: try w.world.planBlob(),
                approvals: ["engineering-lead=erin@example.com", "qa-lead=quinn@example.com", "sre=dana@example.com"],
                kind: .intent))
    }

    /// Killed after the PATCH reached the flag, before the result was written.
    @Test func killedAfterThePatchConvergesWithoutDoubleAdvance() async throws {
        try await FlagServiceWorld.with { w in
            try w.world.seed()
            _ = try await w.run(hours: 0)
            try w.world.approveCanary10()

            // The killed run (hour 1): intent written, PATCH sent for real, no result, no state.
            let intentID = try writeCanary10Intent(w, hours: 1)
            let version = try await w.world.flags.read(flag: FlagServiceWorld.flag).version
            _ = try await w.world.flags.apply(
                flag: FlagServiceWorld.flag,
                patch: FlagPatch(environment: "production", enabled: true, coverage: 10),
                ifMatch: version)
            #expect(try w.stored()?.record.phase == "staging")
            let patchesBefore = w.patchRequests().count

            // The next run (hour 2) completes it: canary-10 counts as entered at hour 1.
            let report = try await w.run(hours: 2)
            let rollout = try #require(report.rollout())
            #expect(rollout.errors.isEmpty)
            #expect(rollout.currentPhase == "canary-10")
            #expect(rollout.changes.isEmpty)
            #expect(rollout.blockers.contains { $0.kind == .bake && $0.remainingSeconds == 23 * 3600 })
            #expect(w.patchRequests().count == patchesBefore)
            #expect(w.environments() == ["staging": .on(100), "production": .on(10)])

            let stored = try #require(try w.stored())
            #expect(stored.record.phase == "canary-10")
            #expect(stored.record.enteredAt == w.world.time(hours: 1))
            let audit = try w.audit()
            let intent = try #require(audit.first { $0.id == intentID })
            #expect(intent.kind == .intent)
            let result = try #require(audit.first { $0.intentID == intentID })
            #expect(result.result == "interrupted-applied")
            #expect(audit.filter { $0.intentID == intentID }.count == 1)
            let store = try SQLiteStateStore(path: w.world.statePath)
            #expect(try store.unresolvedIntents(rollout: "exp-001-autosave").isEmpty)
            #expect(try store.phaseEntries(rollout: "exp-001-autosave").map(\.phase) == ["staging", "canary-10"])

            // No double advance: canary-50 waits for 24h from hour 1, not from hour 2, and comes once.
            let early = try await w.run(hours: 24.9)
            #expect(early.rollout()?.changes.isEmpty == true)
            let due = try await w.run(hours: 25)
            #expect(due.rollout()?.nextPhase == "canary-50")
            #expect(w.environments()["production"] == .on(50))
            #expect(try store.unresolvedIntents(rollout: "exp-001-autosave").isEmpty)
        }
    }

    /// Killed after the intent, before the PATCH left: the change is decided and applied again.
    @Test func killedBeforeThePatchIsReapplied() async throws {
        try await FlagServiceWorld.with { w in
            try w.world.seed()
            _ = try await w.run(hours: 0)
            try w.world.approveCanary10()
            let intentID = try writeCanary10Intent(w, hours: 1)
            #expect(w.environments()["production"] == nil)

            let report = try await w.run(hours: 2)
            let rollout = try #require(report.rollout())
            #expect(rollout.errors.isEmpty)
            #expect(rollout.nextPhase == "canary-10")
            #expect(rollout.changes == [Change(environment: "production", from: nil, to: .on(10), reason: .advance)])
            #expect(rollout.applied)
            #expect(w.environments()["production"] == .on(10))
            #expect(w.service.appliedPatches.count == 2)  // staging, then this one: once

            let audit = try w.audit()
            #expect(audit.first { $0.intentID == intentID }?.result == "interrupted-not-applied")
            let after = audit.drop { $0.id != intentID }.dropFirst()
            #expect(after.map(\.kind) == [.result, .intent, .result])
            #expect(after.compactMap(\.result) == ["interrupted-not-applied", "applied"])
            // Bake counts from the run that really applied it.
            #expect(try w.stored()?.record.enteredAt == w.world.time(hours: 2))
            #expect(
                try SQLiteStateStore(path: w.world.statePath).unresolvedIntents(rollout: "exp-001-autosave").isEmpty)
        }
    }

    /// The state database is lost at canary-10: reconcile refuses to start over; `init --adopt`
    /// infers the phase from the flag and its bake restarts from now; nothing is advanced early.
    @Test func lostStateNeedsInitAdoptWhichInfersThePhaseAndRestartsBake() async throws {
        try await FlagServiceWorld.with { w in
            try await w.reachCanary10()
            for suffix in ["", "-wal", "-shm"] {
                try? FileManager.default.removeItem(atPath: w.world.statePath + suffix)
            }
            #expect(!FileManager.default.fileExists(atPath: w.world.statePath))

            // Hour 30: 29h after canary-10 was really entered, but the state does not know it.
            let plan = try await w.run(.plan, hours: 30)
            #expect(plan.rollout()?.currentPhase == "canary-10")
            #expect(plan.rollout()?.changes.isEmpty == true)

            // reconcile never starts over silently (SPEC §5.10 [r2]); `init --adopt` restarts from the flag.
            await #expect(throws: StateStoreError.missing(path: w.world.statePath)) { _ = try await w.run(hours: 30) }
            let adopted = try await w.world.initialise(adopt: true, hours: 30)
            #expect(adopted.adopted.map(\.record.phase) == ["canary-10"])
            let report = try await w.run(hours: 30)
            let rollout = try #require(report.rollout())
            #expect(rollout.currentPhase == "canary-10")
            #expect(rollout.nextPhase == "canary-50")
            #expect(rollout.changes.isEmpty)
            #expect(rollout.blockers.contains { $0.kind == .bake && $0.remainingSeconds == 24 * 3600 })
            #expect(try w.stored()?.record.phase == "canary-10")
            #expect(try w.stored()?.record.enteredAt == w.world.time(hours: 30))

            let early = try await w.run(hours: 53.9)
            #expect(early.rollout()?.changes.isEmpty == true)
            #expect(w.environments()["production"] == .on(10))
            let due = try await w.run(hours: 54)
            #expect(due.rollout()?.nextPhase == "canary-50")
            #expect(w.environments()["production"] == .on(50))
        }
    }
}
