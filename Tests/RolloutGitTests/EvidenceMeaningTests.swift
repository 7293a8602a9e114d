import Foundation
import RolloutCore
import RolloutGit
import RolloutKit
import RolloutTestSupport
import Testing

/// SPEC §4.0 [r3]: evidence is compared by what git and OpenSSH mean, never by how it is spelled. Each
/// attack of issue 19 on a repository made by `git`, with signatures made by `ssh-keygen`.
@Suite struct EvidenceMeaningTests {
    typealias F = RolloutFixtures

    // MARK: Rule 1: the branch is refs/heads/<protectedBranch>, never a tag of that name

    @Test func aTagNamedLikeTheBranchIsNeverRead() throws {
        let repo = try ApprovalRepo()
        let old = try repo.fixture.head()
        try repo.approveViaPullRequest(phase: "canary-10", role: "sre", person: F.dana, key: Keys.dana)
        let tip = try repo.fixture.head()
        // Anyone who can push a tag: `main` the tag, at the old commit.
        try repo.fixture.git("tag", "main", old)
        #expect(try repo.load().revision == tip)
        #expect(try repo.load(ref: "main").revision == tip)
        #expect(try repo.load(ref: "refs/heads/main").revision == tip)
        #expect(try repo.load(ref: "refs/tags/main").revision == old)
        // A short name only a tag has is refused, saying how to read the tag.
        try repo.fixture.git("tag", "v1", old)
        let error = #expect(throws: GitError.self) { try repo.load(ref: "v1") }
        #expect(error?.message.contains("refs/tags/v1") == true)
        // An abbreviated commit id is read as that commit even when a tag is spelled like it.
        let short = String(tip.prefix(10))
        try repo.fixture.git("tag", short, old)
        #expect(try repo.load(ref: short).revision == tip)
    }

    // MARK: Rule 2: a commit is its signed payload

    /// The approval commit with its signature's base64 wrapped at another width: the same payload and a
    /// valid signature, but another commit id.
    func rewrapped(_ repo: ApprovalRepo, _ commit: String) throws -> String {
        let raw = try repo.fixture.git("cat-file", "commit", commit)
        var lines = raw.components(separatedBy: "\n")
        guard let begin = lines.firstIndex(of: "gpgsig -----BEGIN SSH SIGNATURE-----"),
            let end = lines.firstIndex(of: " -----END SSH SIGNATURE-----")
        else { throw FixtureError("no SSH signature in \(commit)") }
        let base64 = lines[(begin + 1)..<end].map { $0.trimmingCharacters(in: .whitespaces) }.joined()
        var wrapped: [String] = []
        var rest = Substring(base64)
        while !rest.isEmpty {
            wrapped.append(" " + rest.prefix(50))
            rest = rest.dropFirst(50)
        }
        lines.replaceSubrange((begin + 1)..<end, with: wrapped)
        let object = try scratch(repo, "copy", Data((lines.joined(separator: "\n") + "\n").utf8))
        return try repo.fixture.git("hash-object", "-t", "commit", "-w", object)
    }

    @Test func aWithdrawnApprovalCopiedWithARewrappedSignatureIsNotCreditedAgain() throws {
        let repo = try ApprovalRepo()
        let path = repo.approvalPath(phase: "canary-10", role: "sre", person: F.dana)
        let (approval, _) = try repo.approveViaPullRequest(
            phase: "canary-10", role: "sre", person: F.dana, key: Keys.dana)
        #expect(try repo.status(path).counted)
        // Dana withdraws it.
        try repo.fixture.remove(path)
        try repo.fixture.commit("Withdraw the sre approval", author: F.dana)
        // The attacker copies the signed commit, signature re-wrapped, and gets it merged.
        let copy = try rewrapped(repo, approval)
        #expect(copy != approval)
        let signers = try scratch(repo, "allowed_signers", Data(Keys.allowedSigners.utf8))
        // git itself reads the copy's signature as a good one (verify-commit exits 1 otherwise).
        try runProgram(
            "git", ["-C", repo.path, "-c", "gpg.ssh.allowedSignersFile=\(signers)", "verify-commit", copy])
        try repo.fixture.git("branch", "replay", copy)
        try repo.fixture.git("merge", "-q", "--no-ff", "-m", "Merge replay", "replay", author: F.service)
        #expect(try repo.fixture.git("ls-tree", "HEAD", "--", path).isEmpty == false)
        let status = try repo.status(path)
        #expect(!status.counted)
        #expect(status.reason?.contains("approval commit not found on the merged side") == true, "\(status)")
    }

