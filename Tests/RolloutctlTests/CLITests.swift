import Foundation
import RolloutCore
import RolloutGit
import RolloutKit
import RolloutTestSupport
import Testing

/// The built `rolloutctl` binary (`BuiltProduct`).
enum CLI {
    static let packageRoot = URL(fileURLWithPath: BuiltProduct.packageRoot)
    static let binary: String? = BuiltProduct.debug("rolloutctl")

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static func run(_ arguments: [String], in directory: String? = nil, environment: [String: String] = [:]) throws
        -> Result
    {
        guard let binary else {
            throw FixtureError(
                "rolloutctl is not built: run `swift build --build-tests` (looked in \(packageRoot.path)/.build)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        var env = ProcessInfo.processInfo.environment
        env["NO_COLOR"] = "1"
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Read both pipes concurrently so a full stderr pipe cannot block the child.
        let errData = LockedData()
        let reader = Thread { errData.set(err.fileHandleForReading.readDataToEndOfFile()) }
        reader.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while !errData.isSet { usleep(1000) }
        return Result(
            status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData.get(), as: UTF8.self))
    }
}

final class LockedData: @unchecked Sendable {
    private let lock = NSLock()
    private var data: Data?
    func set(_ value: Data) { lock.withLock { data = value } }
    var isSet: Bool { lock.withLock { data != nil } }
    func get() -> Data { lock.withLock { data ?? Data() } }
}

@Suite struct CLITests {
    typealias F = RolloutFixtures

    /// `F.plan(name:)` with one substitution (which must apply).
    static func plan(_ name: String, replacing old: String, with new: String) -> String {
        let text = F.plan(name: name)
        precondition(text.contains(old), "\(old) not in plan")
        return text.replacingOccurrences(of: old, with: new)
    }

    /// Ten files, each broken in its own way, plus a valid policy and valid rollouts around them.
    static func brokenRepository() throws -> GitFixture {
        let fixture = try GitFixture()
        let anyBlob = String(repeating: "ab", count: 20)
        try fixture.commitFiles(
            [
                "policies/approvers.json": F.policy(identity: "author"),
                // 1: a health set whose check has neither min nor max.
                "policies/health/slow.json": """
                {
                  "apiVersion": "rolloutctl/v1",
                  "checks": [
                    { "name": "latency", "query": "q", "onBreach": "hold" }
                  ]
                }

                """,
                // 2: a JSON syntax error.
                "rollouts/r1/plan.json": plan("r1", replacing: "\"flag\": \"r1\",", with: "\"flag\": \"r1\""),
                // 3: an unknown field.
                "rollouts/r2/plan.json": plan(
                    "r2", replacing: "\"description\": \"test rollout\",",
                    with: "\"description\": \"test rollout\", \"owner\": \"x\","),
                // 4: coverage out of range.
                "rollouts/r3/plan.json": plan("r3", replacing: "\"coverage\": 10,", with: "\"coverage\": 150,"),
                // 5: a bad bake duration.
                "rollouts/r4/plan.json": plan("r4", replacing: "\"bake\": \"24h\"", with: "\"bake\": \"soon\""),
                // 6: name differs from its folder.
                "rollouts/r5/plan.json": plan("r5", replacing: "\"name\": \"r5\"", with: "\"name\": \"r-five\""),
                // 7: a role that approvers.json does not define.
                "rollouts/r6/plan.json": plan(
                    "r6", replacing: "[\"product-owner\"]", with: "[\"product-owner\", \"nobody\"]"),
                // 8: an unknown API major version.
                "rollouts/r7/plan.json": plan("r7", replacing: "rolloutctl/v1", with: "rolloutctl/v2"),
                // 9: an approval whose phase disagrees with its folder.
                "rollouts/r8/plan.json": F.plan(name: "r8"),
                "rollouts/r8/approvals/canary-10/sre.json":
                    F.approval(
                        rollout: "r8", phase: "production", role: "sre", approver: "dana@example.com", plan: anyBlob),
                // 10: an approver that is not an email address.
                "rollouts/r9/plan.json": F.plan(name: "r9"),
                "rollouts/r9/approvals/canary-10/sre.json":
                    F.approval(rollout: "r9", phase: "canary-10", role: "sre", approver: "dana", plan: anyBlob),
                "rollouts/ok/plan.json": F.plan(name: "ok"),
            ], "Ten broken files")
        return fixture
    }

