import Foundation
import RolloutCore
import RolloutTestSupport
import Testing

/// `--flags ENV=URL` through the built binary: staging in a flagd file, the rest in Unleash.
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

    @Test func aPlainFlagdFileIsRefused() async throws {
        try await CLIWorld.with { w in
            try await w.seed()
            let result = try await rolloutctl(["plan", "--repo", w.repo.path, "--flags", "flagd:/etc/flagd/flags.json"])
            #expect(result.status == 1)
            #expect(result.stderr.contains("a flagd file is one environment"))
        }
    }
}
