import AsyncHTTPClient
import Foundation
import Logging
import RolloutCore
import RolloutTestSupport
import Testing

@testable import RolloutAdapters
@testable import RolloutKit

/// Rollbacks that stick and manual overrides that are respected (SPEC §5.3, §5.6), against the
/// flag API on 127.0.0.1 (faults injected) and a real SQLite state.
@Suite(.serialized) struct RollbackOverrideTests {
    static let breach = ["error-rate": 0.05, "latency-p95-delta": 0.05, "submission-success": 0.98]
    static func both(_ state: FlagEnvironmentState) -> [String: FlagEnvironmentState] {
        ["staging": state, "production": state]
    }

    @Test func rollbackWhoseProductionPatchFailsEveryRetryIsFinishedByTheNextRunAndNeverUndone() async throws {
        try await FlagServiceWorld.with { w in
            try await w.reachCanary10()
            try w.metrics.set(Self.breach)
            w.service.inject(.serverError, times: 3, on: "PATCH")  // every attempt of production's PATCH

            let report = try await w.run(hours: 2)
            let rollout = try #require(report.rollout())
            #expect(rollout.status == .rolledBack)
            #expect(rollout.errors.contains { $0.message.contains("production") })
            #expect(report.errorCount == 1)
            // Committed before the first flag call: the state says rolled back although nothing applied.
            #expect(try w.stored()?.record.status == .rolledBack)
            #expect(w.environments() == ["staging": .on(100), "production": .on(10)])
            // The measured environment was tried first; staging was not tried after the failure.
            let bodies = w.patchRequests().suffix(3).map(\.bodyString)
            #expect(bodies.allSatisfy { $0.contains("production") })

            // Healthy again: the next run finishes the rollback (production first), never raises.
            try w.metrics.set(MetricsFile.healthy)
            let next = try await w.run(hours: 3)
            #expect(next.rollout()?.errors.isEmpty == true)
            #expect(next.rollout()?.status == .rolledBack)
            #expect(w.environments() == ["staging": .disabled, "production": .disabled])
            #expect(w.service.appliedPatches.suffix(2).map(\.environment) == ["production", "staging"])
            for hours in [4.0, 30, 80] {
                let later = try await w.run(hours: hours)
                #expect(later.rollout()?.status == .rolledBack)
                #expect(later.rollout()?.changes.isEmpty == true)
            }
            #expect(w.environments() == ["staging": .disabled, "production": .disabled])
            // One rollback notification queued, with the decision, before any flag call.
            let outbox = try SQLiteStateStore(path: w.world.statePath).outbox()
            #expect(outbox.map(\.message.target) == ["platform-team"])
            #expect(outbox.first?.message.body.contains("\"status\":\"rolled-back\"") == true)
        }
    }

    /// The runbook's kill switch: `PATCH {"enabled": false}` for every environment, by hand.
    private func killSwitch(_ w: FlagServiceWorld) async throws {
        let version = try await w.world.flags.read(flag: FlagServiceWorld.flag).version
        _ = try await w.world.flags.apply(
            flag: FlagServiceWorld.flag,
            patch: FlagPatch(environment: nil, enabled: false, coverage: nil),
            ifMatch: version)
    }

    @Test func killSwitchMakesTheRolloutOverriddenAndNothingRaisesItButARollbackStillDisables() async throws {
        try await FlagServiceWorld.with { w in
            try await w.reachCanary10()
            try await killSwitch(w)
            let off = w.environments()
            #expect(off.values.allSatisfy { !$0.enabled })
            let patches = w.service.appliedPatches.count

            let first = try await w.run(hours: 2)
            #expect(first.rollout()?.status == .overridden)
            #expect(first.rollout()?.changes.isEmpty == true)
            #expect(first.rollout()?.blockers.first?.detail.contains("overridden outside rolloutctl") == true)
            // Healthy metrics, approvals in place, bake long done: still nothing raised.
            for hours in [3.0, 30, 60] {
                let later = try await w.run(hours: hours)
                #expect(later.rollout()?.status == .overridden)
                #expect(later.rollout()?.changes.isEmpty == true)
            }
            #expect(w.service.appliedPatches.count == patches)
            #expect(w.environments() == off)
            // Notified once.
            let outbox = try SQLiteStateStore(path: w.world.statePath).outbox()
            #expect(outbox.filter { $0.message.body.contains("\"status\":\"overridden\"") }.count == 1)
            #expect(try w.audit().filter { $0.reason == "overridden" }.count == 1)

            // A rollback-level breach still disables (coverage to 0 as well).
            try w.metrics.set(Self.breach)
            let rollback = try await w.run(hours: 61)
            #expect(rollback.rollout()?.status == .rolledBack)
            #expect(w.environments() == Self.both(.disabled))
        }
    }

