import Foundation
import RolloutCore
import RolloutKit
import RolloutTestSupport
import Testing

/// The pull-request formats (SPEC §6.1 [r3]): `plan --base --format markdown` rendered by a CommonMark library
/// (markdown-it-py in the tests' venv, scripts/python-evaluators), and `validate --format github` read back as
/// GitHub Actions reads workflow commands.
@Suite(.serialized) struct PullRequestFormatTests {
    typealias F = RolloutFixtures

    /// What markdown-it-py (CommonMark + tables) made of a comment.
    struct Rendered {
        var html: String
        var tables: [(header: [String], rows: [[String]])]
    }

    static func render(_ markdown: String) async throws -> Rendered {
        let directory = try TemporaryDirectory(prefix: "rolloutctl-markdown")
        let file = directory.file("comment.md")
        try Data(markdown.utf8).write(to: URL(fileURLWithPath: file))
        let script = Binary.packageRoot + "/scripts/python-evaluators"
        let output = try await runOffCooperativePool { try runProgram(script, ["markdown", "--file", file]) }
        let document = try parseJSON(output)
        let tables = (document["tables"] as? [[String: Any]] ?? []).map {
            (header: $0["header"] as? [String] ?? [], rows: $0["rows"] as? [[String]] ?? [])
        }
        return Rendered(html: document["html"] as? String ?? "", tables: tables)
    }

    @Test func theCommentIsCommonMarkWithATablePerAffectedRollout() async throws {
        try await CLIWorld.with { w in
            try await w.seed()
            #expect(try await w.reconcile(now: "2027-01-01T00:00:00Z").status == 0)
            try PullRequestPlanTests.approveOnMain(w, phase: "canary-10", role: "engineering-lead", by: F.erin)
            try PullRequestPlanTests.approveOnMain(w, phase: "canary-10", role: "qa-lead", by: F.quinn)
            let head = try PullRequestPlanTests.approvalBranch(
                w, "approve-sre", phase: "canary-10", role: "sre", by: F.dana)
            let result = try await PullRequestPlanTests.planBase(
                w, ref: head, ["--format", "markdown"], now: "2027-01-01T01:00:00Z")
            #expect(result.status == 0, "\(result.all)")
            let markdown = result.stdout
            #expect(markdown.hasPrefix("**rolloutctl plan --base**: merging "))
            #expect(!markdown.contains("\u{1B}["))
            #expect(!markdown.contains(CLIWorld.token))
            // A metrics URL's user information never reaches a (public) comment.
            let withPassword = try await PullRequestPlanTests.planBase(
                w, ref: head, ["--format", "markdown", "--metrics", "http://reader:hunter2@127.0.0.1:1"],
                now: "2027-01-01T01:00:00Z")
            #expect(!withPassword.stdout.isEmpty)
            #expect(!withPassword.all.contains("hunter2"))
            let rendered = try await Self.render(markdown)
            // The summary line is the first paragraph; the rollout's two tables are real tables.
            #expect(rendered.html.hasPrefix("<p><strong>rolloutctl plan --base</strong>: merging "))
            #expect(rendered.tables.count == 2)
            let comparison = try #require(rendered.tables.first)
            #expect(comparison.header == ["", "before", "after merge"])
            #expect(comparison.rows.allSatisfy { $0.count == 3 })
            let status = try #require(comparison.rows.first { $0.first == "status" })
            #expect(status[1] == "blocked at staging")
            #expect(status[2] == "**progressing at staging**")
            let approvals = try #require(rendered.tables.last)
            #expect(approvals.header == ["approval", "approver", "once merged"])
            #expect(approvals.rows.contains(["canary-10 / sre (in the branch)", "dana@example.com", "counts"]))
            #expect(rendered.html.contains("<details><summary>"))
            #expect(rendered.html.contains("</details>"))
        }
    }

