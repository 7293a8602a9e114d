import Foundation
import RolloutCore
import RolloutTestSupport
import Testing

/// `rolloutctl plan` as a process: the JSON document of SPEC §6, exit codes, colour, --now.
@Suite(.serialized) struct PlanCommandTests {
    @Test func planJSONHasTheDocumentedShape() async throws {
        try await CLIWorld.with { w in
            try await w.seed()
            let stateBefore = FileManager.default.contents(atPath: w.statePath)
            let result = try await w.plan(["--json"])
            #expect(result.status == 0, "\(result.stderr)")
            let document = try parseJSON(result.stdout)

            #expect(document["formatVersion"] as? String == "1.0")
            #expect(document["revision"] as? String == (try w.repo.head()))
            #expect(document["now"] as? String == "2027-01-01T00:00:00Z")

            let rollouts = try #require(document["rollouts"] as? [[String: Any]])
            #expect(rollouts.count == 1)
            let rollout = try #require(rollouts.first)
            #expect(rollout["name"] as? String == "exp-001-autosave")
            #expect(rollout["flag"] as? String == "portal_form_autosave")
            #expect(rollout["planBlob"] as? String == (try w.repo.blobID(of: "rollouts/exp-001-autosave/plan.json")))
            let statuses = [
                "progressing", "holding", "blocked", "completed", "rolled-back", "paused", "aborted",
                "orphaned", "invalid",
            ]
            #expect(statuses.contains(rollout["status"] as? String ?? ""))
            #expect(rollout["status"] as? String == "progressing")
            // As in SPEC §6: currentPhase is the phase in force now (none yet, so null), nextPhase
            // the one the listed changes enter.
            #expect(rollout["currentPhase"] is NSNull)
            #expect(rollout["nextPhase"] as? String == "staging")
            #expect(rollout["blockers"] is [Any])
            #expect(rollout["approvals"] is [Any])
            #expect((rollout["errors"] as? [Any])?.isEmpty == true)

            let changes = try #require(rollout["changes"] as? [[String: Any]])
            #expect(changes.count == 1)
            let change = try #require(changes.first)
            #expect(change["environment"] as? String == "staging")
            #expect(change["reason"] as? String == "advance")
            // An environment the flag does not have yet reads as disabled at 0, so `from` is
            // always an object a script can read.
            let from = try #require(change["from"] as? [String: Any])
            #expect(from["enabled"] as? Bool == false)
            #expect((from["coverage"] as? NSNumber)?.doubleValue == 0)
            let to = try #require(change["to"] as? [String: Any])
            #expect(to["enabled"] as? Bool == true)
            #expect((to["coverage"] as? NSNumber)?.doubleValue == 100)

            let summary = try #require(document["summary"] as? [String: Any])
            #expect(summary["change"] as? Int == 1)
            #expect(summary["blocked"] as? Int == 0)
            #expect(summary["unchanged"] as? Int == 0)
            #expect(summary["error"] as? Int == 0)
            // plan changes nothing.
            #expect(w.service.patchRequests.isEmpty)
            #expect(FileManager.default.contents(atPath: w.statePath) == stateBefore)
        }
    }

