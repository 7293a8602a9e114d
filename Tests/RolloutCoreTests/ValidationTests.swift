import Foundation
import RolloutTestSupport
import Testing

@testable import RolloutCore

/// Loads an in-memory tree (path → text) the way the git adapter would present it.
func loadSnapshot(
    _ files: [String: String], symlinks: [String] = [], submodules: [String] = [],
    raw: [String: [UInt8]] = [:]
) -> RepositorySnapshot {
    var tree: [TreeFile] = []
    var contents: [String: [UInt8]] = raw
    for (path, text) in files { contents[path] = Array(text.utf8) }
    for (path, bytes) in contents {
        tree.append(TreeFile(path: path, kind: .blob, objectID: fakeBlobID(bytes), size: bytes.count))
    }
    for path in symlinks {
        tree.append(TreeFile(path: path, kind: .symlink, objectID: String(repeating: "1", count: 40), size: 0))
    }
    for path in submodules {
        tree.append(TreeFile(path: path, kind: .submodule, objectID: String(repeating: "2", count: 40), size: 0))
    }
    return RepositoryLoader.load(files: tree.sorted { $0.path < $1.path }) { file in contents[file.path] ?? [] }
}

func fakeBlobID(_ bytes: [UInt8]) -> String {
    var hash: UInt64 = 1_469_598_103_934_665_603
    for byte in bytes { hash = (hash ^ UInt64(byte)) &* 1_099_511_628_211 }
    let hex = String(hash, radix: 16)
    return String(repeating: "0", count: 40 - hex.count) + hex
}

let approversJSON = RolloutFixtures.exp001AuthorPolicy

let validPlanJSON = """
    {
      "apiVersion": "rolloutctl/v1",
      "name": "exp-001-autosave",
      "flag": "portal_form_autosave",
      "phases": [
        { "name": "staging", "environment": "staging", "coverage": 100 },
        { "name": "canary-10", "environment": "production", "coverage": 10, "bake": "24h",
          "approvals": ["engineering-lead", "qa-lead", "sre"] },
        { "name": "canary-50", "environment": "production", "coverage": 50, "bake": "24h" },
        { "name": "production", "environment": "production", "coverage": 100, "approvals": ["product-owner"] }
      ],
      "health": {
        "checks": [
          { "name": "error-rate", "query": "q1", "max": 0.02, "onBreach": "rollback" }
        ]
      },
      "rollback": { "automatic": true, "notify": ["platform-team"] }
    }
    """

let planPath = "rollouts/exp-001-autosave/plan.json"

/// The diagnostics of a plan text, as `path:line:column: message` strings.
func planErrors(_ plan: String, extra: [String: String] = [:]) -> [String] {
    var files = [planPath: plan, "policies/approvers.json": approversJSON]
    for (k, v) in extra { files[k] = v }
    return loadSnapshot(files).allDiagnostics.map(\.description)
}

@Suite struct ValidationTests {
    @Test func validPlanHasNoErrors() throws {
        let snapshot = loadSnapshot([planPath: validPlanJSON, "policies/approvers.json": approversJSON])
        #expect(snapshot.allDiagnostics.isEmpty)
        let rollout = try #require(snapshot.rollout(named: "exp-001-autosave"))
        #expect(rollout.isValid)
        #expect(rollout.plan?.phases.map(\.name) == ["staging", "canary-10", "canary-50", "production"])
        #expect(rollout.plan?.phases[1].bake?.seconds == 86400)
    }