    static let expectedErrors = [
        "policies/health/slow.json:4:5: health check \"latency\" needs \"min\" or \"max\"",
        "rollouts/r1/plan.json:5:3: unexpected '\"', expected ',' or '}'",
        "rollouts/r2/plan.json:5:34: unknown field \"owner\" in the plan",
        "rollouts/r3/plan.json:8:69: coverage 150 is outside 0…100",
        "rollouts/r4/plan.json:8:81: bake \"soon\" is not a duration; write e.g. \"90s\", \"30m\", \"24h\" or \"2d\"",
        "rollouts/r5/plan.json:3:11: name \"r-five\" must equal its folder name \"r5\"",
        "rollouts/r6/plan.json:11:38: role \"nobody\" is not defined in policies/approvers.json (roles: "
            + "engineering-lead, product-owner, qa-lead, sre)",
        "rollouts/r7/plan.json:2:17: unknown apiVersion major \"rolloutctl/v2\": this rolloutctl reads "
            + "\"rolloutctl/v1\"",
        "rollouts/r8/approvals/canary-10/sre.json:4:12: \"phase\" is \"production\" but the file is under "
            + "approvals/canary-10/",
        "rollouts/r9/approvals/canary-10/sre.json:6:15: approver \"dana\" is not an email address",
    ]

    // MARK: validate

    /// The policy digest as SPEC §4.3 tells a person to compute it.
    func policyDigest(_ fixture: GitFixture) throws -> String {
        let lines = try fixture.git("ls-tree", "-r", "HEAD", "--", "policies").split(separator: "\n")
            .filter { !$0.contains("\tpolicies/approvals/") }
        return String(try runProgram("sha256sum", [], input: lines.map { $0 + "\n" }.joined()).prefix(64))
    }

    @Test func validateReportsAllTenErrorsAtTheirPositions() throws {
        let fixture = try Self.brokenRepository()
        let result = try CLI.run(["validate", "--repo", fixture.path])
        #expect(result.status == 1)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 12, "\(result.stdout)")
        let errors = Array(lines.dropLast(2))
        #expect(errors.count == 10)
        for (line, expected) in zip(errors, Self.expectedErrors) {
            // `path:line:column: error: message`
            let parts = expected.split(separator: ": ", maxSplits: 1).map(String.init)
            #expect(line == "\(parts[0]): error: \(parts[1])")
        }
        let head = try fixture.head()
        let digest = try policyDigest(fixture)
        #expect(lines[10] == "Policy digest at main: \(digest)")
        #expect(
            lines.last == "Invalid: 10 errors in 10 files (10 rollouts, 2 approval files; main @ \(head.prefix(12))).")
        #expect(result.stderr.isEmpty, "\(result.stderr)")
        #expect(!result.stdout.contains("\u{1B}["), "no colour when not a terminal")
    }