    @Test func aThousandAffectedRolloutsStayWithinTheLimitAndSaySoWhenCut() async throws {
        let repo = try GitFixture()
        let state = try TemporaryDirectory(prefix: "rolloutctl-thousand")
        var files = ["policies/approvers.json": F.policy(identity: "author", roles: F.exp001Roles)]
        for index in 0..<1000 {
            let name = String(format: "r%04d", index)
            files["rollouts/\(name)/plan.json"] = F.plan(name: name)
        }
        try repo.commitFiles(files, "A thousand rollouts")
        try repo.git("switch", "-q", "-c", "describe-all")
        for index in 0..<1000 {
            let name = String(format: "r%04d", index)
            try repo.write("rollouts/\(name)/plan.json", F.plan(name: name, description: "described | <b>\(index)</b>"))
        }
        let head = try repo.commit("Describe every rollout")
        try repo.git("switch", "-q", "main")
        let result = try await rolloutctl([
            "plan", "--repo", repo.path, "--base", "main", "--ref", head, "--format", "markdown",
            "--state", state.file("state.sqlite"), "--flags", "file:" + state.file("flags.json"),
            "--now", "2027-01-01T00:00:00Z",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        let markdown = result.stdout
        #expect(markdown.count <= PullRequestReport.markdownLimit)
        #expect(markdown.count > 50_000)
        #expect(markdown.hasPrefix("**rolloutctl plan --base**: merging "))
        #expect(markdown.contains("affects 1000 rollouts; 0 unaffected"))
        #expect(markdown.contains("more affected rollouts not shown: a comment holds at most 60000 characters"))
        let rendered = try await Self.render(markdown)
        #expect(rendered.tables.count > 10)
        // Every table kept its shape (a `|` in a description would have split a cell), and nothing became HTML.
        #expect(rendered.tables.allSatisfy { table in table.rows.allSatisfy { $0.count == table.header.count } })
        #expect(!rendered.html.contains("<b>"))
        #expect(
            rendered.html.components(separatedBy: "<details>").count
                == rendered.html.components(separatedBy: "</details>").count)
    }

    // MARK: validate --format github

    /// A workflow command as the Actions runner reads it: `::name k=v,k=v::message`, escapes undone.
    struct WorkflowLine: Equatable {
        var command: String
        var properties: [String: String]
        var message: String

        static func unescape(_ text: String) -> String {
            text.replacingOccurrences(of: "%0D", with: "\r").replacingOccurrences(of: "%0A", with: "\n")
                .replacingOccurrences(of: "%3A", with: ":").replacingOccurrences(of: "%2C", with: ",")
                .replacingOccurrences(of: "%25", with: "%")
        }

        init?(_ line: String) {
            guard line.hasPrefix("::") else { return nil }
            let rest = line.dropFirst(2)
            guard let end = rest.range(of: "::") else { return nil }
            let head = rest[..<end.lowerBound]
            message = Self.unescape(String(rest[end.upperBound...]))
            let parts = head.split(separator: " ", maxSplits: 1)
            command = String(parts[0])
            properties = [:]
            if parts.count == 2 {
                for pair in parts[1].split(separator: ",") {
                    let keyValue = pair.split(separator: "=", maxSplits: 1)
                    guard keyValue.count == 2 else { return nil }
                    properties[String(keyValue[0])] = Self.unescape(String(keyValue[1]))
                }
            }
        }
    }

    @Test func validateGithubLinesAreWorkflowCommandsOnTheOffendingLines() async throws {
        let repo = try GitFixture()
        let plan = F.plan(name: "exp-001-autosave").replacingOccurrences(
            of: "\"description\": \"test rollout\",", with: "\"description\": \"test rollout\",\n  \"bake\": \"1h\",")
        try repo.commitFiles(
            [
                "policies/approvers.json": F.policy(identity: "author", roles: F.exp001Roles),
                "rollouts/exp-001-autosave/plan.json": plan,
                "rollouts/Bad,Name: 100%/plan.json": F.plan(name: "bad"),
            ], "Rollouts with problems")
        let json = try await rolloutctl(["validate", "--repo", repo.path, "--json"])
        #expect(json.status == 1)
        let errors = try #require(try parseJSON(json.stdout)["errors"] as? [[String: Any]])
        #expect(errors.count >= 2)

        let result = try await rolloutctl(["validate", "--repo", repo.path, "--format", "github"])
        #expect(result.status == 1)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        let commands = lines.compactMap(WorkflowLine.init)
        #expect(commands.count == lines.count, "every line is a workflow command: \(result.stdout)")
        let annotations = commands.filter { $0.command == "error" }
        #expect(annotations.count == errors.count)
        for (annotation, error) in zip(annotations, errors) {
            #expect(annotation.properties["file"] == error["path"] as? String)
            #expect(annotation.properties["line"] == (error["line"] as? Int).map(String.init))
            #expect(annotation.properties["col"] == (error["column"] as? Int).map(String.init))
            #expect(annotation.message == error["message"] as? String)
        }
        // The unknown field, at its own line and column.
        #expect(
            annotations.contains {
                $0.properties["file"] == "rollouts/exp-001-autosave/plan.json" && $0.properties["line"] == "6"
                    && $0.properties["col"] == "3"
            })
        // A path with `,`, `:` and `%` survives the escaping.
        #expect(annotations.contains { $0.properties["file"]?.hasPrefix("rollouts/Bad,Name: 100%/") == true })
        #expect(commands.last?.command == "notice")
        #expect(commands.last?.message.hasPrefix("Invalid:") == true)

        let markdown = try await rolloutctl(["validate", "--repo", repo.path, "--format", "markdown"])
        #expect(markdown.status == 1)
        let rendered = try await Self.render(markdown.stdout)
        #expect(rendered.html.hasPrefix("<p><strong>rolloutctl validate</strong>: Invalid: "))
        let table = try #require(rendered.tables.first)
        #expect(table.header == ["", "file", "line", "column", "message"])
        #expect(table.rows.count == errors.count)
    }

    @Test func workflowCommandEscapingFollowsTheRunner() {
        #expect(WorkflowCommand.escapeData("50% of a\r\nb: c, d") == "50%25 of a%0D%0Ab: c, d")
        #expect(WorkflowCommand.escapeProperty("a:b,c%d\n") == "a%3Ab%2Cc%25d%0A")
        let line =
            "::error file=" + WorkflowCommand.escapeProperty("x:y,z%") + ",line=1,col=2::"
            + WorkflowCommand.escapeData("m%\nn")
        let parsed = WorkflowLine(line)
        #expect(
            parsed
                == WorkflowLine(
                    command: "error", properties: ["file": "x:y,z%", "line": "1", "col": "2"], message: "m%\nn"))
    }
}

extension PullRequestFormatTests.WorkflowLine {
    init(command: String, properties: [String: String], message: String) {
        self.command = command
        self.properties = properties
        self.message = message
    }
}