    @Test func unknownMajorAPIVersion() {
        let plan = validPlanJSON.replacingOccurrences(of: "\"rolloutctl/v1\"", with: "\"rolloutctl/v2\"")
        #expect(
            planErrors(plan) == [
                "\(planPath):2:17: unknown apiVersion major \"rolloutctl/v2\": this rolloutctl reads \"rolloutctl/v1\""
            ])
    }

    @Test func nameMustMatchPatternAndFolder() {
        let bad = validPlanJSON.replacingOccurrences(
            of: "\"name\": \"exp-001-autosave\"", with: "\"name\": \"Exp_001\"")
        #expect(
            planErrors(bad) == [
                "\(planPath):3:11: name \"Exp_001\" must equal its folder name \"exp-001-autosave\"",
                "\(planPath):3:11: rollout name \"Exp_001\" does not match ^[a-z0-9][a-z0-9-]{0,62}$",
            ])
        let other = validPlanJSON.replacingOccurrences(
            of: "\"name\": \"exp-001-autosave\"", with: "\"name\": \"exp-002\"")
        #expect(
            planErrors(other) == ["\(planPath):3:11: name \"exp-002\" must equal its folder name \"exp-001-autosave\""])
    }

    @Test func duplicatePhase() {
        let plan = validPlanJSON.replacingOccurrences(
            of: "{ \"name\": \"canary-50\"", with: "{ \"name\": \"canary-10\"")
        #expect(planErrors(plan) == ["\(planPath):9:5: duplicate phase \"canary-10\" (first at line 7)"])
    }

    @Test func coverageOutOfRange() {
        let plan = validPlanJSON.replacingOccurrences(of: "\"coverage\": 50", with: "\"coverage\": 120")
        #expect(planErrors(plan) == ["\(planPath):9:69: coverage 120 is outside 0…100"])
    }

    @Test func badDuration() {
        let plan = validPlanJSON.replacingOccurrences(
            of: "\"coverage\": 50, \"bake\": \"24h\"",
            with: "\"coverage\": 50, \"bake\": \"1 day\"")
        #expect(
            planErrors(plan) == [
                "\(planPath):9:81: bake \"1 day\" is not a duration; write e.g. \"90s\", \"30m\", \"24h\" or \"2d\""
            ])
    }

    @Test func roleMissingFromApprovers() {
        let plan = validPlanJSON.replacingOccurrences(of: "[\"product-owner\"]", with: "[\"product-owner\", \"cfo\"]")
        let errors = planErrors(plan)
        #expect(errors.count == 1)
        #expect(
            errors.first?.hasPrefix("\(planPath):10:106: role \"cfo\" is not defined in policies/approvers.json")
                == true)
    }

    @Test func checkNeedsMinOrMax() {
        let plan = validPlanJSON.replacingOccurrences(of: "\"max\": 0.02, ", with: "")
        #expect(planErrors(plan) == ["\(planPath):14:7: health check \"error-rate\" needs \"min\" or \"max\""])
    }

    @Test func healthUseNamesAnExistingSet() {
        let plan = validPlanJSON.replacingOccurrences(
            of: "\"health\": {\n", with: "\"health\": {\n    \"use\": \"standard\",\n")
        #expect(
            planErrors(plan) == [
                "\(planPath):13:12: health set \"standard\" does not exist: expected policies/health/standard.json"
            ])
        let set =
            "{ \"apiVersion\": \"rolloutctl/v1\", \"checks\": [ { \"name\": \"x\", \"query\": \"q\", \"min\": "
            + "1, \"onBreach\": \"hold\" } ] }"
        #expect(planErrors(plan, extra: ["policies/health/standard.json": set]).isEmpty)
        let snapshot = loadSnapshot([
            planPath: plan, "policies/approvers.json": approversJSON,
            "policies/health/standard.json": set,
        ])
        #expect(snapshot.rollout(named: "exp-001-autosave")?.checks.map(\.name) == ["error-rate", "x"])
    }

    @Test func unknownFieldWithHint() {
        let plan = validPlanJSON.replacingOccurrences(of: "\"flag\":", with: "\"flags\":")
        #expect(
            planErrors(plan) == [
                "\(planPath):1:1: the plan is missing the required field \"flag\"",
                "\(planPath):4:3: unknown field \"flags\" in the plan; did you mean \"flag\"?",
            ])
    }

    @Test func wrongType() {
        let plan = validPlanJSON.replacingOccurrences(of: "\"coverage\": 10,", with: "\"coverage\": \"10\",")
        #expect(planErrors(plan) == ["\(planPath):7:69: \"coverage\" must be a number, found a string"])
    }

    @Test func syntaxErrorPosition() {
        let plan = validPlanJSON.replacingOccurrences(
            of: "\"flag\": \"portal_form_autosave\",", with: "\"flag\": \"portal_form_autosave\"")
        #expect(planErrors(plan) == ["\(planPath):5:3: unexpected '\"', expected ',' or '}'"])
    }

    @Test func approvalDisagreeingWithItsPath() {
        let approval = """
            {
              "apiVersion": "rolloutctl/v1",
              "rollout": "exp-001-autosave",
              "phase": "canary-50",
              "role": "sre",
              "approver": "dana@example.com",
              "plan": "\(String(repeating: "a", count: 40))"
            }
            """
        let errors = planErrors(
            validPlanJSON, extra: ["rollouts/exp-001-autosave/approvals/canary-10/sre.json": approval])
        #expect(
            errors == [
                "rollouts/exp-001-autosave/approvals/canary-10/sre.json:4:12: \"phase\" is \"canary-50\" but "
                    + "the file is under approvals/canary-10/"
            ])
    }

    @Test func symlinkSubmoduleOversizedAndNonUTF8() {
        var big = "{\"x\": \""
        big += String(repeating: "a", count: 1 << 20)
        big += "\"}"
        let snapshot = loadSnapshot(
            [
                planPath: validPlanJSON, "policies/approvers.json": approversJSON,
                "rollouts/exp-001-autosave/approvals/canary-10/big.json": big,
            ],
            symlinks: ["rollouts/exp-001-autosave/approvals/canary-10/link.json"],
            submodules: ["rollouts/exp-001-autosave/approvals/canary-10/sub.json"],
            raw: [
                "rollouts/exp-001-autosave/approvals/canary-10/latin1.json": Array("{\n  \"comment\": \"caf".utf8) + [
                    0xE9, 0x22, 0x7D,
                ]
            ])
        let errors = snapshot.allDiagnostics.map(\.description)
        #expect(
            errors == [
                "rollouts/exp-001-autosave/approvals/canary-10/big.json:1:1: is \((1 << 20) + 9) bytes, over "
                    + "the 1 MiB limit",
                "rollouts/exp-001-autosave/approvals/canary-10/latin1.json:2:18: is not valid UTF-8 text",
                "rollouts/exp-001-autosave/approvals/canary-10/link.json:1:1: is a symbolic link; rolloutctl "
                    + "reads only regular files",
                "rollouts/exp-001-autosave/approvals/canary-10/sub.json:1:1: is a submodule; rolloutctl reads "
                    + "only regular files",
            ])
    }

    @Test func unexpectedFilesUnderARollout() {
        let errors = planErrors(
            validPlanJSON,
            extra: [
                "rollouts/exp-001-autosave/README.md": "hi",
                "rollouts/exp-001-autosave/approvals/canary-99/x.json": "{}",
            ])
        #expect(
            errors.contains(
                "rollouts/exp-001-autosave/README.md:1:1: unexpected file: a rollout folder holds plan.json and "
                    + "approvals/<phase>/<name>.json only"
            ))
        #expect(
            errors.contains(
                "rollouts/exp-001-autosave/approvals/canary-99/x.json:1:1: approves phase \"canary-99\", which "
                    + "the plan does not have"
            ))
    }

    @Test func everyErrorInAFileIsReported() {
        let plan = """
            {
              "apiVersion": "rolloutctl/v1",
              "name": "exp-001-autosave",
              "flag": "portal_form_autosave",
              "state": "running",
              "phases": [
                { "name": "Staging", "environment": "staging", "coverage": -1 },
                { "name": "canary", "environment": "production", "coverage": 10, "bake": "soon", "approvals": ["nobody"] }
              ],
              "health": { "checks": [ { "name": "e", "query": "q", "onBreach": "explode" } ] }
            }
            """
        #expect(
            planErrors(plan)
                == [
                    "\(planPath):10:27: health check \"e\" needs \"min\" or \"max\"",
                    "\(planPath):10:68: \"onBreach\" must be one of \"hold\", \"rollback\", \"notify\", found "
                        + "\"explode\"",
                    "\(planPath):5:12: \"state\" must be one of \"active\", \"paused\", \"aborted\", found \"running\"",
                    "\(planPath):7:15: phase name \"Staging\" does not match ^[a-z0-9][a-z0-9-]{0,62}$",
                    "\(planPath):7:64: coverage -1 is outside 0…100",
                    "\(planPath):8:78: bake \"soon\" is not a duration; write e.g. \"90s\", \"30m\", \"24h\" or \"2d\"",
                    "\(planPath):8:100: role \"nobody\" is not defined in policies/approvers.json (roles: "
                        + "engineering-lead, product-owner, qa-lead, sre)",
                ].sorted { Diagnostic.parse($0) < Diagnostic.parse($1) })
    }

    @Test func approversPolicyErrors() {
        let policy = """
            {
              "apiVersion": "rolloutctl/v1",
              "identity": "password",
              "roles": { "sre": "dana@example.com" }
            }
            """
        let errors = loadSnapshot(["policies/approvers.json": policy]).allDiagnostics.map(\.description)
        #expect(
            errors == [
                "policies/approvers.json:1:1: the approvers policy is missing the required field "
                    + "\"policyApprovals\": the roles "
                    + "that must approve a change of policies/ (SPEC §4.3), for example [\"engineering-lead\", "
                    + "\"sre\"]",
                "policies/approvers.json:3:15: \"identity\" must be one of \"author\", \"ssh-signature\", found "
                    + "\"password\"",
                "policies/approvers.json:4:21: role \"sre\" must list member emails in an array, found a string",
            ])
    }

    @Test func policyApprovalsAndFloorsNameDefinedRoles() {
        let policy = """
            {
              "apiVersion": "rolloutctl/v1",
              "policyApprovals": ["sre", "cto"],
              "environments": { "production": { "approvals": ["nobody"] }, "staging": { "aprovals": [] } },
              "roles": { "sre": ["dana@example.com"] }
            }
            """
        let errors = loadSnapshot(["policies/approvers.json": policy]).allDiagnostics.map(\.description)
        #expect(
            errors
                == [
                    "policies/approvers.json:3:30: policyApprovals names role \"cto\", which \"roles\" does not define",
                    "policies/approvers.json:4:51: environments.production.approvals names role \"nobody\", "
                        + "which \"roles\" does not define",
                    "policies/approvers.json:4:77: unknown field \"aprovals\" in environment \"staging\"; did "
                        + "you mean \"approvals\"?",
                    "policies/approvers.json:4:75: environment \"staging\" is missing the required field \"approvals\"",
                ].sorted { Diagnostic.parse($0) < Diagnostic.parse($1) })
    }

    @Test func policyDigestIsTheSha256OfGitLsTreeLines() throws {
        let files = [
            TreeFile(
                path: "policies/allowed_signers", kind: .blob, objectID: String(repeating: "a", count: 40), size: 1),
            TreeFile(
                path: "policies/approvals/x.json", kind: .blob, objectID: String(repeating: "b", count: 40), size: 1),
            TreeFile(
                path: "policies/approvers.json", kind: .blob, objectID: String(repeating: "c", count: 40), size: 1,
                mode: 0o100755),
            TreeFile(
                path: "policies/h\u{e9}\"t.json", kind: .symlink, objectID: String(repeating: "d", count: 40), size: 1),
        ]
        // printf '100644 blob aaa…\tpolicies/allowed_signers\n100755 blob ccc…\tpolicies/approvers.json\n'
        // '120000 blob ddd…\t"policies/h\303\251\"t.json"\n' | sha256sum
        let lines =
            "100644 blob \(String(repeating: "a", count: 40))\tpolicies/allowed_signers\n"
            + "100755 blob \(String(repeating: "c", count: 40))\tpolicies/approvers.json\n"
            + "120000 blob \(String(repeating: "d", count: 40))\t\"policies/h\\303\\251\\\"t.json\"\n"
        let expected = try runProgram("sha256sum", [], input: lines).split(separator: " ")[0]
        #expect(PolicyDigest.compute(files) == String(expected))
    }

    @Test func durations() {
        #expect(RolloutDuration(parsing: "90s")?.seconds == 90)
        #expect(RolloutDuration(parsing: "30m")?.seconds == 1800)
        #expect(RolloutDuration(parsing: "2d")?.seconds == 172800)
        #expect(RolloutDuration(parsing: "1h30m")?.seconds == 5400)
        #expect(RolloutDuration(parsing: "24") == nil)
        #expect(RolloutDuration(parsing: "h") == nil)
        #expect(RolloutDuration.format(seconds: 48000) == "13h20m")
        #expect(RolloutDuration.format(seconds: 45) == "45s")
        #expect(RolloutDuration.format(seconds: 90000) == "1d1h")
    }
}