    @Test func validateJSON() throws {
        let fixture = try Self.brokenRepository()
        let result = try CLI.run(["validate", "--json", "--repo", fixture.path])
        #expect(result.status == 1)
        let document = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(
            Set(document.keys) == [
                "formatVersion", "ref", "revision", "valid", "errors", "warnings", "policyDigest", "policy", "summary",
            ])
        #expect(document["formatVersion"] as? String == "1.0")
        #expect(document["ref"] as? String == "main")
        #expect(document["revision"] as? String == (try fixture.head()))
        #expect(document["valid"] as? Bool == false)
        let errors = try #require(document["errors"] as? [[String: Any]])
        #expect(errors.count == 10)
        let rendered = errors.map { error in
            "\(error["path"] as? String ?? "?"):\(error["line"] as? Int ?? -1):\(error["column"] as? Int ?? -1): \(error["message"] as? String ?? "?")"
        }
        #expect(rendered == Self.expectedErrors)
        for error in errors { #expect(Set(error.keys) == ["path", "line", "column", "message"]) }
        let summary = try #require(document["summary"] as? [String: Any])
        #expect(summary["rollouts"] as? Int == 10)
        #expect(summary["approvals"] as? Int == 2)
        #expect(summary["errors"] as? Int == 10)
    }

    @Test func validateAValidRepository() throws {
        let fixture = try GitFixture()
        try fixture.commitFiles(
            [
                "policies/approvers.json": F.policy(identity: "author"),
                "rollouts/exp-001/plan.json": F.plan(name: "exp-001"),
            ], "Valid")
        let planBlob = try fixture.blobID(of: "rollouts/exp-001/plan.json")
        try fixture.commitFiles(
            [
                "rollouts/exp-001/approvals/canary-10/sre.json":
                    F.approval(
                        rollout: "exp-001", phase: "canary-10", role: "sre", approver: "dana@example.com",
                        plan: planBlob)
            ],
            "Approve", author: F.dana)
        let result = try CLI.run(["validate", "--repo", fixture.path])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(
            result.stdout == "Policy digest at main: \(try policyDigest(fixture))\n"
                + "Valid: 1 rollout, 1 approval file, policies checked (main @ \(try fixture.head().prefix(12))).\n")
        // From inside the repository, with --ref, and as JSON.
        let json = try CLI.run(["validate", "--json", "--ref", "HEAD~1"], in: fixture.path)
        #expect(json.status == 0)
        let document = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(document["valid"] as? Bool == true)
        #expect(document["ref"] as? String == "HEAD~1")
        #expect((document["errors"] as? [Any])?.isEmpty == true)

        // A bare clone validates the same.
        let parent = try TemporaryDirectory()
        try runProgram("git", ["clone", "-q", "--bare", fixture.path, parent.file("bare.git")])
        #expect(try CLI.run(["validate", "--repo", parent.file("bare.git")]).status == 0)
    }

    @Test func repositoryErrorsGoToStandardError() throws {
        let parent = try TemporaryDirectory()
        let empty = try GitFixture()
        let cases: [(String, String)] = [
            (parent.file("missing"), "does not exist"),
            (parent.path, "is not a git repository"),
            (empty.path, "has no commits yet"),
        ]
        for (path, fragment) in cases {
            let result = try CLI.run(["validate", "--repo", path])
            #expect(result.status == 1, "\(path)")
            #expect(result.stdout.isEmpty, "\(result.stdout)")
            #expect(result.stderr.hasPrefix("rolloutctl: "), "\(result.stderr)")
            #expect(result.stderr.contains(fragment), "\(result.stderr)")
        }
        let fixture = try Self.brokenRepository()
        let unknown = try CLI.run(["validate", "--repo", fixture.path, "--ref", "no-such-branch"])
        #expect(unknown.status == 1)
        #expect(unknown.stderr.contains("ref \"no-such-branch\" is not a branch, tag or commit"), "\(unknown.stderr)")
    }

    // MARK: approve

    @Test func approveWritesACorrectFileThatCountsOnceMerged() throws {
        let key = try SSHTestKey(comment: "dana")
        let robin = try SSHTestKey(comment: "robin")
        let fixture = try GitFixture()
        // In signature mode plan changes are signed too (an unsigned one hides its maker).
        try fixture.signedCommitFiles(
            [
                "policies/approvers.json": F.policy(identity: "ssh-signature"),
                "policies/allowed_signers": key.allowedSignersLine("dana@example.com") + "\n"
                    + robin.allowedSignersLine("robin@example.com") + "\n",
                "rollouts/exp-001/plan.json": F.plan(name: "exp-001"),
            ], "Plan", key: robin, author: F.robin)
        try fixture.git("config", "user.email", "dana@example.com")

        let result = try CLI.run(
            ["approve", "exp-001", "canary-10", "--role", "sre", "--comment", "dashboards ready"],
            in: fixture.path)
        #expect(result.status == 0, "\(result.stderr)")
        let relative = "rollouts/exp-001/approvals/canary-10/sre-dana@example.com.json"
        #expect(result.stdout.contains("Wrote \(relative)"), "\(result.stdout)")
        #expect(result.stdout.contains("Next steps:"))
        #expect(result.stdout.contains("git add \(relative)"))
        #expect(result.stdout.contains("git commit -S"))
        #expect(result.stdout.contains("merge it with a merge commit"))

        let data = try Data(contentsOf: URL(fileURLWithPath: fixture.path + "/" + relative))
        let record = try #require(try JSONSerialization.jsonObject(with: data) as? [String: String])
        let planBlob = try runProgram("git", ["-C", fixture.path, "hash-object", "rollouts/exp-001/plan.json"])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(
            record == [
                "apiVersion": "rolloutctl/v1", "rollout": "exp-001", "phase": "canary-10", "role": "sre",
                "approver": "dana@example.com", "plan": planBlob, "comment": "dashboards ready",
            ])
        // The approval is not read until committed on main.
        var loaded = try RepositoryReader.load(
            repository: try GitRepository(path: fixture.path), ref: nil, cacheFile: nil)
        #expect(loaded.approvals["exp-001"] == [])

        // Follow the printed steps: branch, signed commit, merge commit.
        try fixture.git("switch", "-q", "-c", "approve/exp-001-canary-10-sre")
        try fixture.signedCommit("Approve exp-001 canary-10 as sre", key: key, author: F.dana)
        try fixture.git("switch", "-q", "main")
        try fixture.git(
            "merge", "-q", "--no-ff", "-m", "Merge approval", "approve/exp-001-canary-10-sre", author: F.service)
        loaded = try RepositoryReader.load(repository: try GitRepository(path: fixture.path), ref: nil, cacheFile: nil)
        let status = try #require(loaded.approvals["exp-001"]?.first)
        #expect(status.path == relative)
        #expect(status.counted, "\(status.reason ?? "")")
        #expect(try CLI.run(["validate", "--repo", fixture.path]).status == 0)
    }

    /// `approve --policy` (SPEC §4.3): the file it writes is bound to the digest `git ls-tree | sha256sum`
    /// prints for HEAD, and once merged it brings the change into force.
    @Test func approvePolicyWritesAnApprovalOfTheDigestThatBringsTheChangeIntoForce() throws {
        let fixture = try GitFixture()
        try fixture.commitFiles(["policies/approvers.json": F.policy(identity: "author")], "Policy")
        var roles = F.defaultRoles
        roles["qa-lead"] = ["quinn@example.com", "robin@example.com"]
        try fixture.commitFiles(
            ["policies/approvers.json": F.policy(identity: "author", roles: roles)],
            "Robin joins QA", author: F.robin)
        #expect(
            try RepositoryReader.load(repository: GitRepository(path: fixture.path), ref: nil, cacheFile: nil)
                .policy.pending?.missing == ["sre"])

        let result = try CLI.run(
            ["approve", "--policy", "--role", "sre", "--approver", "dana@example.com"],
            in: fixture.path)
        #expect(result.status == 0, "\(result.stderr)")
        let digest = try policyDigest(fixture)
        let relative = "policies/approvals/sre-dana@example.com-\(digest.prefix(8)).json"
        #expect(result.stdout.contains("Wrote \(relative)"), "\(result.stdout)")
        let data = try Data(contentsOf: URL(fileURLWithPath: fixture.path + "/" + relative))
        let record = try #require(try JSONSerialization.jsonObject(with: data) as? [String: String])
        #expect(
            record == [
                "apiVersion": "rolloutctl/v1", "policy": digest, "role": "sre",
                "approver": "dana@example.com",
            ])

