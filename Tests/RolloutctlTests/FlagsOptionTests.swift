import Foundation
import RolloutCore
import RolloutTestSupport
import Testing

/// `--flags ENV=URL` through the built binary: staging in a flagd file, the rest in Unleash; staging in
/// the embedded file, production in LaunchDarkly.
@Suite(.serialized) struct FlagsOptionTests {
    static let flagd = """
        {
          "flags": {
            "portal_form_autosave": {
              "state": "ENABLED", "variants": { "on": true, "off": false }, "defaultVariant": "off"
            }
          }
        }
        """

    @Test func stagingOnFlagdTheRestOnUnleash() async throws {
        try await CLIWorld.with { w in
            let unleash = FakeUnleash(project: "portal")
            unleash.setFeature(CLIWorld.flag, environments: [.init(name: "staging"), .init(name: "production")])
            try await unleash.start()
            defer { Task { await unleash.stop() } }
            let flagdPath = w.stateDirectory.file("staging.flagd.json")
            try Data(Self.flagd.utf8).write(to: URL(fileURLWithPath: flagdPath))
            try await w.seed()
            let common = [
                "--repo", w.repo.path, "--state", w.statePath, "--metrics", "file:" + w.metricsPath,
                "--now", "2027-01-01T00:00:00Z",
                "--flags", "staging=flagd:" + flagdPath, "--flags", unleash.flagsURL,
            ]
            let token = ["ADMIN_TOKEN": unleash.adminToken]

            let plan = try await rolloutctl(["plan", "--json"] + common, environment: token)
            #expect(plan.status == 0, "\(plan.all)")
            #expect(plan.stdout.contains("\"environment\": \"staging\""))
            let result = try await rolloutctl(["reconcile"] + common, environment: token)
            #expect(result.status == 0, "\(result.all)")
            let written = try String(contentsOfFile: flagdPath, encoding: .utf8)
            #expect(written.contains(#"["on", 100], ["off", 0]"#))
            #expect(unleash.writes.isEmpty)  // production is not reached yet; Unleash's staging is not ours
            #expect(!result.all.contains(unleash.adminToken))
        }
    }

    /// `--flags staging=file:… --flags production=launchdarkly+http://…` in the same runs: staging in
    /// the embedded file, production in LaunchDarkly through one semantic patch; the token comes from
    /// `--token-env` and is never printed. Aborted: both environments off in one run, one store each.
    @Test func stagingInAFileProductionInLaunchDarkly() async throws {
        try await CLIWorld.with { w in
            let launchDarkly = FakeLaunchDarkly(project: "portal", token: "api-ld-\(UUID().uuidString)")
            launchDarkly.setFlag(FakeLaunchDarkly.Flag(key: CLIWorld.flag, environments: ["staging", "production"]))
            try await launchDarkly.start()
            defer { Task { await launchDarkly.stop() } }
            let plan = { (state: String) in
                """
                { "apiVersion": "rolloutctl/v1", "name": "exp-001-autosave", "flag": "\(CLIWorld.flag)",
                  "state": "\(state)",
                  "phases": [ { "name": "staging", "environment": "staging", "coverage": 100 },
                              { "name": "canary-10", "environment": "production", "coverage": 10 } ] }
                """
            }
            try await w.seed(plan: plan("active"))
            let filePath = w.stateDirectory.file("staging-flags.json")
            let flags = ["--flags", "staging=file:" + filePath, "--flags", "production=" + launchDarkly.flagsURL]
            let token = ["LD_ACCESS_TOKEN": launchDarkly.token]
            func reconcile(_ now: String) async throws -> ProcessResult {
                let result = try await rolloutctl(
                    [
                        "reconcile", "--repo", w.repo.path, "--state", w.statePath, "--metrics",
                        "file:" + w.metricsPath,
                        "--now", now, "--token-env", "LD_ACCESS_TOKEN",
                    ] + flags, environment: token)
                #expect(result.status == 0, "\(result.all)")
                #expect(!result.all.contains(launchDarkly.token))
                return result
            }
            /// Staging as the embedded file holds it.
            func staging() throws -> [String: Any]? {
                let document = try parseJSON(String(contentsOfFile: filePath, encoding: .utf8))
                let flag = (document["flags"] as? [String: Any])?[CLIWorld.flag] as? [String: Any]
                return (flag?["environments"] as? [String: Any])?["staging"] as? [String: Any]
            }
            _ = try await reconcile("2027-01-01T00:00:00Z")
            #expect(try staging()?["enabled"] as? Bool == true)
            #expect(try staging()?["coverage"] as? Double == 100)
            #expect(launchDarkly.patches.isEmpty)
            _ = try await reconcile("2027-01-01T01:00:00Z")
            #expect(launchDarkly.patches.map(\.environment) == ["production"])
            #expect(launchDarkly.patches.first?.kinds == ["turnFlagOn", "updateFallthroughVariationOrRollout"])
            #expect(
                launchDarkly.patches.first?.comment?.hasPrefix(
                    "rolloutctl: rollout exp-001-autosave, phase canary-10, plan ") == true)
            #expect(launchDarkly.requests.allSatisfy { $0.header("Authorization") == launchDarkly.token })

            try w.repo.commitFiles(
                ["rollouts/exp-001-autosave/plan.json": plan("aborted")], "Abort", author: CLIWorld.robin)
            _ = try await reconcile("2027-01-01T02:00:00Z")
            #expect(launchDarkly.patches.map(\.kinds).last == ["turnFlagOff"])
            #expect(launchDarkly.flag(CLIWorld.flag)?.environments["production"]?.on == false)
            #expect(try staging()?["enabled"] as? Bool == false)
        }
    }

    @Test func aPlainFlagdFileIsRefused() async throws {
        try await CLIWorld.with { w in
            try await w.seed()
            let result = try await rolloutctl(["plan", "--repo", w.repo.path, "--flags", "flagd:/etc/flagd/flags.json"])
            #expect(result.status == 1)
            #expect(result.stderr.contains("a flagd file is one environment"))
        }
    }

    /// Issue 22: the bound on calls in flight to one flag service is a usage error outside 1 … 64, before anything
    /// is read or written.
    @Test func aFlagCallBoundOutsideItsRangeIsRefused() async throws {
        try await CLIWorld.with { w in
            try await w.seed()
            for bad in ["0", "65"] {
                let result = try await rolloutctl(["plan", "--repo", w.repo.path, "--flag-calls", bad])
                #expect(result.status != 0)
                #expect(result.stderr.contains("--flag-calls takes 1 … 64, got \(bad)"), "\(result.stderr)")
            }
            let accepted = try await rolloutctl(["plan", "--repo", w.repo.path, "--flag-calls", "1"])
            #expect(accepted.status == 0, "\(accepted.stderr)")
        }
    }
}
