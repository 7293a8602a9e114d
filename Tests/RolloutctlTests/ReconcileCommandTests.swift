import Foundation
import RolloutCore
import RolloutTestSupport
import Testing

/// `rolloutctl reconcile`, `status` and `history` as processes: the lock, secrets, webhooks.
@Suite(.serialized) struct ReconcileCommandTests {
    /// Holds `<state>.lock` from another process (`flock`) for `seconds`; returns once it is held.
    private func holdLock(_ w: CLIWorld, seconds: Int) async throws -> RunningProcess {
        try FileManager.default.createDirectory(atPath: w.stateDirectory.path, withIntermediateDirectories: true)
        let holder = try RunningProcess(
            "/usr/bin/flock", [w.statePath + ".lock", "-c", "echo locked; sleep \(seconds)"])
        let deadline = Date().addingTimeInterval(10)
        while !holder.stdoutSoFar.contains("locked") {
            guard Date() < deadline else { throw FixtureError("flock did not take the lock") }
            try await Task.sleep(for: .milliseconds(20))
        }
        return holder
    }

    @Test func secondReconcileExitsZeroWhileTheLockIsHeld() async throws {
        try await CLIWorld.with { w in
            try await w.seed()
            let requestsBefore = w.service.requests.count  // init's read of the flag
            let holder = try await holdLock(w, seconds: 5)
            let result = try await w.reconcile()
            #expect(result.status == 0, "\(result.all)")
            #expect(result.stderr.contains("another reconcile holds the lock"), "\(result.stderr)")
            #expect(result.seconds < 4)
            #expect(w.service.requests.count == requestsBefore)
            #expect(w.environments().isEmpty)
            _ = await holder.wait()
        }
    }

    @Test func lockTimeoutWaitsForTheLock() async throws {
        try await CLIWorld.with { w in
            try await w.seed()
            // Released in time: it waits, then reconciles.
            var holder = try await holdLock(w, seconds: 1)
            var result = try await w.reconcile(["--lock-timeout", "3s"])
            #expect(result.status == 0, "\(result.all)")
            #expect(!result.stderr.contains("another reconcile holds the lock"))
            #expect(result.seconds >= 0.5)
            #expect(w.environments()["staging"] == FlagEnvironmentState(enabled: true, coverage: 100))
            _ = await holder.wait()

            // Not released in time: it gives up after the timeout, exit 0.
            holder = try await holdLock(w, seconds: 6)
            let patches = w.service.patchRequests.count
            result = try await w.reconcile(["--lock-timeout", "1s"], now: "2027-01-01T01:00:00Z")
            #expect(result.status == 0, "\(result.all)")
            #expect(result.stderr.contains("another reconcile holds the lock"))
            #expect(result.seconds >= 0.9 && result.seconds < 5.5)
            #expect(w.service.patchRequests.count == patches)
            _ = await holder.wait()
        }
    }

    @Test func twoReconcileProcessesAtOnce() async throws {
        try await CLIWorld.with { w in
            try await w.seed()
            // The first reader is slow, so the two runs overlap.
            w.service.inject(.delay(.seconds(2)), times: 1, on: "GET")
            let first = try RunningProcess(
                Binary.path, ["reconcile"] + w.runArguments(),
                environment: ["ADMIN_TOKEN": CLIWorld.token])
            let second = try RunningProcess(
                Binary.path, ["reconcile"] + w.runArguments(),
                environment: ["ADMIN_TOKEN": CLIWorld.token])
            let results = [await first.wait(), await second.wait()]
            #expect(results.allSatisfy { $0.status == 0 }, "\(results.map(\.all))")
            #expect(results.filter { $0.stderr.contains("another reconcile holds the lock") }.count == 1)
            #expect(w.service.appliedPatches.count == 1)
            #expect(w.environments() == ["staging": FlagEnvironmentState(enabled: true, coverage: 100)])
        }
    }