    @Test func planJSONBlockersApprovalsAndChangeShapes() async throws {
        try await CLIWorld.with { w in
            // Staging at 50%, so that a change behind rolloutctl's back can be above it (drift, SPEC §5.6;
            // below it would be an override).
            try await w.seed(
                plan: CLIWorld.plan().replacingOccurrences(of: "\"coverage\": 100 },", with: "\"coverage\": 50 },"))
            #expect(try await w.reconcile().status == 0)
            #expect(w.environments()["staging"] == FlagEnvironmentState(enabled: true, coverage: 50))
            w.service.changeConcurrently(
                CLIWorld.flag, environment: "staging", to: FlagEnvironmentState(enabled: true, coverage: 60))
            let result = try await w.plan(["--json"], now: "2027-01-01T05:00:00Z")
            #expect(result.status == 0, "\(result.stderr)")
            let document = try parseJSON(result.stdout)
            let rollout = try #require((document["rollouts"] as? [[String: Any]])?.first)
            #expect(rollout["status"] as? String == "blocked")
            #expect(rollout["currentPhase"] as? String == "staging")
            #expect(rollout["nextPhase"] as? String == "canary-10")
            let blockers = try #require(rollout["blockers"] as? [[String: Any]])
            #expect(Set(blockers.compactMap { $0["role"] as? String }) == ["engineering-lead", "qa-lead", "sre"])
            #expect(
                blockers.allSatisfy { $0["kind"] as? String == "approval" && $0["phase"] as? String == "canary-10" })
            #expect(blockers.allSatisfy { ($0["detail"] as? String)?.isEmpty == false })
            let change = try #require((rollout["changes"] as? [[String: Any]])?.first)
            #expect(change["reason"] as? String == "drift")
            let from = try #require(change["from"] as? [String: Any])
            #expect(from["enabled"] as? Bool == true)
            #expect((from["coverage"] as? NSNumber)?.doubleValue == 60)
            let summary = try #require(document["summary"] as? [String: Any])
            #expect(summary["change"] as? Int == 1)
        }
    }

    @Test func detailedExitcode() async throws {
        try await CLIWorld.with { w in
            try await w.seed()
            // 2: changes pending (staging); without the flag, 0.
            var result = try await w.plan(["--detailed-exitcode"])
            #expect(result.status == 2, "\(result.all)")
            #expect(
                result.stdout.contains(
                    "~ portal_form_autosave[staging]: enabled, coverage 0 → 100 (advance to staging)"))
            #expect(result.stdout.contains("Plan: 1 to change, 0 blocked, 0 unchanged."))
            result = try await w.plan([])
            #expect(result.status == 0)

            // 0: no changes (staging applied; canary-10 waits for approvals).
            #expect(try await w.reconcile().status == 0)
            result = try await w.plan(["--detailed-exitcode"], now: "2027-01-01T01:00:00Z")
            #expect(result.status == 0, "\(result.all)")
            #expect(result.stdout.contains("canary-10 needs an approval from role sre"))

            // 1: the flag service is unreachable.
            let port = try await closedPort()
            result = try await w.plan(["--detailed-exitcode"], flags: "http://127.0.0.1:\(port)")
            #expect(result.status == 1, "\(result.all)")
            #expect(result.all.contains("unavailable") || result.all.contains("unreachable"))

            // 1: the flag does not exist in the service.
            w.service.removeFlag(CLIWorld.flag)
            result = try await w.plan(["--detailed-exitcode"])
            #expect(result.status == 1, "\(result.all)")
            #expect(result.all.contains("does not exist"))
        }
    }

    @Test func detailedExitcodeIsOneForAnInvalidPlan() async throws {
        try await CLIWorld.with { w in
            try await w.seed(plan: CLIWorld.plan(extra: "\n  \"bake\": \"forever\","))
            let result = try await w.plan(["--detailed-exitcode"])
            #expect(result.status == 1, "\(result.all)")
            // path:line:column: message
            #expect(result.stdout.contains("rollouts/exp-001-autosave/plan.json:5:"), "\(result.stdout)")
            #expect(result.stdout.contains("invalid"))
            let json = try await w.plan(["--json", "--detailed-exitcode"])
            #expect(json.status == 1)
            let rollout = try #require((try parseJSON(json.stdout)["rollouts"] as? [[String: Any]])?.first)
            #expect(rollout["status"] as? String == "invalid")
            let error = try #require((rollout["errors"] as? [[String: Any]])?.first)
            #expect(error["path"] as? String == "rollouts/exp-001-autosave/plan.json")
            #expect(error["line"] as? Int == 5)
            #expect((error["column"] as? Int ?? 0) >= 1)
            #expect((error["message"] as? String)?.isEmpty == false)
            #expect((try parseJSON(json.stdout)["summary"] as? [String: Any])?["error"] as? Int == 1)
        }
    }

    @Test func nowParsingErrorsAreClear() async throws {
        try await CLIWorld.with { w in
            try await w.seed()
            for bad in ["yesterday", "2027-01-01", "2027-01-01T00:00:00", "2027-13-01T00:00:00Z"] {
                let result = try await w.plan([], now: bad)
                #expect(result.status != 0 && result.status != 2, "\(bad): \(result.status)")
                #expect(result.stderr.contains("--now takes an RFC 3339 time"), "\(bad): \(result.stderr)")
                #expect(result.stderr.contains(bad))
                #expect(result.stdout.isEmpty)
                #expect(!result.stderr.contains("Fatal error"))
                #expect(result.seconds < 3)
                let reconcile = try await w.reconcile([], now: bad)
                #expect(reconcile.status != 0, "\(bad)")
                #expect(reconcile.stderr.contains("--now takes an RFC 3339 time"))
                #expect(!reconcile.stderr.contains("Fatal error"))
            }
            #expect(w.service.patchRequests.isEmpty)
            // An offset is fine, and reported in UTC.
            let result = try await w.plan(["--json"], now: "2027-01-01T02:00:00+02:00")
            #expect(result.status == 0, "\(result.stderr)")
            #expect(try parseJSON(result.stdout)["now"] as? String == "2027-01-01T00:00:00Z")
        }
    }

    /// A refused option is a message and a non-zero exit, never a crash (an HTTP client made
    /// before the option was refused used to trap when it was dropped without shutdown).
    @Test func optionErrorsAreMessagesNotCrashes() async throws {
        try await CLIWorld.with { w in
            try await w.seed()
            let requestsBefore = w.service.requests.count  // init's read of the flag
            let cases: [([String], String)] = [
                (["plan"] + w.runArguments() + ["--notify-url", "nonsense"], "--notify-url takes NAME=URL"),
                (["reconcile"] + w.runArguments() + ["--notify-url", "=http://x"], "--notify-url takes NAME=URL"),
                (
                    ["plan", "--repo", w.repo.path, "--flags", "ftp://x", "--metrics", "http://127.0.0.1:1"],
                    "--flags takes"
                ),
                (
                    ["plan", "--repo", w.repo.path, "--flags", w.service.baseURL, "--metrics", "prom:x"],
                    "--metrics takes"
                ),
                (["reconcile"] + w.runArguments(now: nil) + ["--interval", "soon"], "--interval takes"),
                (["reconcile"] + w.runArguments() + ["--interval", "1m"], "--now cannot be combined with --interval"),
                (["reconcile"] + w.runArguments() + ["--lock-timeout", "a while"], "--lock-timeout takes"),
            ]
            for (arguments, message) in cases {
                let result = try await rolloutctl(arguments, environment: ["ADMIN_TOKEN": CLIWorld.token])
                #expect(result.status != 0 && result.status != 2, "\(arguments)")
                #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
                #expect(!result.stderr.contains("Fatal error"), "\(arguments)")
            }
            #expect(w.service.requests.count == requestsBefore)
        }
    }

    /// Colour only on a terminal (run under `script` for a pseudo-terminal); never with
    /// --no-color or NO_COLOR.
    @Test func colourOnlyOnATerminalAndNeverWhenAskedNot() async throws {
        try await CLIWorld.with { w in
            try await w.seed()
            let escape = "\u{1B}["
            // Not a terminal: no colour at all.
            var result = try await w.plan([])
            #expect(result.status == 0)
            #expect(!result.all.contains(escape))

            func underTerminal(_ extra: [String], environment: [String: String] = [:]) async throws -> ProcessResult {
                let command = ([Binary.path, "plan"] + w.runArguments() + extra).map { "'\($0)'" }.joined(
                    separator: " ")
                return try await RunningProcess(
                    "/usr/bin/script", ["-qec", command, "/dev/null"],
                    environment: ["ADMIN_TOKEN": CLIWorld.token, "TERM": "xterm"]
                        .merging(environment) { _, new in new }
                ).wait()
            }
            result = try await underTerminal([])
            #expect(result.status == 0, "\(result.all)")
            #expect(result.stdout.contains(escape), "a terminal gets colour")
            result = try await underTerminal(["--no-color"])
            #expect(result.stdout.contains("Plan: 1 to change"))
            #expect(!result.stdout.contains(escape))
            result = try await underTerminal([], environment: ["NO_COLOR": "1"])
            #expect(result.stdout.contains("Plan: 1 to change"))
            #expect(!result.stdout.contains(escape))
        }
    }
}
