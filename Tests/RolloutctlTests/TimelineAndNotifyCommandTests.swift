import Foundation
import RolloutCore
import RolloutTestSupport
import Testing

/// The projected timeline through `plan --json` and the human `plan`, and `notify` checks through
/// `reconcile` with a real webhook receiver on 127.0.0.1.
@Suite(.serialized) struct TimelineAndNotifyCommandTests {
    @Test func planShowsTheProjectedTimeline() async throws {
        try await CLIWorld.with { w in
            try await w.seed()
            #expect(try await w.reconcile().status == 0)  // enters staging at 2027-01-01T00:00:00Z

            let result = try await w.plan(["--json"], now: "2027-01-01T05:00:00Z")
            #expect(result.status == 0, "\(result.stderr)")
            let rollout = try #require((try parseJSON(result.stdout)["rollouts"] as? [[String: Any]])?.first)
            let timeline = try #require(rollout["timeline"] as? [[String: Any]])
            #expect(timeline.map { $0["phase"] as? String } == ["canary-10", "canary-50", "production"])
            #expect(
                timeline.map { $0["earliestStart"] as? String }
                    == ["2027-01-01T05:00:00Z", "2027-01-02T05:00:00Z", "2027-01-03T05:00:00Z"])
            #expect(
                timeline[0]["waitingFor"] as? [String]
                    == ["approval:engineering-lead", "approval:qa-lead", "approval:sre"])
            #expect(timeline[1]["waitingFor"] as? [String] == ["bake"])
            #expect(timeline[2]["waitingFor"] as? [String] == ["bake", "approval:product-owner"])

            let human = try await w.plan(["--no-color"], now: "2027-01-01T05:00:00Z")
            #expect(human.stdout.contains("canary-50  earliest 2027-01-02 05:00 UTC (bake)"), "\(human.stdout)")

            // Paused: nothing time alone ends, so every start is null.
            let pausedPlan = CLIWorld.plan(extra: #" "state": "paused","#)
            try w.repo.commitFiles(["rollouts/exp-001-autosave/plan.json": pausedPlan], "Pause", author: CLIWorld.robin)
            let paused = try await w.plan(["--json"], now: "2027-01-01T06:00:00Z")
            let pausedRollout = try #require((try parseJSON(paused.stdout)["rollouts"] as? [[String: Any]])?.first)
            let pausedTimeline = try #require(pausedRollout["timeline"] as? [[String: Any]])
            #expect(pausedTimeline.count == 3)
            #expect(pausedTimeline.allSatisfy { $0["earliestStart"] is NSNull })
            #expect(pausedTimeline.allSatisfy { ($0["waitingFor"] as? [String])?.first == "status:paused" })
        }
    }

    static func planWithWatches() -> String {
        CLIWorld.plan().replacingOccurrences(
            of: #"{ "name": "submission-success", "query": "success", "min": 0.95, "onBreach": "rollback" }"#,
            with: #"{ "name": "submission-success", "query": "success", "min": 0.95, "onBreach": "rollback" },"#
                + "\n" + #"{ "name": "form-submitted-drop", "query": "drop", "min": 0.8, "onBreach": "notify" }"#)
    }

    @Test func aNotifyCheckSendsOneWebhookPerEpisodeAndNeverGates() async throws {
        let hook = HTTPTestServer { _ in .json(200, "{}") }
        try await hook.start()
        defer { Task { await hook.stop() } }
        try await CLIWorld.with { w in
            let plan = Self.planWithWatches()
            #expect(plan.contains("form-submitted-drop"))
            try await w.seed(plan: plan)
            let notify = ["--notify-url", "platform-team=\(hook.baseURL)/hook"]
            func metrics(drop: Double) throws {
                try w.setMetrics([
                    "error-rate": 0.004, "latency-p95-delta": 0.05, "submission-success": 0.98,
                    "form-submitted-drop": drop,
                ])
            }
            try metrics(drop: 1.0)
            #expect(try await w.reconcile(notify).status == 0)  // staging
            #expect(hook.requests.isEmpty)

            // Breach: one webhook; the rollout still advances as if nothing happened (no gate).
            try metrics(drop: 0.5)
            let first = try await w.reconcile(notify, now: "2027-01-01T01:00:00Z")
            #expect(first.status == 0, "\(first.all)")
            #expect(hook.requests.count == 1)
            let body = try parseJSON(try #require(hook.requests.first).bodyString)
            #expect(body["status"] as? String == "notify")
            #expect((body["message"] as? String)?.contains("form-submitted-drop = 0.5") == true)
            #expect(!hook.requests[0].bodyString.contains(CLIWorld.token))
            #expect(w.environments()["staging"] == FlagEnvironmentState(enabled: true, coverage: 100))

            // The breach goes on: the same episode, no second webhook.
            #expect(try await w.reconcile(notify, now: "2027-01-01T02:00:00Z").status == 0)
            #expect(hook.requests.count == 1)
            // No data neither ends nor starts an episode.
            try w.setMetrics(["error-rate": 0.004, "latency-p95-delta": 0.05, "submission-success": 0.98])
            #expect(try await w.reconcile(notify, now: "2027-01-01T03:00:00Z").status == 0)
            #expect(hook.requests.count == 1)
            // Recovery, then a new breach: a second webhook.
            try metrics(drop: 0.95)
            #expect(try await w.reconcile(notify, now: "2027-01-01T04:00:00Z").status == 0)
            #expect(hook.requests.count == 1)
            try metrics(drop: 0.6)
            #expect(try await w.reconcile(notify, now: "2027-01-01T05:00:00Z").status == 0)
            #expect(hook.requests.count == 2)

            // Never a gate: the plan shows no health blocker, the flag was never lowered.
            let planned = try await w.plan(["--json"], now: "2027-01-01T06:00:00Z")
            let rollout = try #require((try parseJSON(planned.stdout)["rollouts"] as? [[String: Any]])?.first)
            let blockers = try #require(rollout["blockers"] as? [[String: Any]])
            #expect(!blockers.contains { $0["kind"] as? String == "health" })
            #expect(rollout["status"] as? String == "blocked")  // waiting for canary-10's approvals only
            #expect(blockers.allSatisfy { $0["kind"] as? String == "approval" })
            let history = try await rolloutctl(["history", "--state", w.statePath, "--json"])
            #expect(history.stdout.components(separatedBy: "breach of notify check").count - 1 == 2)
        }
    }
}
