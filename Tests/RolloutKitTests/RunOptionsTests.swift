import Foundation
import Logging
import RolloutAdapters
import RolloutCore
import RolloutTestSupport
import Testing

@testable import RolloutKit

/// `--dry-run`, `--rollout NAME` and the hold notification: behaviours of SPEC §6 that the
/// end-to-end suites do not pin.
@Suite(.serialized) struct RunOptionsTests {
    @Test func dryRunDecidesButAppliesAndRecordsNothing() async throws {
        let world = try RolloutWorld()
        try world.seed()
        let before = try SQLiteStateStore(path: world.statePath).history()
        let report = try await world.run(.reconcile(dryRun: true), hours: 0)
        #expect(report.rollout()?.changes.map(\.environment) == ["staging"])
        #expect(report.rollout()?.applied == false)
        #expect(try await world.flagState().isEmpty)
        #expect(try SQLiteStateStore(path: world.statePath).history() == before)
        #expect(try SQLiteStateStore(path: world.statePath).allRollouts().isEmpty)
    }

    @Test func rolloutOptionLimitsTheRunToTheNamedRollouts() async throws {
        let world = try RolloutWorld()
        try world.seed()
        try world.repo.commitFiles(
            ["rollouts/exp-002/plan.json": RolloutWorld.exp001Plan(name: "exp-002", flag: "other_flag")],
            "Add exp-002", author: RolloutWorld.robin)
        let report = try await world.run(hours: 0, rollouts: ["exp-002"])
        #expect(report.rollouts.map(\.name) == ["exp-002"])
        #expect(try await world.flagState("other_flag")["staging"]?.coverage == 100)
        #expect(try await world.flagState("portal_form_autosave").isEmpty)
    }

    @Test func holdPostsOneNotificationToTheWebhook() async throws {
        let posts = LockedBox<[String]>([])
        let hook = HTTPTestServer { request in
            posts.withLock { $0.append(request.bodyString) }
            return .json(200, "{}")
        }
        try await hook.start()
        let metrics = try MetricsFile(["error-rate": 0.004, "latency-p95-delta": 0.3, "submission-success": 0.98])
        try await withAdapterHTTPClient { client in
            let world = try RolloutWorld(metrics: FileMetricsProvider(path: metrics.path))
            world.notifier = WebhookNotifier(
                urls: ["platform-team": hook.baseURL + "/hook"], client: client,
                logger: Logger(label: "test"))
            try world.seed()
            _ = try await world.run(hours: 0)
            #expect(try await world.run(hours: 1).rollout()?.status == .holding)
            #expect(try await world.run(hours: 2).rollout()?.status == .holding)  // still holding: no second post
        }
        await hook.stop()
        let bodies = posts.current
        #expect(bodies.count == 1)
        let body = try #require(bodies.first)
        #expect(body.contains("\"status\":\"holding\""))
        #expect(body.contains("latency-p95-delta"))
    }
}