extension Diagnostic {
    /// Parses `path:line:column: message` back, to sort expected strings like `allDiagnostics` does.
    static func parse(_ text: String) -> Diagnostic {
        let parts = text.split(separator: ":", maxSplits: 3)
        return Diagnostic(
            path: String(parts[0]), line: Int(parts[1]) ?? 0, column: Int(parts[2]) ?? 0,
            message: String(parts[3].dropFirst()))
    }
}

/// SPEC §3 [r2]: two rollouts may not drive the same flag; both plans are errors, at the flag field.
@Suite struct OneFlagOneRolloutTests {
    @Test func twoRolloutsOnOneFlagAreAnErrorOnBothPlans() throws {
        let second = validPlanJSON.replacingOccurrences(of: "\"exp-001-autosave\"", with: "\"exp-002-copy\"")
        let snapshot = loadSnapshot([
            planPath: validPlanJSON, "rollouts/exp-002-copy/plan.json": second,
            "rollouts/exp-003-other/plan.json":
                validPlanJSON
                .replacingOccurrences(of: "\"exp-001-autosave\"", with: "\"exp-003-other\"")
                .replacingOccurrences(of: "\"portal_form_autosave\"", with: "\"other_flag\""),
            "policies/approvers.json": approversJSON,
        ])
        let first = try #require(snapshot.rollout(named: "exp-001-autosave"))
        let copy = try #require(snapshot.rollout(named: "exp-002-copy"))
        for (rollout, other) in [(first, "exp-002-copy"), (copy, "exp-001-autosave")] {
            #expect(!rollout.isValid)
            #expect(rollout.plan == nil)
            let diagnostic = try #require(
                rollout.diagnostics.first { $0.message.contains("two rollouts may not drive") })
            #expect(diagnostic.path == rollout.planPath)
            #expect(diagnostic.line == 4)
            #expect(
                diagnostic.message == "flag \"portal_form_autosave\" is also driven by \(other); "
                    + "two rollouts may not drive the same flag")
        }
        #expect(snapshot.rollout(named: "exp-003-other")?.isValid == true)
    }
}
