import Foundation
import RolloutCore
import RolloutKit
import RolloutTestSupport
import Testing

/// `plan --base REF --ref REF` (SPEC §6.1 [r3]): a pull request's branch merged in memory and planned as the
/// protected branch's next tip, on repositories made by `git` with real `--no-ff` merges.
@Suite(.serialized) struct PullRequestPlanTests {
    typealias F = RolloutFixtures
    static let rollout = "exp-001-autosave"

    // MARK: Helpers

    /// A branch off main whose one commit, authored by `person`, adds an approval of the plan at main (or of
    /// `plan` when given). Main stays checked out; returns the branch's head commit.
    @discardableResult
    static func approvalBranch(
        _ w: CLIWorld, _ branch: String, phase: String, role: String, by person: GitFixture.Person,
        plan: String? = nil, from start: String = "main"
    ) throws -> String {
        let blob = try plan ?? w.repo.git("rev-parse", "main:rollouts/\(rollout)/plan.json")
        try w.repo.git("switch", "-q", "-c", branch, start)
        try w.repo.commitFiles(
            [
                "rollouts/\(rollout)/approvals/\(phase)/\(role).json":
                    F.approval(rollout: rollout, phase: phase, role: role, approver: person.email, plan: blob)
            ], "Approve \(phase) as \(role)", author: person)
        let head = try w.repo.head()
        try w.repo.git("switch", "-q", "main")
        return head
    }

    /// An approval merged into main with `--no-ff`, as a reviewer's pull request is merged.
    static func approveOnMain(_ w: CLIWorld, phase: String, role: String, by person: GitFixture.Person) throws {
        let branch = "approve-\(phase)-\(role)"
        try approvalBranch(w, branch, phase: phase, role: role, by: person)
        try w.repo.git("merge", "-q", "--no-ff", "-m", "Merge \(branch)", branch, author: CLIWorld.robin)
    }

    static func planBase(_ w: CLIWorld, ref: String, _ extra: [String] = [], now: String) async throws
        -> ProcessResult
    {
        try await w.plan(["--base", "main", "--ref", ref] + extra, now: now)
    }

    /// Every byte of the object database and the refs: names and contents of every file under `.git/objects`
    /// and `.git/refs`, and `packed-refs` and `HEAD`.
    static func gitBytes(_ repo: GitFixture) throws -> [String: Data] {
        let git = repo.path + "/.git"
        var files: [String: Data] = [:]
        for folder in ["objects", "refs"] {
            let base = git + "/" + folder
            guard let walker = FileManager.default.enumerator(atPath: base) else { continue }
            while let relative = walker.nextObject() as? String {
                var isDirectory: ObjCBool = false
                let path = base + "/" + relative
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue
                else { continue }
                files[folder + "/" + relative] = FileManager.default.contents(atPath: path) ?? Data()
            }
        }
        for file in ["packed-refs", "HEAD"] {
            if let data = FileManager.default.contents(atPath: git + "/" + file) { files[file] = data }
        }
        return files
    }

    static func rolloutDocument(_ document: [String: Any], _ side: String) throws -> [String: Any] {
        let plan = try #require(document[side] as? [String: Any])
        let rollouts = try #require(plan["rollouts"] as? [[String: Any]])
        return try #require(rollouts.first { $0["name"] as? String == rollout })
    }

    // MARK: The last missing approval