    @Test func statusAndHistoryHumanAndJSON() async throws {
        try await CLIWorld.with { w in
            try await w.seed()
            // Without a state: it works (SPEC §5.10), saying there is none and how one is made.
            var result = try await rolloutctl(["status", "--state", w.statePath + ".missing"])
            #expect(result.status == 0, "\(result.all)")
            #expect(result.stdout.contains("No state at"))
            #expect(result.stdout.contains("rolloutctl init"))
            #expect(!FileManager.default.fileExists(atPath: w.statePath + ".missing"))
            // Initialised, before any reconcile: nothing recorded yet.
            result = try await rolloutctl(["status", "--state", w.statePath])
            #expect(result.status == 0)
            #expect(result.stdout.contains("No rollouts in"))

            result = try await w.reconcile()
            #expect(result.status == 0, "\(result.all)")
            #expect(result.stdout.contains("~ portal_form_autosave[staging]"))
            #expect(result.stdout.contains("Reconcile: 1 changed"))

            result = try await rolloutctl(["status", "--state", w.statePath])
            #expect(result.status == 0, "\(result.all)")
            #expect(
                result.stdout.contains(
                    "exp-001-autosave (portal_form_autosave): progressing at staging since 2027-01-01T00:00:00Z"))
            result = try await rolloutctl(["status", "--state", w.statePath, "--json"])
            #expect(result.status == 0)
            let status = try parseJSON(result.stdout)
            #expect(status["formatVersion"] as? String == "1.0")
            let row = try #require((status["rollouts"] as? [[String: Any]])?.first)
            #expect(row["name"] as? String == "exp-001-autosave")
            #expect(row["flag"] as? String == "portal_form_autosave")
            #expect(row["phase"] as? String == "staging")
            #expect(row["status"] as? String == "progressing")
            #expect(row["enteredAt"] as? String == "2027-01-01T00:00:00Z")
            #expect((row["phases"] as? [[String: Any]])?.map { $0["phase"] as? String } == ["staging"])

            result = try await rolloutctl(["history", "--state", w.statePath])
            #expect(result.status == 0, "\(result.all)")
            let lines = result.stdout.split(separator: "\n").map(String.init)
            #expect(
                lines.contains {
                    $0.contains("exp-001-autosave[staging] intent advance: absent → enabled 100% (staging)")
                })
            #expect(
                lines.contains {
                    $0.contains("exp-001-autosave[staging] result advance") && $0.contains("= applied for #1")
                })
            #expect(lines.last == "2 entries shown.")

            result = try await rolloutctl(["history", "--state", w.statePath, "--json", "--limit", "1"])
            #expect(result.status == 0)
            let entries = try #require(try parseJSON(result.stdout)["entries"] as? [[String: Any]])
            #expect(entries.count == 1)
            #expect(entries.first?["kind"] as? String == "result")
            #expect(entries.first?["result"] as? String == "applied")
            #expect(entries.first?["rollout"] as? String == "exp-001-autosave")
            #expect((entries.first?["to"] as? [String: Any])?["enabled"] as? Bool == true)

            result = try await rolloutctl(["history", "--state", w.statePath, "--rollout", "nope"])
            #expect(result.stdout.contains("No history yet."))
        }
    }

    @Test func tokenNeverAppearsAnywhere() async throws {
        let token = CLIWorld.token
        try await CLIWorld.with { w in
            try await w.seed()
            // Most verbose logs, success.
            var result = try await w.reconcile([], environment: ["LOG_LEVEL": "trace"])
            #expect(result.status == 0, "\(result.all)")
            #expect(w.service.patchRequests.first?.header("Authorization") == "Bearer \(token)")
            #expect(!result.all.isEmpty)
            #expect(!result.all.contains(token))

            // A token in a variable named by --token-env.
            result = try await w.reconcile(
                ["--token-env", "FLAGS_TOKEN", "--json"], now: "2027-01-01T01:00:00Z",
                environment: ["LOG_LEVEL": "trace", "FLAGS_TOKEN": token, "ADMIN_TOKEN": "unused"])
            #expect(result.status == 0, "\(result.all)")
            #expect(!result.all.contains(token))

            for command in [["status"], ["history"], ["history", "--json"], ["status", "--json"]] {
                let view = try await rolloutctl(command + ["--state", w.statePath])
                #expect(!view.all.contains(token))
            }
            #expect(!w.stateBytes().contains(token))
        }
        // Refused (401): the wrong token is not echoed either.
        try await CLIWorld.with(serviceToken: "the-right-one-5c3d") { w in
            try await w.seed()
            let result = try await w.reconcile([], environment: ["LOG_LEVEL": "trace"])
            #expect(result.status == 1)
            #expect(result.all.contains("401"))
            #expect(w.service.patchRequests.count == 1)
            #expect(!result.all.contains(token))
            let history = try await rolloutctl(["history", "--state", w.statePath, "--json"])
            #expect(history.stdout.contains("failed"))
            #expect(!history.all.contains(token))
            #expect(!w.stateBytes().contains(token))
            #expect(w.stateBytes().count > 0)
        }
    }

    @Test func rollbackNotifiesTheWebhookOnce() async throws {
        let hook = HTTPTestServer { _ in .json(200, "{}") }
        try await hook.start()
        defer { Task { await hook.stop() } }
        try await CLIWorld.with { w in
            try await w.seed()
            let notify = ["--notify-url", "platform-team=\(hook.baseURL)/hook"]
            #expect(try await w.reconcile(notify).status == 0)
            #expect(hook.requests.isEmpty)

            try w.setMetrics(["error-rate": 0.031, "latency-p95-delta": 0.05, "submission-success": 0.98])
            let result = try await w.reconcile(notify, now: "2027-01-01T01:00:00Z")
            #expect(result.status == 0, "\(result.all)")
            #expect(result.stdout.contains("rolled-back"))
            #expect(w.environments() == ["staging": .disabled])

            #expect(hook.requests.count == 1)
            let request = try #require(hook.requests.first)
            #expect(request.method == "POST")
            #expect(request.path == "/hook")
            #expect(request.header("Content-Type")?.hasPrefix("application/json") == true)
            let body = try parseJSON(request.bodyString)
            #expect(body["rollout"] as? String == "exp-001-autosave")
            #expect(body["flag"] as? String == "portal_form_autosave")
            #expect(body["status"] as? String == "rolled-back")
            #expect((body["message"] as? String)?.contains("error-rate = 0.031") == true)
            #expect(!request.bodyString.contains(CLIWorld.token))

            // Still rolled back next time: no second notification.
            #expect(try await w.reconcile(notify, now: "2027-01-01T02:00:00Z").status == 0)
            #expect(hook.requests.count == 1)
        }
    }

    @Test(arguments: ["500", "closed"])
    func failingWebhookDoesNotBlockTheRollback(_ failure: String) async throws {
        let hook = HTTPTestServer { _ in .json(500, #"{"error":"down"}"#) }
        try await hook.start()
        defer { Task { await hook.stop() } }
        let url = failure == "500" ? "\(hook.baseURL)/hook" : "http://127.0.0.1:\(try await closedPort())/hook"
        try await CLIWorld.with { w in
            try await w.seed()
            let notify = ["--notify-url", "platform-team=\(url)"]
            #expect(try await w.reconcile(notify).status == 0)
            try w.setMetrics(["error-rate": 0.031, "latency-p95-delta": 0.05, "submission-success": 0.98])
            let result = try await w.reconcile(notify, now: "2027-01-01T01:00:00Z")
            #expect(result.status == 0, "\(result.all)")
            #expect(w.environments() == ["staging": .disabled])
            #expect(result.stderr.contains("notification to platform-team"), "\(result.stderr)")
            #expect(result.seconds < 20)
            if failure == "500" { #expect(hook.requests.count == 1) }
            let status = try await rolloutctl(["status", "--state", w.statePath, "--json"])
            #expect(
                (try parseJSON(status.stdout)["rollouts"] as? [[String: Any]])?.first?["status"] as? String
                    == "rolled-back")
        }
    }
}