        try fixture.git("switch", "-q", "-c", "approve-policy")
        try fixture.commit("Approve policy", author: F.dana)
        try fixture.git("switch", "-q", "main")
        try fixture.git("merge", "-q", "--no-ff", "-m", "Merge approval", "approve-policy", author: F.service)
        let loaded = try RepositoryReader.load(repository: GitRepository(path: fixture.path), ref: nil, cacheFile: nil)
        #expect(loaded.policy.pending == nil)
        #expect(loaded.policy.inForce?.digest == digest)

        // Nothing left to approve: HEAD's policy is the one in force.
        let again = try CLI.run(
            ["approve", "--policy", "--role", "sre", "--approver", "dana@example.com"],
            in: fixture.path)
        #expect(again.status == 1)
        #expect(again.stderr.contains("there is no change to approve"), "\(again.stderr)")
    }

    @Test func approveWithAnExplicitApproverAndItsErrors() throws {
        let fixture = try GitFixture()
        try fixture.commitFiles(
            [
                "policies/approvers.json": F.policy(identity: "author"),
                "rollouts/exp-001/plan.json": F.plan(name: "exp-001"),
            ], "Plan")
        let ok = try CLI.run([
            "approve", "exp-001", "production", "--role", "product-owner", "--approver", "pat@example.com",
            "--repo", fixture.path,
        ])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout.contains("Wrote rollouts/exp-001/approvals/production/product-owner-pat@example.com.json"))
        #expect(!ok.stdout.contains("git commit -S"))
        #expect(!ok.stdout.contains("warning"))

        // Not a member: written, with a warning.
        let outsider = try CLI.run([
            "approve", "exp-001", "production", "--role", "product-owner", "--approver",
            "mallory@example.com", "--repo", fixture.path,
        ])
        #expect(outsider.status == 0)
        #expect(outsider.stdout.contains("warning: mallory@example.com is not a member of role \"product-owner\""))

        // An uncommitted plan edit: bound to the work tree's plan, with a warning.
        try fixture.write("rollouts/exp-001/plan.json", F.plan(name: "exp-001", description: "edited"))
        let edited = try CLI.run([
            "approve", "exp-001", "canary-10", "--role", "sre", "--approver", "dana@example.com",
            "--repo", fixture.path,
        ])
        #expect(edited.status == 0)
        #expect(edited.stdout.contains("differs from main"), "\(edited.stdout)")
        let written = try Data(
            contentsOf: URL(
                fileURLWithPath: fixture.path + "/rollouts/exp-001/approvals/canary-10/sre-dana@example.com.json"))
        #expect(String(decoding: written, as: UTF8.self).contains(try fixture.blobID(of: "rollouts/exp-001/plan.json")))

        for (arguments, fragment) in [
            (["approve", "exp-001", "canary-99", "--role", "sre"], "the plan has no phase \"canary-99\""),
            (["approve", "exp-001", "staging", "--role", "sre"], "phase staging does not require role \"sre\""),
            (["approve", "nope", "staging", "--role", "sre"], "rollouts/nope/plan.json does not exist"),
        ] {
            let result = try CLI.run(arguments + ["--repo", fixture.path])
            #expect(result.status == 1, "\(arguments)")
            #expect(result.stderr.contains(fragment), "\(result.stderr)")
        }
    }
}