    @Test func aPlanEditAfterAnOverrideResumesFromTheActualStateOnceReapproved() async throws {
        try await FlagServiceWorld.with { w in
            try await w.reachCanary10()
            try await killSwitch(w)
            #expect(try await w.run(hours: 2).rollout()?.status == .overridden)

            try w.world.editPlan(
                RolloutWorld.exp001Plan().replacingOccurrences(
                    of: "\"state\": \"active\",",
                    with: "\"state\": \"active\", \"description\": \"after the incident\","))
            // The edit needs canary-10's gate again before anything is raised.
            let held = try await w.run(hours: 3)
            let rollout = try #require(held.rollout())
            #expect(rollout.status == .blocked)
            #expect(rollout.changes.isEmpty)
            #expect(
                Set(rollout.blockers.filter { $0.kind == .approval }.compactMap(\.role))
                    == ["engineering-lead", "qa-lead", "sre"])
            #expect(w.environments().values.allSatisfy { !$0.enabled })

            try w.world.approveCanary10()
            let resumed = try await w.run(hours: 4)
            #expect(resumed.rollout()?.errors.isEmpty == true)
            #expect(resumed.rollout()?.status != .overridden)
            #expect(w.environments() == ["staging": .on(100), "production": .on(10)])
        }
    }

    @Test func driftAboveTheDesiredStateIsLowered() async throws {
        try await FlagServiceWorld.with { w in
            try await w.reachCanary10()
            w.service.changeConcurrently(FlagServiceWorld.flag, environment: "production", to: .on(40))
            let report = try await w.run(hours: 2)
            let rollout = try #require(report.rollout())
            #expect(rollout.changes == [Change(environment: "production", from: .on(40), to: .on(10), reason: .drift)])
            #expect(rollout.status == .blocked)
            #expect(w.environments()["production"] == .on(10))
        }
    }

    /// The PATCH reaches the flag but its answer is lost (a timeout; the retry gets 412): the audit
    /// says applied, confirmed by a re-read, and the run counts the change.
    @Test func aLostAnswerToAnAppliedPatchIsAuditedAsAppliedAndCounted() async throws {
        try await FlagServiceWorld.with { w in
            w.world.flags = HTTPFlagStore(
                baseURL: w.service.baseURL, token: "s3cr3t-admin-token-4f1c", client: w.client,
                retry: .adapterTest(maxAttempts: 2, requestTimeout: .milliseconds(400)), logger: w.world.logger)
            try w.world.seed()
            w.service.inject(.delay(.seconds(2)), times: 1, on: "PATCH")
            let report = try await w.run(hours: 0)
            let rollout = try #require(report.rollout())
            #expect(rollout.errors.isEmpty)
            #expect(rollout.applied)
            #expect(report.changeCount == 1)
            #expect(w.environments() == ["staging": .on(100)])
            #expect(w.service.appliedPatches.count == 1)
            let results = try w.audit().filter { $0.kind == .result }
            #expect(results.map(\.result) == ["applied"])
            #expect(results.first?.detail?.contains("confirmed by re-read") == true)
            #expect(try w.stored()?.record.phase == "staging")
        }
    }
}

/// The notification outbox (SPEC §5.10): queued with the event, delivered at least once with an
/// `Idempotency-Key`, retried on later runs for 24 hours, never blocking.
@Suite(.serialized) struct NotificationOutboxTests {
    @Test func webhookDownForThreeRunsThenUpDeliversEachEventOnceByItsKey() async throws {
        let up = LockedBox(false)
        let delivered = LockedBox<[(key: String, body: String)]>([])
        let hook = HTTPTestServer { request in
            guard up.current else { return .json(503, "{}") }
            delivered.withLock { $0.append((request.header("Idempotency-Key") ?? "", request.bodyString)) }
            return .json(200, "{}")
        }
        try await hook.start()
        try await FlagServiceWorld.with { w in
            w.world.notifier = WebhookNotifier(
                urls: ["platform-team": hook.baseURL + "/hook"], client: w.client,
                logger: w.world.logger)
            try await w.reachCanary10()
            // Event 1: a hold. Event 2: a rollback.
            try w.metrics.set(["error-rate": 0.004, "latency-p95-delta": 0.5, "submission-success": 0.98])
            #expect(try await w.run(hours: 2).rollout()?.status == .holding)
            try w.metrics.set(RollbackOverrideTests.breach)
            #expect(try await w.run(hours: 3).rollout()?.status == .rolledBack)
            #expect(try await w.run(hours: 4).rollout()?.errors.isEmpty == true)  // down for a third run
            #expect(delivered.current.isEmpty)
            #expect(hook.requests.count == 3)  // one try per run: a down target is not hammered

            up.withLock { $0 = true }
            _ = try await w.run(hours: 5)
            _ = try await w.run(hours: 6)
            let posts = delivered.current
            #expect(posts.count == 2)
            #expect(Set(posts.map(\.key)).count == 2)
            #expect(posts.allSatisfy { !$0.key.isEmpty })
            #expect(posts.first?.body.contains("\"status\":\"holding\"") == true)
            #expect(posts.last?.body.contains("\"status\":\"rolled-back\"") == true)
            // The key is the event's id, in the body too.
            for post in posts { #expect(post.body.contains("\"id\":\"\(post.key)\"")) }
            let outbox = try SQLiteStateStore(path: w.world.statePath).outbox()
            #expect(outbox.allSatisfy { $0.delivered })
            #expect(Set(outbox.map(\.message.key)) == Set(posts.map(\.key)))
        }
        await hook.stop()
    }

    @Test func aNotificationUndeliveredFor24HoursIsGivenUp() async throws {
        let hook = HTTPTestServer { _ in .json(503, "{}") }
        try await hook.start()
        try await FlagServiceWorld.with { w in
            w.world.notifier = WebhookNotifier(
                urls: ["platform-team": hook.baseURL + "/hook"], client: w.client,
                logger: w.world.logger)
            try await w.reachCanary10()
            try w.metrics.set(RollbackOverrideTests.breach)
            _ = try await w.run(hours: 2)
            _ = try await w.run(hours: 20)
            #expect(hook.requests.count == 2)
            _ = try await w.run(hours: 27)  // 25 hours after the event
            #expect(hook.requests.count == 2)
            #expect(
                try SQLiteStateStore(path: w.world.statePath).pendingOutbox(now: w.world.time(hours: 27)).pending
                    .isEmpty)
            #expect(w.logs.all.contains { $0.contains("not delivered in 24 hours") })
        }
        await hook.stop()
    }
}