    @Test func aWithdrawnApprovalCopiedWithoutItsSignatureIsNotCreditedAgainInAuthorMode() throws {
        let repo = try ApprovalRepo(identity: "author", planKey: nil)
        let path = repo.approvalPath(phase: "canary-10", role: "sre", person: F.dana)
        let (approval, _) = try repo.approveViaPullRequest(
            phase: "canary-10", role: "sre", person: F.dana, key: Keys.dana)
        #expect(try repo.status(path).counted)
        try repo.fixture.remove(path)
        try repo.fixture.commit("Withdraw the sre approval", author: F.dana)
        // The signature stripped: the payload alone, which is a commit object of its own.
        let raw = try repo.fixture.git("cat-file", "commit", approval)
        var kept: [String] = []
        var inSignature = false
        for line in raw.components(separatedBy: "\n") {
            if line.hasPrefix("gpgsig ") {
                inSignature = true
                continue
            }
            if inSignature, line.hasPrefix(" ") { continue }
            inSignature = false
            kept.append(line)
        }
        let object = try scratch(repo, "stripped", Data((kept.joined(separator: "\n") + "\n").utf8))
        let copy = try repo.fixture.git("hash-object", "-t", "commit", "-w", object)
        #expect(copy != approval)
        try repo.fixture.git("branch", "replay", copy)
        try repo.fixture.git("merge", "-q", "--no-ff", "-m", "Merge replay", "replay", author: F.service)
        #expect(!(try repo.status(path).counted))
    }

    // MARK: Rule 4: tree modes as git reads them

    @Test func aFolderWrittenWithAZeroPaddedModeIsAFolderToTheWalk() throws {
        // Robin made the plan (signed); sre includes robin, and the policy forbids self-approval.
        var roles = F.defaultRoles
        roles["sre"] = ["dana@example.com", "robin@example.com"]
        let repo = try ApprovalRepo(roles: roles)
        let fixture = repo.fixture
        // A commit whose rollouts/ tree spells exp-001's folder `040000` (git reads it as a folder).
        let rollouts = try fixture.git("rev-parse", "HEAD:rollouts")
        let folder = try fixture.git("rev-parse", "HEAD:rollouts/exp-001")
        var tree = Data("040000 exp-001".utf8)
        tree.append(0)
        tree.append(contentsOf: try hexBytes(folder))
        let treeFile = try scratch(repo, "tree", tree)
        let padded = try fixture.git("hash-object", "-t", "tree", "--literally", "-w", treeFile)
        #expect(padded != rollouts)
        let root = try fixture.git("rev-parse", "HEAD^{tree}")
        let listing = try fixture.git("ls-tree", root)
        let newRoot = try runProgram(
            "git", ["-C", fixture.path, "mktree"],
            input: listing.replacingOccurrences(of: rollouts, with: padded) + "\n"
        ).trimmingCharacters(in: .whitespacesAndNewlines)
        let parent = try fixture.head()
        let odd = try fixture.git(
            ["commit-tree", newRoot, "-p", parent, "-m", "Rewrite the rollouts tree"], author: F.sam)
        try fixture.git("update-ref", "refs/heads/main", odd)
        try fixture.git("reset", "-q", "--hard", "main")
        // The next commit is written by git again, in its usual spelling.
        try fixture.commitFiles(["README.md": "notes\n"], "Notes", author: F.sam)
        try repo.approveViaPullRequest(phase: "canary-10", role: "sre", person: F.robin, key: Keys.robin)
        let status = try repo.status(repo.approvalPath(phase: "canary-10", role: "sre", person: F.robin))
        #expect(!status.counted)
        #expect(status.reason?.contains("self-approval") == true, "\(status)")
    }

