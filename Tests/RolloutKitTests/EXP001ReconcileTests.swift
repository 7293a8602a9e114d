import Foundation
import RolloutAdapters
import RolloutCore
import RolloutTestSupport
import Testing

@testable import RolloutKit

/// EXP-001 from start to finish, against a real git repository, the embedded flag store and a
/// real SQLite state database, with time moving in hours.
@Suite struct EXP001ReconcileTests {
    @Test func fromStagingToProduction() async throws {
        let metrics = try MetricsFile(MetricsFile.healthy)
        let world = try RolloutWorld(metrics: FileMetricsProvider(path: metrics.path))
        try await Self.fromStagingToProduction(world)
    }

    /// The flow on any state store (PostgresStateTests runs it on PostgreSQL).
    static func fromStagingToProduction(_ world: RolloutWorld) async throws {
        try world.seed()

        // Hour 0: staging goes to 100%; nothing else is touched.
        var report = try await world.run(hours: 0)
        var rollout = try #require(report.rollout())
        #expect(rollout.changes.map(\.environment) == ["staging"])
        #expect(rollout.changes.first?.reason == .advance)
        #expect(try await world.flagState() == ["staging": FlagEnvironmentState(enabled: true, coverage: 100)])

        // canary-10 is blocked until its three approvals are merged.
        report = try await world.run(.plan, hours: 1)
        rollout = try #require(report.rollout())
        #expect(rollout.status == .blocked)
        #expect(rollout.currentPhase == "staging")
        #expect(rollout.nextPhase == "canary-10")
        #expect(Set(rollout.blockers.compactMap(\.role)) == ["engineering-lead", "qa-lead", "sre"])
        #expect(rollout.changes.isEmpty)

        try world.approve("canary-10", role: "engineering-lead", by: RolloutWorld.erin)
        try world.approve("canary-10", role: "qa-lead", by: RolloutWorld.quinn)
        report = try await world.run(hours: 2)
        rollout = try #require(report.rollout())
        #expect(rollout.blockers.compactMap(\.role) == ["sre"])
        #expect(rollout.changes.isEmpty)

        try world.approve("canary-10", role: "sre", by: RolloutWorld.dana)
        report = try await world.run(hours: 3)
        rollout = try #require(report.rollout())
        #expect(rollout.nextPhase == "canary-10")
        #expect(
            rollout.changes == [
                Change(
                    environment: "production", from: nil,
                    to: FlagEnvironmentState(enabled: true, coverage: 10), reason: .advance)
            ])
        #expect(try await world.flagState()["production"] == FlagEnvironmentState(enabled: true, coverage: 10))

        // canary-50 waits for a 24h bake from the time canary-10 was entered (hour 3).
        report = try await world.run(.plan, hours: 3 + 10 + 40.0 / 60)
        rollout = try #require(report.rollout())
        let bake = try #require(rollout.blockers.first { $0.kind == .bake })
        #expect(bake.remainingSeconds == 13 * 3600 + 20 * 60)
        #expect(bake.detail.contains("13h20m left"))
        report = try await world.run(hours: 26.9)
        #expect(report.rollout()?.changes.isEmpty == true)

        report = try await world.run(hours: 27)
        rollout = try #require(report.rollout())
        #expect(rollout.nextPhase == "canary-50")
        #expect(try await world.flagState()["production"] == FlagEnvironmentState(enabled: true, coverage: 50))

        // One advance per run: production needs the product owner, even after the bake.
        report = try await world.run(hours: 60)
        rollout = try #require(report.rollout())
        #expect(rollout.status == .blocked)
        #expect(rollout.blockers.map(\.role) == ["product-owner"])