    @Test func theLastMissingApprovalEntersThePhaseAtTheNextRunAndTheTimelineMoves() async throws {
        try await CLIWorld.with { w in
            try await w.seed()
            #expect(try await w.reconcile(now: "2027-01-01T00:00:00Z").status == 0)  // staging at 100%
            try Self.approveOnMain(w, phase: "canary-10", role: "engineering-lead", by: F.erin)
            try Self.approveOnMain(w, phase: "canary-10", role: "qa-lead", by: F.quinn)
            let head = try Self.approvalBranch(w, "approve-sre", phase: "canary-10", role: "sre", by: F.dana)
            let before = try Self.gitBytes(w.repo)
            let patches = w.service.patchRequests.count

            let json = try await Self.planBase(w, ref: head, ["--json"], now: "2027-01-01T01:00:00Z")
            #expect(json.status == 0, "\(json.all)")
            let document = try parseJSON(json.stdout)
            #expect(document["formatVersion"] as? String == "1.0")
            let base = try Self.rolloutDocument(document, "base")
            let merged = try Self.rolloutDocument(document, "merged")
            #expect(base["status"] as? String == "blocked")
            #expect((base["changes"] as? [Any])?.isEmpty == true)
            let change = try #require((merged["changes"] as? [[String: Any]])?.first)
            #expect(change["environment"] as? String == "production")
            #expect(change["reason"] as? String == "advance")
            #expect(((change["to"] as? [String: Any])?["coverage"] as? NSNumber)?.doubleValue == 10)
            #expect(merged["nextPhase"] as? String == "canary-10")
            let baseTimeline = try #require(base["timeline"] as? [[String: Any]])
            let mergedTimeline = try #require(merged["timeline"] as? [[String: Any]])
            #expect(baseTimeline.first?["phase"] as? String == "canary-10")
            #expect((baseTimeline.first?["waitingFor"] as? [String])?.contains("approval:sre") == true)
            // Once merged, canary-10 waits for nothing: it is entered at the next run.
            #expect(mergedTimeline.first?["phase"] as? String == "canary-10")
            #expect((mergedTimeline.first?["waitingFor"] as? [String])?.isEmpty == true)
            let approvals = try #require(merged["approvals"] as? [[String: Any]])
            #expect(approvals.count == 3 && approvals.allSatisfy { $0["counted"] as? Bool == true })
            #expect(document["affected"] as? [String] == [Self.rollout])

            let human = try await Self.planBase(w, ref: head, now: "2027-01-01T01:00:00Z")
            #expect(human.status == 0, "\(human.all)")
            #expect(human.stdout.contains("approval canary-10/sre.json"))
            #expect(human.stdout.contains("coverage 0 → 10 (advance to canary-10)"))
            #expect(human.stdout.contains("coverage after the next run: staging 100% → production 10%, staging 100%"))
            #expect(
                human.stdout.contains(
                    "timeline canary-10: earliest 2027-01-01 01:00 UTC (approval:sre) → entered at the next run"))
            #expect(human.stdout.contains("blocked by: canary-10 needs an approval from role sre → nothing"))
            #expect(human.stdout.contains("would count: canary-10 sre by dana@example.com [in the branch]"))
            #expect(human.stdout.contains("After the merge: Plan: 1 to change, 0 blocked, 0 unchanged."))

            // --detailed-exitcode as plan's: the merge would change something.
            let detailed = try await Self.planBase(w, ref: head, ["--detailed-exitcode"], now: "2027-01-01T01:00:00Z")
            #expect(detailed.status == 2, "\(detailed.all)")

            // Nothing was written: the object database and the refs are byte for byte as they were.
            #expect(try Self.gitBytes(w.repo) == before)
            #expect(w.service.patchRequests.count == patches)
        }
    }

    // MARK: Approvals that would not count

    @Test func approvalsThatWouldNotCountSayWhyBeforeAnyMerge() async throws {
        try await CLIWorld.with { w in
            try await w.seed()
            let firstBlob = try w.repo.git("rev-parse", "main:rollouts/\(Self.rollout)/plan.json")
            // Erin (engineering-lead) edits the plan: she is one of its makers from now on.
            let erinsEdit = try w.repo.commitFiles(
                ["rollouts/\(Self.rollout)/plan.json": CLIWorld.plan(extra: "\n  \"description\": \"EXP-001\",")],
                "Describe EXP-001", author: F.erin)
            try w.repo.git("switch", "-q", "-c", "approvals", "main")
            let approvals = "rollouts/\(Self.rollout)/approvals/canary-10/"
            let blob = try w.repo.git("rev-parse", "main:rollouts/\(Self.rollout)/plan.json")
            try w.repo.commitFiles(
                [
                    approvals + "engineering-lead.json": F.approval(
                        rollout: Self.rollout, phase: "canary-10", role: "engineering-lead", approver: F.erin.email,
                        plan: blob)
                ], "Approve as engineering-lead", author: F.erin)
            try w.repo.commitFiles(
                [
                    approvals + "sre.json": F.approval(
                        rollout: Self.rollout, phase: "canary-10", role: "sre", approver: F.mallory.email, plan: blob)
                ], "Approve as sre", author: F.mallory)
            try w.repo.commitFiles(
                [
                    approvals + "qa-lead.json": F.approval(
                        rollout: Self.rollout, phase: "canary-10", role: "qa-lead", approver: F.quinn.email,
                        plan: firstBlob)
                ], "Approve as qa-lead", author: F.quinn)
            let head = try w.repo.head()
            try w.repo.git("switch", "-q", "main")

            let result = try await Self.planBase(w, ref: head, now: "2027-01-01T01:00:00Z")
            #expect(result.status == 0, "\(result.all)")
            let out = result.stdout
            #expect(
                out.contains(
                    "would not count: canary-10 engineering-lead by erin@example.com [in the branch]: self-approval: "
                        + "erin@example.com authored \(erinsEdit.prefix(12)), which changed plan.json"))
            #expect(
                out.contains(
                    "would not count: canary-10 sre by mallory@example.com [in the branch]: mallory@example.com is "
                        + "not a member of role \"sre\""))
            #expect(
                out.contains(
                    "would not count: canary-10 qa-lead by quinn@example.com [in the branch]: stale: approves plan "
                        + "blob \(firstBlob.prefix(12))"))
            let json = try await Self.planBase(w, ref: head, ["--json"], now: "2027-01-01T01:00:00Z")
            let merged = try Self.rolloutDocument(try parseJSON(json.stdout), "merged")
            let statuses = try #require(merged["approvals"] as? [[String: Any]])
            #expect(statuses.count == 3 && statuses.allSatisfy { $0["counted"] as? Bool == false })
        }
    }

    // MARK: A plan edited mid-rollout

    @Test func aPlanEditMidRolloutListsEveryApprovalMadeStaleAndTheRolloutWouldHold() async throws {
        try await CLIWorld.with { w in
            try await w.seed()
            try Self.approveOnMain(w, phase: "canary-10", role: "engineering-lead", by: F.erin)
            try Self.approveOnMain(w, phase: "canary-10", role: "qa-lead", by: F.quinn)
            try Self.approveOnMain(w, phase: "canary-10", role: "sre", by: F.dana)
            #expect(try await w.reconcile(now: "2027-01-01T00:00:00Z").status == 0)  // staging
            #expect(try await w.reconcile(now: "2027-01-01T00:01:00Z").status == 0)  // canary-10
            #expect(w.environments()["production"] == FlagEnvironmentState(enabled: true, coverage: 10))
            let oldBlob = try w.repo.git("rev-parse", "main:rollouts/\(Self.rollout)/plan.json")
            try w.repo.git("switch", "-q", "-c", "wider-canary", "main")
            try w.repo.commitFiles(
                [
                    "rollouts/\(Self.rollout)/plan.json": CLIWorld.plan().replacingOccurrences(
                        of: "\"coverage\": 10,", with: "\"coverage\": 20,"
                    ).replacingOccurrences(of: "\"max\": 0.02", with: "\"max\": 0.05")
                ], "Canary at 20%, error rate up to 5%", author: CLIWorld.robin)
            let head = try w.repo.head()
            let newBlob = try w.repo.git("rev-parse", "HEAD:rollouts/\(Self.rollout)/plan.json")
            try w.repo.git("switch", "-q", "main")

            let result = try await Self.planBase(w, ref: head, now: "2027-01-02T01:00:00Z")
            #expect(result.status == 0, "\(result.all)")
            let stale = "stale: approves plan \(oldBlob.prefix(7)), the branch changes it to \(newBlob.prefix(7))"
            for (role, person) in [("engineering-lead", F.erin), ("qa-lead", F.quinn), ("sre", F.dana)] {
                #expect(result.stdout.contains("made stale: canary-10 \(role) by \(person.email): \(stale)"))
            }
            // At the base, canary-50 is entered at this run; once merged the rollout holds at 10% (blocked: every
            // gate it passed must be approved again, SPEC §5.2).
            #expect(result.stdout.contains("plan.json changed"))
            #expect(result.stdout.contains("(advance to canary-50) → no change"))
            #expect(result.stdout.contains("status: progressing at canary-10 → blocked at canary-10"))
            #expect(
                result.stdout.contains("coverage after the next run: production 50%, staging 100% → production 10%"))
            #expect(result.stdout.contains("plan: \(oldBlob.prefix(7)) → \(newBlob.prefix(7))"))
            #expect(result.stdout.contains("After the merge: Plan: 0 to change, 1 blocked, 0 unchanged."))
            // The loosened threshold is shown (and is what a backtest before → after would replay, issue 24).
            #expect(
                result.stdout.contains(
                    "check error-rate: max 0.02, on breach rollback, no data hold → max 0.05, on breach rollback, "
                        + "no data hold"))

            let json = try await Self.planBase(w, ref: head, ["--json"], now: "2027-01-02T01:00:00Z")
            let merged = try Self.rolloutDocument(try parseJSON(json.stdout), "merged")
            #expect((merged["changes"] as? [Any])?.isEmpty == true)
            let blockers = try #require(merged["blockers"] as? [[String: Any]])
            #expect(
                Set(blockers.filter { $0["kind"] as? String == "approval" }.compactMap { $0["role"] as? String })
                    == ["engineering-lead", "qa-lead", "sre"])

            let markdown = try await Self.planBase(w, ref: head, ["--format", "markdown"], now: "2027-01-02T01:00:00Z")
            #expect(markdown.stdout.contains("**made stale**: \(stale)"))
        }
    }

    // MARK: A policy change

    @Test func aPolicyChangeIsAProposalWithItsRolesAndThePlansItWouldInvalidate() async throws {
        try await CLIWorld.with { w in
            try await w.seed()
            try w.repo.git("switch", "-q", "-c", "rename-qa", "main")
            var roles = F.exp001Roles
            roles["qa"] = roles.removeValue(forKey: "qa-lead")
            roles["sre"] = ["dana@example.com", "sam@example.com"]
            try w.repo.commitFiles(
                ["policies/approvers.json": F.policy(identity: "author", roles: roles)], "Rename qa-lead to qa",
                author: CLIWorld.robin)
            let head = try w.repo.head()
            try w.repo.git("switch", "-q", "main")

            let result = try await Self.planBase(w, ref: head, now: "2027-01-01T01:00:00Z")
            #expect(result.status == 0, "\(result.all)")
            let out = result.stdout
            #expect(out.contains("Policy change (digest "))
            #expect(out.contains("files: policies/approvers.json"))
            #expect(out.contains("proposes: adds role qa: quinn@example.com"))
            #expect(out.contains("proposes: removes role qa-lead"))
            #expect(out.contains("proposes: role sre: + sam@example.com"))
            #expect(out.contains("not in force once merged: needs approval from sre"))
            #expect(out.contains("would make invalid: \(Self.rollout): rollouts/\(Self.rollout)/plan.json:"))
            #expect(out.contains("qa-lead"))
            #expect(out.contains("\(Self.rollout) (portal_form_autosave): policy change"))

            let markdown = try await Self.planBase(w, ref: head, ["--format", "markdown"], now: "2027-01-01T01:00:00Z")
            #expect(markdown.stdout.contains("| must approve | sre |"))
            #expect(markdown.stdout.contains("| would make invalid | \(Self.rollout):"))
        }
    }

    // MARK: A conflict

    @Test func aConflictingBranchIsAClearErrorNamingThePathsAndWritesNothing() async throws {
        try await CLIWorld.with { w in
            try await w.seed()
            let planPath = "rollouts/\(Self.rollout)/plan.json"
            try w.repo.git("switch", "-q", "-c", "theirs", "main")
            try w.repo.commitFiles(
                [planPath: CLIWorld.plan(extra: "\n  \"description\": \"their words\",")], "Describe (theirs)")
            let head = try w.repo.head()
            try w.repo.git("switch", "-q", "main")
            try w.repo.commitFiles(
                [planPath: CLIWorld.plan(extra: "\n  \"description\": \"our words\",")], "Describe (ours)")
            let before = try Self.gitBytes(w.repo)
            let stateBefore = w.stateBytes()

            for format in ["human", "json", "markdown"] {
                let result = try await Self.planBase(w, ref: head, ["--format", format], now: "2027-01-01T01:00:00Z")
                #expect(result.status == 1, "\(result.all)")
                #expect(result.stderr.contains("conflicts in \(planPath)"), "\(result.stderr)")
                #expect(result.stdout.isEmpty)
            }
            #expect(try Self.gitBytes(w.repo) == before)
            #expect(w.stateBytes() == stateBefore)
        }
    }

    @Test func optionsOfBase() async throws {
        try await CLIWorld.with { w in
            try await w.seed()
            var result = try await w.plan(["--base", "main"])
            #expect(result.status == 1)
            #expect(result.stderr.contains("--base needs --ref"))
            result = try await w.plan(["--base", "main", "--ref", "main", "--json", "--format", "markdown"])
            #expect(result.status == 1)
            #expect(result.stderr.contains("--json is the short form of --format json"))
            // A shallow clone cannot judge approvals: refused, saying to fetch the full history.
            let clone = try TemporaryDirectory(prefix: "rolloutctl-shallow")
            try runProgram("git", ["clone", "-q", "--depth", "1", "file://" + w.repo.path, clone.path + "/r"])
            result = try await rolloutctl([
                "plan", "--repo", clone.path + "/r", "--base", "origin/main", "--ref", "HEAD",
                "--state", clone.file("state.sqlite"),
            ])
            #expect(result.status == 1)
            #expect(result.stderr.contains("shallow"), "\(result.all)")
            #expect(result.stderr.contains("fetch-depth: 0"))
        }
    }
}