    /// A file outside the work tree (in the repository's .git folder), for git's plumbing to read.
    func scratch(_ repo: ApprovalRepo, _ name: String, _ data: Data) throws -> String {
        let path = repo.path + "/.git/" + name
        try data.write(to: URL(fileURLWithPath: path))
        return path
    }

    func hexBytes(_ hex: String) throws -> [UInt8] {
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            guard let byte = UInt8(hex[index..<next], radix: 16) else { throw FixtureError("bad hex \(hex)") }
            bytes.append(byte)
            index = next
        }
        return bytes
    }

    // MARK: Rule 4: names that fold affect their rollout alone

    @Test func namesEqualAfterNFCMakeThatRolloutAloneInvalid() throws {
        let repo = try ApprovalRepo()
        try repo.fixture.commitFiles(
            [
                "rollouts/other/plan.json": F.plan(name: "other", flag: "other_flag", canaryApprovals: ["sre"])
            ], "Add other", author: F.robin)
        try repo.approveViaPullRequest(phase: "canary-10", role: "sre", person: F.dana, key: Keys.dana)
        // Two approval files of `other` whose names are canonically equivalent: é precomposed and decomposed.
        let text = try repo.approvalText(phase: "canary-10", role: "sre", approver: "sam@example.com")
        try repo.fixture.write("rollouts/other/approvals/canary-10/ren\u{00E9}.json", text)
        try repo.fixture.write("rollouts/other/approvals/canary-10/rene\u{0301}.json", text)
        try repo.fixture.commit("Two names, one text", author: F.sam)
        #expect(try repo.fixture.git("ls-files", "rollouts/other/approvals").split(separator: "\n").count == 2)
        let loaded = try repo.load()
        let other = try #require(loaded.snapshot.rollout(named: "other"))
        #expect(!other.isValid)
        #expect(other.diagnostics.contains { $0.message.contains("NFC") })
        // The walk went on: exp-001's approval is still judged and counts.
        let exp = try #require(loaded.snapshot.rollout(named: ApprovalRepo.rollout))
        #expect(exp.isValid)
        #expect(loaded.approvals[ApprovalRepo.rollout]?.first?.counted == true)
    }

    // MARK: §4.3 [r3]: the policy in force decides, plan validation included

    /// A pull request that changes policies/, signed by robin, merged; not approved, so pending.
    func proposePolicy(_ repo: ApprovalRepo, _ files: [String: String], removing: [String] = []) throws {
        let fixture = repo.fixture
        try fixture.git("checkout", "-q", "-b", "policy-change", "main")
        for path in removing { try fixture.remove(path) }
        try fixture.signedCommitFiles(files, "Change policy", key: Keys.robin, author: F.robin)
        try fixture.git("checkout", "-q", "main")
        try fixture.git("merge", "-q", "--no-ff", "-m", "Merge policy-change", "policy-change", author: F.service)
    }

    @Test func aPendingPolicyThatRenamesARoleLeavesThePlanValidButFailsValidate() throws {
        let repo = try ApprovalRepo()
        var roles = F.defaultRoles
        roles["site-reliability"] = roles.removeValue(forKey: "sre")
        try proposePolicy(repo, ["policies/approvers.json": F.policy(roles: roles, policyApprovals: ["qa-lead"])])
        let loaded = try repo.load()
        #expect(loaded.policy.pending != nil)
        let rollout = try #require(loaded.snapshot.rollout(named: ApprovalRepo.rollout))
        #expect(rollout.isValid, "\(rollout.diagnostics)")
        #expect(rollout.checks.map(\.name) == ["error-rate"])
        // The pull request's check judges the tip as it will be: this change breaks the plan.
        let report = try ValidateReport.run(repositoryPath: repo.path, ref: nil)
        #expect(!report.isValid)
        #expect(report.diagnostics.contains { $0.message.contains("role \"sre\" is not defined") })
    }

    @Test func aRoleRenamedTogetherWithThePlansPassesValidateWithAWarning() throws {
        let repo = try ApprovalRepo()
        var roles = F.defaultRoles
        roles["site-reliability"] = roles.removeValue(forKey: "sre")
        try proposePolicy(
            repo,
            [
                "policies/approvers.json": F.policy(roles: roles, policyApprovals: ["qa-lead"]),
                ApprovalRepo.planPath: F.plan(
                    name: ApprovalRepo.rollout, canaryApprovals: ["engineering-lead", "qa-lead", "site-reliability"]),
            ])
        let report = try ValidateReport.run(repositoryPath: repo.path, ref: nil)
        #expect(report.isValid, "\(report.diagnostics)")
        #expect(report.warnings.contains { $0.message.contains("valid once the pending policy") })
        // Until the proposal is in force, the plan is judged by the policy in force, which has no such role.
        let loaded = try repo.load()
        #expect(loaded.snapshot.rollout(named: ApprovalRepo.rollout)?.isValid == false)
    }

    @Test func aPendingPolicyThatDeletesAHealthSetLeavesThePlanItsChecks() throws {
        let repo = try ApprovalRepo()
        let set = """
            { "apiVersion": "rolloutctl/v1", "checks": [
              { "name": "error-rate", "query": "q", "max": 0.02, "onBreach": "rollback" } ] }

            """
        try repo.fixture.signedCommitFiles(["policies/health/standard.json": set], "Health set", key: Keys.robin)
        // Bring the set into force: approved by the sre role of the policy in force.
        let digest = try repo.load().snapshot.policySet.digest
        try repo.fixture.git("checkout", "-q", "-b", "approve-set", "main")
        try repo.fixture.write(
            "policies/approvals/sre-dana.json",
            "{\"apiVersion\": \"rolloutctl/v1\", \"policy\": \"\(digest)\", \"role\": \"sre\", "
                + "\"approver\": \"dana@example.com\"}\n")
        try repo.fixture.signedCommit("Approve policy", key: Keys.dana, author: F.dana)
        try repo.fixture.git("checkout", "-q", "main")
        try repo.fixture.git("merge", "-q", "--no-ff", "-m", "Merge approve-set", "approve-set", author: F.service)
        let plan = """
            { "apiVersion": "rolloutctl/v1", "name": "\(ApprovalRepo.rollout)", "flag": "exp_001",
              "phases": [
                { "name": "staging", "environment": "staging", "coverage": 100 },
                { "name": "canary-10", "environment": "production", "coverage": 10,
                  "approvals": ["engineering-lead", "qa-lead", "sre"] } ],
              "health": { "use": "standard" } }

            """
        try repo.fixture.signedCommitFiles([ApprovalRepo.planPath: plan], "Use the set", key: Keys.robin)
        #expect(try repo.load().policy.pending == nil)
        // Unapproved: the set deleted.
        try proposePolicy(repo, [:], removing: ["policies/health/standard.json"])
        let loaded = try repo.load()
        #expect(loaded.policy.pending != nil)
        let rollout = try #require(loaded.snapshot.rollout(named: ApprovalRepo.rollout))
        #expect(rollout.isValid, "\(rollout.diagnostics)")
        #expect(rollout.checks.map(\.name) == ["error-rate"])
        #expect(!(try ValidateReport.run(repositoryPath: repo.path, ref: nil).isValid))
    }

    @Test func validateTakesThePolicyRootAnOperatorSet() throws {
        let repo = try ApprovalRepo()
        var roles = F.defaultRoles
        roles["qa-lead"] = ["quinn@example.com", "sam@example.com"]
        try proposePolicy(repo, ["policies/approvers.json": F.policy(roles: roles)])
        #expect(try ValidateReport.run(repositoryPath: repo.path, ref: nil).policy.pending != nil)
        // The operator made the proposal's merge the root of trust: nothing is pending under it.
        let report = try ValidateReport.run(repositoryPath: repo.path, ref: nil, policyRoot: "main")
        #expect(report.policy.pending == nil)
        #expect(report.policy.root?.commit == (try repo.fixture.head()))
    }
}