        try world.approve("production", role: "product-owner", by: RolloutWorld.pat)
        report = try await world.run(hours: 61)
        #expect(report.rollout()?.nextPhase == "production")
        #expect(
            try await world.flagState() == [
                "staging": FlagEnvironmentState(enabled: true, coverage: 100),
                "production": FlagEnvironmentState(enabled: true, coverage: 100),
            ])

        report = try await world.run(hours: 62)
        #expect(report.rollout()?.status == .completed)
        #expect(report.rollout()?.changes.isEmpty == true)

        // The audit log holds an intent and a result for each of the four steps.
        let store = try StateStorageFactory.open(world.statePath)
        let history = try store.history(rollout: "exp-001-autosave").reversed()
        let applied = history.filter { $0.kind == .result && $0.result == "applied" }
        #expect(applied.map(\.phase) == ["staging", "canary-10", "canary-50", "production"])
        let canary = try #require(history.first { $0.kind == .intent && $0.phase == "canary-10" })
        #expect(canary.approvals.count == 3)
        #expect(canary.revision != nil)
        #expect(try store.unresolvedIntents(rollout: "exp-001-autosave").isEmpty)
    }

    @Test func errorRateBreachRollsBackEveryEnvironment() async throws {
        let metrics = try MetricsFile(MetricsFile.healthy)
        let world = try RolloutWorld(metrics: FileMetricsProvider(path: metrics.path))
        try world.seed()
        _ = try await world.run(hours: 0)
        try world.approveCanary10()
        _ = try await world.run(hours: 1)
        #expect(try await world.flagState()["production"]?.coverage == 10)

        try metrics.set(["error-rate": 0.031, "latency-p95-delta": 0.05, "submission-success": 0.98])
        var report = try await world.run(hours: 2)
        var rollout = try #require(report.rollout())
        #expect(rollout.status == .rolledBack)
        #expect(Set(rollout.changes.map(\.environment)) == ["staging", "production"])
        #expect(rollout.changes.allSatisfy { $0.reason == .rollback && $0.to == .disabled })
        #expect(try await world.flagState() == ["staging": .disabled, "production": .disabled])

        // It stays rolled back, even once the metrics recover...
        try metrics.set(MetricsFile.healthy)
        report = try await world.run(hours: 30)
        #expect(report.rollout()?.status == .rolledBack)
        #expect(report.rollout()?.changes.isEmpty == true)

        // ...and the audit records the value that caused it.
        let store = try SQLiteStateStore(path: world.statePath)
        let rollback = try #require(
            try store.history(rollout: "exp-001-autosave").first { $0.reason == "rollback" && $0.kind == .intent })
        #expect(rollback.detail?.contains("error-rate = 0.031") == true)

        // Editing plan.json starts again, and every phase needs fresh approvals.
        try world.repo.commitFiles(
            [
                "rollouts/exp-001-autosave/plan.json":
                    RolloutWorld.exp001Plan().replacingOccurrences(of: "\"coverage\": 10,", with: "\"coverage\": 5,")
            ],
            "Lower canary to 5%", author: RolloutWorld.robin)
        report = try await world.run(hours: 31)
        rollout = try #require(report.rollout())
        #expect(rollout.nextPhase == "staging")
        #expect(try await world.flagState()["staging"] == FlagEnvironmentState(enabled: true, coverage: 100))
        report = try await world.run(hours: 32)
        rollout = try #require(report.rollout())
        #expect(rollout.status == .blocked)
        #expect(Set(rollout.blockers.compactMap(\.role)) == ["engineering-lead", "qa-lead", "sre"])
        #expect(rollout.approvals.filter { !$0.counted }.allSatisfy { $0.reason?.hasPrefix("stale") == true })
        #expect(try await world.flagState()["production"] == .disabled)
    }

    @Test func latencyBreachHoldsAndMissingMetricsHold() async throws {
        let metrics = try MetricsFile(MetricsFile.healthy)
        let world = try RolloutWorld(metrics: FileMetricsProvider(path: metrics.path))
        try world.seed()
        _ = try await world.run(hours: 0)
        try world.approveCanary10()
        _ = try await world.run(hours: 1)

        try metrics.set(["error-rate": 0.004, "latency-p95-delta": 0.25, "submission-success": 0.98])
        var report = try await world.run(hours: 30)
        var rollout = try #require(report.rollout())
        #expect(rollout.status == .holding)
        #expect(rollout.changes.isEmpty)
        let hold = try #require(rollout.blockers.first { $0.kind == .health })
        #expect(hold.check == "latency-p95-delta")
        #expect(hold.detail.contains("0.25") && hold.detail.contains("max 0.2"))
        #expect(try await world.flagState()["production"]?.coverage == 10)

        try metrics.set(["error-rate": 0.004, "submission-success": 0.98])
        report = try await world.run(hours: 31)
        rollout = try #require(report.rollout())
        #expect(rollout.status == .holding)
        #expect(rollout.blockers.contains { $0.check == "latency-p95-delta" && $0.detail.contains("no data") })

        try metrics.set(MetricsFile.healthy)
        report = try await world.run(hours: 32)
        #expect(report.rollout()?.nextPhase == "canary-50")
    }
}
