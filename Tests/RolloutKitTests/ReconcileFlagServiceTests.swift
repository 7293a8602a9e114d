import Foundation
import RolloutCore
import RolloutTestSupport
import Testing

@testable import RolloutAdapters
@testable import RolloutKit

/// The reconciler against the real flag API on 127.0.0.1 (faults injected) and a real SQLite
/// file: retries, refusals, 412 races, audit entries.
@Suite(.serialized) struct ReconcileFlagServiceTests {
    @Test func serverErrorsTwiceThenSuccessAppliesAndAuditsOnce() async throws {
        try await FlagServiceWorld.with { w in
            try w.world.seed()
            w.service.inject(.serverError, times: 2, on: "PATCH")

            let report = try await w.run(hours: 0)
            let rollout = try #require(report.rollout())
            #expect(rollout.errors.isEmpty)
            #expect(rollout.applied)
            #expect(rollout.changes.map(\.environment) == ["staging"])

            // One GET, three PATCH requests (two answered 500 before the API, then the real one).
            #expect(w.getRequests().count == 1)
            #expect(w.patchRequests().count == 3)
            #expect(w.service.appliedPatches.count == 1)
            #expect(w.service.pendingFaults == 0)
            #expect(w.environments() == ["staging": .on(100)])
            // Every attempt carried the same If-Match: the retries are of one call.
            #expect(Set(w.patchRequests().compactMap { $0.header("If-Match") }) == ["\"1\""])

            // Audited once: one intent, one `applied` result answering it.
            let audit = try w.audit()
            let intents = audit.filter { $0.kind == .intent }
            let results = audit.filter { $0.kind == .result }
            #expect(intents.count == 1)
            #expect(results.map(\.result) == ["applied"])
            #expect(results.first?.intentID == intents.first?.id)
            #expect(try w.stored()?.record.phase == "staging")
        }
    }

