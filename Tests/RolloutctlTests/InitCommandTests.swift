import Foundation
import RolloutCore
import RolloutTestSupport
import Testing

/// `rolloutctl init`, the default `.rolloutctl/` inside --repo, and a rollback that survives SIGKILL,
/// with the real binary against the flag API on 127.0.0.1.
@Suite(.serialized) struct InitCommandTests {
    @Test func reconcileWithoutAStateExits1WithTheMessageThenInitMakesItWork() async throws {
        try await CLIWorld.with { w in
            try w.repo.commitFiles(
                [
                    "policies/approvers.json": CLIWorld.approvers,
                    "rollouts/exp-001-autosave/plan.json": CLIWorld.plan(),
                ], "Add", author: CLIWorld.robin)
            let refused = try await w.reconcile()
            #expect(refused.status == 1)
            #expect(
                refused.stderr.contains(
                    "no state at \(w.statePath): run `rolloutctl init` for a new installation, "
                        + "or restore the state"), "\(refused.stderr)")
            #expect(!FileManager.default.fileExists(atPath: w.statePath))
            #expect(w.service.patchRequests.isEmpty)
            // plan works without a state and creates none.
            #expect(try await w.plan().status == 0)
            #expect(!FileManager.default.fileExists(atPath: w.statePath))

            let initialised = try await w.initialise()
            #expect(initialised.status == 0, "\(initialised.all)")
            #expect(initialised.stdout.contains("Initialised \(w.statePath)"))
            let result = try await w.reconcile()
            #expect(result.status == 0, "\(result.all)")
            #expect(w.environments() == ["staging": .init(enabled: true, coverage: 100)])
            // A second init never overwrites it.
            let again = try await w.initialise()
            #expect(again.status == 1)
            #expect(again.stderr.contains("already exists"))
        }
    }

    @Test func theDefaultStateLivesInsideTheRepositoryWhateverTheWorkingDirectory() async throws {
        let repo = try GitFixture()
        try repo.commitFiles(
            [
                "rollouts/demo/plan.json": """
                { "apiVersion": "rolloutctl/v1", "name": "demo", "flag": "demo_flag",
                  "phases": [ { "name": "staging", "environment": "staging", "coverage": 100 } ] }
                """
            ], "Add demo")
        let elsewhere = try TemporaryDirectory(prefix: "rolloutctl-cwd")
        let initialised = try await rolloutctl(["init", "--repo", repo.path], in: elsewhere.path)
        #expect(initialised.status == 0, "\(initialised.all)")
        #expect(FileManager.default.fileExists(atPath: repo.path + "/.rolloutctl/state.sqlite"))
        let result = try await rolloutctl(["reconcile", "--repo", repo.path], in: elsewhere.path)
        #expect(result.status == 0, "\(result.all)")
        #expect(FileManager.default.fileExists(atPath: repo.path + "/.rolloutctl/flags.json"))
        #expect(FileManager.default.fileExists(atPath: repo.path + "/.rolloutctl/state.sqlite.lock"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: elsewhere.path).isEmpty)
        let status = try await rolloutctl(["status", "--repo", repo.path], in: elsewhere.path)
        #expect(status.stdout.contains("demo (demo_flag):"), "\(status.all)")

        // A bare repository keeps it in its own directory.
        let bare = try TemporaryDirectory(prefix: "rolloutctl-bare")
        try runProgram("git", ["clone", "-q", "--bare", repo.path, bare.path + "/r.git"])
        let bareInit = try await rolloutctl(["init", "--repo", bare.path + "/r.git"], in: elsewhere.path)
        #expect(bareInit.status == 0, "\(bareInit.all)")
        #expect(FileManager.default.fileExists(atPath: bare.path + "/r.git/.rolloutctl/state.sqlite"))
    }

    @Test func initOnAnExposedInstallationRefusesWithoutAdopt() async throws {
        try await CLIWorld.with { w in
            w.service.setFlag(
                CLIWorld.flag,
                environments: [
                    "staging": .init(enabled: true, coverage: 100),
                    "production": .init(enabled: true, coverage: 10),
                ])
            try w.repo.commitFiles(
                [
                    "policies/approvers.json": CLIWorld.approvers,
                    "rollouts/exp-001-autosave/plan.json": CLIWorld.plan(),
                ], "Add", author: CLIWorld.robin)
            let refused = try await w.initialise()
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("--adopt"), "\(refused.stderr)")
            #expect(!FileManager.default.fileExists(atPath: w.statePath))
            let adopted = try await w.initialise(["--adopt", "--now", "2027-01-01T00:00:00Z"])
            #expect(adopted.status == 0, "\(adopted.all)")
            #expect(adopted.stdout.contains("exp-001-autosave: adopted at canary-10"))
            let plan = try await w.plan(["--json"], now: "2027-01-01T01:00:00Z")
            let rollout = try #require((try parseJSON(plan.stdout)["rollouts"] as? [[String: Any]])?.first)
            #expect(rollout["currentPhase"] as? String == "canary-10")
        }
    }

    @Test func nowEarlierThanTheLatestRunIsRefused() async throws {
        try await CLIWorld.with { w in
            try await w.seed()
            #expect(try await w.reconcile(now: "2027-01-01T05:00:00Z").status == 0)
            let earlier = try await w.reconcile(now: "2027-01-01T04:00:00Z")
            #expect(earlier.status == 1)
            #expect(earlier.stderr.contains("earlier than the latest reconcile"), "\(earlier.stderr)")
            let history = try await rolloutctl(["history", "--state", w.statePath, "--json"])
            let entries = try #require(try parseJSON(history.stdout)["entries"] as? [[String: Any]])
            #expect(!entries.isEmpty)
        }
    }

    /// SIGKILL between the two PATCHes of a rollback: the next run finishes it (staging too) and
    /// the notification, queued with the rollback, is delivered once.
    @Test func aRollbackKilledAfterItsFirstPatchIsFinishedAndNotifiedOnce() async throws {
        let hook = HTTPTestServer { _ in .json(200, "{}") }
        try await hook.start()
        defer { Task { await hook.stop() } }
        try await CLIWorld.with { w in
            try await w.seed(
                plan: """
                    { "apiVersion": "rolloutctl/v1", "name": "exp-001-autosave", "flag": "\(CLIWorld.flag)",
                      "phases": [ { "name": "staging", "environment": "staging", "coverage": 100 },
                                  { "name": "canary-10", "environment": "production", "coverage": 10 } ],
                      "health": { "checks": [ { "name": "error-rate", "query": "q", "max": 0.02, "onBreach": "rollback" } ] },
                      "rollback": { "automatic": true, "notify": ["platform-team"] } }
                    """)
            let notify = ["--notify-url", "platform-team=\(hook.baseURL)/hook"]
            try w.setMetrics(["error-rate": 0.004])
            #expect(try await w.reconcile(notify).status == 0)
            #expect(try await w.reconcile(notify, now: "2027-01-01T01:00:00Z").status == 0)
            #expect(
                w.environments() == [
                    "staging": .init(enabled: true, coverage: 100),
                    "production": .init(enabled: true, coverage: 10),
                ])

            // The breach; the first PATCH (production) lands but its answer is held back, and the run is killed.
            try w.setMetrics(["error-rate": 0.05])
            w.service.inject(.delay(.seconds(8)), times: 1, on: "PATCH")
            let applied = w.service.appliedPatches.count
            let killed = try RunningProcess(
                Binary.path,
                ["reconcile"] + w.runArguments(now: "2027-01-01T02:00:00Z")
                    + notify, environment: ["ADMIN_TOKEN": CLIWorld.token])
            let deadline = Date().addingTimeInterval(20)
            while w.service.appliedPatches.count == applied && Date() < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            kill(killed.process.processIdentifier, SIGKILL)
            let result = await killed.wait()
            #expect(result.status != 0)
            #expect(w.environments()["production"] == .disabled)
            #expect(w.environments()["staging"] == .init(enabled: true, coverage: 100))
            #expect(hook.requests.isEmpty)
            let status = try await rolloutctl(["status", "--state", w.statePath, "--json"])
            #expect(
                (try parseJSON(status.stdout)["rollouts"] as? [[String: Any]])?.first?["status"] as? String
                    == "rolled-back")

            // Healthy again: the next run finishes the rollback and delivers the notification once.
            try w.setMetrics(["error-rate": 0.004])
            let next = try await w.reconcile(notify, now: "2027-01-01T03:00:00Z")
            #expect(next.status == 0, "\(next.all)")
            #expect(w.environments() == ["staging": .disabled, "production": .disabled])
            #expect(hook.requests.count == 1)
            #expect(hook.requests.first?.bodyString.contains("\"status\":\"rolled-back\"") == true)
            #expect(hook.requests.first?.header("Idempotency-Key")?.isEmpty == false)
            #expect(try await w.reconcile(notify, now: "2027-01-01T04:00:00Z").status == 0)
            #expect(hook.requests.count == 1)
            #expect(w.environments() == ["staging": .disabled, "production": .disabled])
        }
    }
}