    @Test func unauthorizedIsAnErrorWithoutRetryAndStateStays() async throws {
        try await FlagServiceWorld.with(clientToken: "wrong-token-7d2e") { w in
            try w.world.seed()
            let report = try await w.run(hours: 0)
            let rollout = try #require(report.rollout())
            #expect(!rollout.applied)
            #expect(rollout.errors.count == 1)
            #expect(rollout.errors.first?.message.contains("401") == true)
            #expect(report.errorCount == 1)

            #expect(w.patchRequests().count == 1)
            #expect(w.service.appliedPatches.isEmpty)
            #expect(w.environments().isEmpty)
            // The state is not advanced: no row for the rollout at all.
            #expect(try w.stored() == nil)
            let audit = try w.audit()
            #expect(audit.map(\.kind) == [.intent, .result])
            #expect(audit.last?.result == "failed")
            #expect(
                try SQLiteStateStore(path: w.world.statePath).unresolvedIntents(rollout: "exp-001-autosave").isEmpty)

            // Neither token leaks, even though the service refused one.
            for secret in ["wrong-token-7d2e", "s3cr3t-admin-token-4f1c"] {
                #expect(!w.logs.all.contains { $0.contains(secret) })
                #expect(!w.stateBytes().contains(secret))
                #expect(!rollout.errors.contains { $0.message.contains(secret) })
                #expect(!report.json().contains(secret))
                #expect(!report.human(style: Style(enabled: false)).contains(secret))
            }
        }
    }

    @Test func tokenNeverReachesLogsOrAudit() async throws {
        try await FlagServiceWorld.with { w in
            try await w.reachCanary10()
            #expect(w.environments() == ["staging": .on(100), "production": .on(10)])
            // Every PATCH carried it...
            #expect(w.patchRequests().allSatisfy { $0.header("Authorization") == "Bearer s3cr3t-admin-token-4f1c" })
            // ...and nothing rolloutctl wrote holds it.
            #expect(!w.logs.all.isEmpty)
            #expect(!w.logs.all.contains { $0.contains("s3cr3t-admin-token-4f1c") })
            #expect(!w.stateBytes().contains("s3cr3t-admin-token-4f1c"))
            #expect(w.stateBytes().contains("canary-10"))  // the check reads real bytes
        }
    }

    /// Between rolloutctl's read and its PATCH, someone else writes the flag: 412, re-read,
    /// re-decide (on the new value), retry once.
    @Test func preconditionFailedRereadsRedecidesAndRetriesOnce() async throws {
        try await FlagServiceWorld.with { w in
            try w.world.seed()
            let racing = RacingFlagStore(inner: w.world.flags) {
                w.service.changeConcurrently(FlagServiceWorld.flag, environment: "staging", to: .on(50))
            }
            w.world.flags = racing

            let report = try await w.run(hours: 0)
            let rollout = try #require(report.rollout())
            #expect(rollout.errors.isEmpty)
            #expect(rollout.applied)
            // The change reported is the re-decided one: from the other writer's 50%.
            #expect(rollout.changes == [Change(environment: "staging", from: .on(50), to: .on(100), reason: .advance)])
            #expect(w.environments() == ["staging": .on(100)])
            #expect(w.getRequests().count == 2)
            #expect(w.patchRequests().count == 2)
            #expect(w.patchRequests().map { $0.header("If-Match") } == ["\"1\"", "\"2\""])

            let audit = try w.audit()
            #expect(audit.map(\.kind) == [.intent, .result, .intent, .result])
            #expect(audit.compactMap(\.result) == ["conflict", "applied"])
            #expect(audit[0].from == nil)
            #expect(audit[2].from == .on(50))
            #expect(audit[1].intentID == audit[0].id)
            #expect(audit[3].intentID == audit[2].id)
            #expect(try w.stored()?.record.phase == "staging")
        }
    }

    /// A 412 on every attempt: one retry only, then that rollout fails for this run.
    @Test func preconditionFailedTwiceGivesUp() async throws {
        try await FlagServiceWorld.with { w in
            try w.world.seed()
            w.service.inject(.status(412), times: 5, on: "PATCH")
            let report = try await w.run(hours: 0)
            let rollout = try #require(report.rollout())
            #expect(!rollout.applied)
            #expect(rollout.errors.first?.message.contains("412") == true)
            #expect(w.patchRequests().count == 2)
            #expect(try w.audit().compactMap(\.result) == ["conflict", "conflict"])
            #expect(try w.stored() == nil)
        }
    }

    @Test func invalidPlanAffectsOnlyItsRollout() async throws {
        try await FlagServiceWorld.with { w in
            w.service.setFlag("broken_flag", environments: ["staging": .on(5)])
            let broken = RolloutWorld.exp001Plan(name: "exp-003-broken", flag: "broken_flag")
                .replacingOccurrences(of: "\"state\": \"active\",", with: "\"state\": \"active\", \"stat\": \"oops\",")
            try w.world.seed()
            try w.world.editPlan(broken, rollout: "exp-003-broken", message: "Add a broken plan")

            let report = try await w.run(hours: 0)
            let valid = try #require(report.rollout())
            #expect(valid.applied)
            #expect(valid.changes.map(\.environment) == ["staging"])
            #expect(w.environments() == ["staging": .on(100)])

            let invalid = try #require(report.rollout("exp-003-broken"))
            #expect(invalid.status == .invalid)
            #expect(!invalid.applied)
            #expect(invalid.changes.isEmpty)
            let error = try #require(invalid.errors.first)
            let line = try #require(
                broken.split(separator: "\n", omittingEmptySubsequences: false)
                    .firstIndex { $0.contains("\"stat\"") })
            let column = try #require(
                broken.split(separator: "\n", omittingEmptySubsequences: false)[line]
                    .range(of: "\"stat\""))
            #expect(error.path == "rollouts/exp-003-broken/plan.json")
            #expect(error.line == line + 1)
            #expect(error.column.map { $0 >= 1 } == true)
            #expect(error.description.hasPrefix("rollouts/exp-003-broken/plan.json:\(line + 1):"))
            #expect(error.message.contains("stat"))
            _ = column
            // Nothing was read-for-write or applied to its flag.
            #expect(w.patchRequests("broken_flag").isEmpty)
            #expect(w.environments("broken_flag") == ["staging": .on(5)])
            #expect(try w.audit("exp-003-broken").isEmpty)
            #expect(report.errorCount == 1)
            #expect(report.changeCount == 1)

            // In JSON, the errors carry path, line and column.
            let json = try JSONSerialization.jsonObject(with: Data(report.json().utf8)) as? [String: Any]
            let rollouts = try #require(json?["rollouts"] as? [[String: Any]])
            let entry = try #require(rollouts.first { $0["name"] as? String == "exp-003-broken" })
            #expect(entry["status"] as? String == "invalid")
            let errors = try #require(entry["errors"] as? [[String: Any]])
            #expect(errors.first?["path"] as? String == "rollouts/exp-003-broken/plan.json")
            #expect(errors.first?["line"] as? Int == line + 1)
            #expect(errors.first?["column"] as? Int != nil)
        }
    }

    @Test func driftIsCorrectedToTheCurrentPhase() async throws {
        try await FlagServiceWorld.with { w in
            try await w.reachCanary10()
            #expect(w.environments()["production"] == .on(10))

            // Someone sets production to 30% behind rolloutctl's back (inside canary-10's bake).
            w.service.changeConcurrently(FlagServiceWorld.flag, environment: "production", to: .on(30))
            let plan = try await w.run(.plan, hours: 5)
            #expect(
                plan.rollout()?.changes == [
                    Change(environment: "production", from: .on(30), to: .on(10), reason: .drift)
                ])
            #expect(w.environments()["production"] == .on(30))  // plan changes nothing

            let report = try await w.run(hours: 5)
            let rollout = try #require(report.rollout())
            #expect(rollout.changes == [Change(environment: "production", from: .on(30), to: .on(10), reason: .drift)])
            #expect(rollout.currentPhase == "canary-10")
            #expect(rollout.applied)
            #expect(w.environments() == ["staging": .on(100), "production": .on(10)])
            let last = try w.audit().suffix(2)
            #expect(last.map(\.reason) == ["drift", "drift"])
            #expect(last.last?.result == "applied")
            // The phase (and its bake) did not restart.
            #expect(try w.stored()?.record.enteredAt == w.world.time(hours: 1))

            let again = try await w.run(hours: 6)
            #expect(again.rollout()?.changes.isEmpty == true)
        }
    }

    @Test func planEditLoweringCoverageAppliesWithoutApprovals() async throws {
        try await FlagServiceWorld.with { w in
            try await w.reachCanary10()
            try w.world.editPlan(
                RolloutWorld.exp001Plan()
                    .replacingOccurrences(of: "\"coverage\": 10,", with: "\"coverage\": 5,"),
                message: "Lower canary to 5%")
            let report = try await w.run(hours: 2)
            let rollout = try #require(report.rollout())
            #expect(rollout.changes == [Change(environment: "production", from: .on(10), to: .on(5), reason: .lower)])
            #expect(rollout.applied)
            #expect(rollout.currentPhase == "canary-10")
            // The canary-10 approvals are stale now, and it applied all the same.
            #expect(rollout.approvals.filter { $0.phase == "canary-10" }.allSatisfy { !$0.counted })
            #expect(w.environments() == ["staging": .on(100), "production": .on(5)])
            #expect(try w.audit().last?.reason == "lower")
            #expect(try w.audit().last?.result == "applied")
        }
    }

    @Test func abortedDisablesEveryReachedEnvironment() async throws {
        try await FlagServiceWorld.with { w in
            w.service.setFlag(FlagServiceWorld.flag, environments: ["dev": .on(100)])
            try await w.reachCanary10()
            try w.world.editPlan(RolloutWorld.exp001Plan(state: "aborted"), message: "Abort EXP-001")
            let report = try await w.run(hours: 2)
            let rollout = try #require(report.rollout())
            #expect(rollout.status == .aborted)
            #expect(rollout.nextPhase == nil)
            #expect(Set(rollout.changes.map(\.environment)) == ["staging", "production"])
            #expect(rollout.changes.allSatisfy { $0.reason == .abort && $0.to == .disabled })
            // An environment the plan does not name is not the plan's to touch.
            #expect(w.environments() == ["staging": .disabled, "production": .disabled, "dev": .on(100)])
            let results = try w.audit().filter { $0.kind == .result }.suffix(2)
            #expect(results.allSatisfy { $0.reason == "abort" && $0.result == "applied" })

            let again = try await w.run(hours: 40)
            #expect(again.rollout()?.status == .aborted)
            #expect(again.rollout()?.changes.isEmpty == true)
            #expect(try w.stored()?.record.status == .aborted)
        }
    }

    @Test func pausedHoldsAdvance() async throws {
        try await FlagServiceWorld.with { w in
            try await w.reachCanary10()
            try w.world.editPlan(RolloutWorld.exp001Plan(state: "paused"), message: "Pause EXP-001")
            // Bake is long over: only the pause holds canary-50.
            let report = try await w.run(hours: 30)
            let rollout = try #require(report.rollout())
            #expect(rollout.status == .paused)
            #expect(rollout.changes.isEmpty)
            #expect(rollout.blockers.contains { $0.kind == .state })
            #expect(w.environments()["production"] == .on(10))

            // Back to active: the plan's content is as before, but approvals bind the plan as merged
            // (SPEC §4.1 rule 3, §5.2): canary-10's approvals predate the resume, so canary-50 waits
            // for them again and production stays at 10.
            try w.world.editPlan(RolloutWorld.exp001Plan(), message: "Resume EXP-001")
            let resumed = try await w.run(hours: 31)
            #expect(resumed.rollout()?.changes.isEmpty == true)
            #expect(
                resumed.rollout()?.blockers.contains { $0.kind == .approval && $0.phase == "canary-10" } == true,
                "\(resumed.rollout()?.blockers.map(\.detail) ?? [])")
            #expect(w.environments()["production"] == .on(10))
            try w.world.approveCanary10(suffix: "-again")
            let approved = try await w.run(hours: 32)
            #expect(approved.rollout()?.nextPhase == "canary-50")
            #expect(w.environments()["production"] == .on(50))
        }
    }

    @Test func removedRolloutIsOrphanedAndItsFlagUntouched() async throws {
        try await FlagServiceWorld.with { w in
            w.service.setFlag("other_flag", environments: [:])
            try w.world.seed()
            try w.world.editPlan(
                RolloutWorld.exp001Plan(name: "exp-002-other", flag: "other_flag"),
                rollout: "exp-002-other", message: "Add exp-002")
            _ = try await w.run(hours: 0)
            #expect(w.environments("other_flag") == ["staging": .on(100)])

            try w.world.repo.remove("rollouts/exp-002-other")
            try w.world.repo.commit("Remove exp-002")
            // Even a drifted flag is left alone once its rollout is gone.
            w.service.changeConcurrently("other_flag", environment: "staging", to: .on(40))
            let patchesBefore = w.patchRequests("other_flag").count
            let getsBefore = w.getRequests("other_flag").count

            let report = try await w.run(hours: 1)
            let orphan = try #require(report.rollout("exp-002-other"))
            #expect(orphan.status == .orphaned)
            #expect(orphan.flag == "other_flag")
            #expect(orphan.changes.isEmpty)
            #expect(orphan.errors.isEmpty)
            #expect(w.patchRequests("other_flag").count == patchesBefore)
            #expect(w.getRequests("other_flag").count == getsBefore)
            #expect(w.environments("other_flag") == ["staging": .on(40)])
            #expect(report.rollout()?.status != .orphaned)

            let json = try JSONSerialization.jsonObject(with: Data(report.json().utf8)) as? [String: Any]
            let rollouts = try #require(json?["rollouts"] as? [[String: Any]])
            #expect(rollouts.first { $0["name"] as? String == "exp-002-other" }?["status"] as? String == "orphaned")
        }
    }
}

/// A flag store that lets another writer in between rolloutctl's first read and its first PATCH.
final class RacingFlagStore: FlagStore, @unchecked Sendable {
    let inner: FlagStore
    private let interfere: @Sendable () -> Void
    private let lock = NSLock()
    private var done = false

    init(inner: FlagStore, interfere: @escaping @Sendable () -> Void) {
        self.inner = inner
        self.interfere = interfere
    }

    func read(flag: String) async throws -> FlagSnapshot {
        try await inner.read(flag: flag)
    }

    func apply(flag: String, patch: FlagPatch, ifMatch version: String) async throws -> FlagSnapshot {
        let first = lock.withLock { () -> Bool in
            defer { done = true }
            return !done
        }
        if first { interfere() }
        return try await inner.apply(flag: flag, patch: patch, ifMatch: version)
    }
}
