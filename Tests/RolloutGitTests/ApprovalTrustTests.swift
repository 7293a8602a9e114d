import Foundation
import RolloutCore
import RolloutGit
import RolloutKit
import RolloutTestSupport
import Testing

/// The attacks of issue 8, each tried on a real repository made by `git` with real `ssh-keygen`
/// signatures, and the legitimate paths beside them (SPEC §4.1 rules 3, 4, 7, 8, §4.2, §4.3).
@Suite struct ApprovalTrustTests {
    typealias F = RolloutFixtures

    func expectNotCounted(
        _ status: ApprovalStatus, _ fragments: String..., sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(!status.counted, "\(status.path) counted", sourceLocation: sourceLocation)
        for fragment in fragments {
            #expect(
                status.reason?.contains(fragment) == true, "reason: \(status.reason ?? "nil")",
                sourceLocation: sourceLocation)
        }
    }

    /// A pull request that changes policies/, signed by robin, merged with a merge commit.
    @discardableResult
    func changePolicy(_ repo: ApprovalRepo, _ files: [String: String], message: String = "Change policy") throws
        -> String
    {
        let fixture = repo.fixture
        let branch = "policy-\(UUID().uuidString.prefix(8))"
        try fixture.git("checkout", "-q", "-b", branch, "main")
        try fixture.signedCommitFiles(files, message, key: Keys.robin, author: F.robin)
        try fixture.git("checkout", "-q", "main")
        try fixture.git("merge", "-q", "--no-ff", "-m", "Merge \(branch)", branch, author: F.service)
        return try fixture.head()
    }

    /// Approves the tip's policy as `role` through a signed pull request.
    func approvePolicy(_ repo: ApprovalRepo, role: String, person: GitFixture.Person, key: SSHTestKey) throws {
        let fixture = repo.fixture
        let digest = try repo.load().snapshot.policySet.digest
        let branch = "approve-policy-\(UUID().uuidString.prefix(8))"
        try fixture.git("checkout", "-q", "-b", branch, "main")
        let text = """
            {"apiVersion": "rolloutctl/v1", "policy": "\(digest)", "role": "\(role)", "approver": "\(person.email)"}

            """
        try fixture.write("policies/approvals/\(role)-\(person.email.prefix(4)).json", text)
        try fixture.signedCommit("Approve policy", key: key, author: person)
        try fixture.git("checkout", "-q", "main")
        try fixture.git("merge", "-q", "--no-ff", "-m", "Merge \(branch)", branch, author: F.service)
    }

    /// The policy digest, computed the way SPEC §4.3 tells a person to check it.
    func gitDigest(_ repo: ApprovalRepo) throws -> String {
        let listing = try runProgram("git", ["-C", repo.path, "ls-tree", "-r", "HEAD", "--", "policies"])
        let lines = listing.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.isEmpty && !$0.contains("\tpolicies/approvals/") }
        let input = lines.map { $0 + "\n" }.joined()
        return try runProgram("sha256sum", [], input: input).split(separator: " ")[0].description
    }

    // MARK: 1. A pull request that edits policies/ approves itself

    @Test func policyChangeThatAddsItsAuthorToARoleDoesNotCountUntilApproved() throws {
        let repo = try ApprovalRepo()
        var roles = F.defaultRoles
        roles["sre"] = ["dana@example.com", "sam@example.com", "mallory@example.com"]
        let signers = Keys.allowedSigners + Keys.mallory.allowedSignersLine("mallory@example.com") + "\n"
        let proposal = try changePolicy(
            repo,
            [
                "policies/approvers.json": F.policy(roles: roles),
                "policies/allowed_signers": signers,
            ])
        try repo.approveViaPullRequest(phase: "canary-10", role: "sre", person: F.mallory, key: Keys.mallory)
        let loaded = try repo.load()
        let status = try #require(loaded.approvals[ApprovalRepo.rollout]?.first)
        expectNotCounted(status, "is not in policies/allowed_signers")
        let pending = try #require(loaded.policy.pending)
        #expect(pending.point.commit == proposal)
        #expect(pending.missing == ["sre"])
        #expect(loaded.policy.pendingSentence?.contains("not in force: needs approval from sre") == true)
        #expect(loaded.policy.inForce?.commit != proposal)
    }

    @Test func policyChangeThatDropsSignatureModeDoesNotLetAForgedAuthorCount() throws {
        let repo = try ApprovalRepo()
        try changePolicy(repo, ["policies/approvers.json": F.policy(identity: "author")])
        // Robin commits an approval in dana's name, unsigned: author mode would count it.
        try repo.approveViaPullRequest(phase: "canary-10", role: "sre", person: F.dana, key: nil, author: F.dana)
        expectNotCounted(
            try repo.status(repo.approvalPath(phase: "canary-10", role: "sre", person: F.dana)),
            "is not signed")
    }

    @Test func policyChangeThatAddsAKeyForSomeoneElseDoesNotCount() throws {
        let repo = try ApprovalRepo()
        let signers = Keys.allowedSigners + Keys.mallory.allowedSignersLine("dana@example.com") + "\n"
        try changePolicy(repo, ["policies/allowed_signers": signers])
        try repo.approveViaPullRequest(phase: "canary-10", role: "sre", person: F.dana, key: Keys.mallory)
        expectNotCounted(
            try repo.status(repo.approvalPath(phase: "canary-10", role: "sre", person: F.dana)),
            "is not in policies/allowed_signers")
    }

    @Test func loosenedHealthSetIsNotUsedUntilApproved() throws {
        let repo = try ApprovalRepo()
        let strict =
            #"{"apiVersion": "rolloutctl/v1", "checks": [{"name": "errors", "query": "q", "max": 0.01, "onBreach": "rollback"}]}"#
        let loose =
            #"{"apiVersion": "rolloutctl/v1", "checks": [{"name": "errors", "query": "q", "max": 0.5, "onBreach": "rollback"}]}"#
        try changePolicy(repo, ["policies/health/web.json": strict + "\n"])
        try approvePolicy(repo, role: "sre", person: F.dana, key: Keys.dana)
        #expect(try repo.load().policy.pending == nil)
        let plan = F.plan(name: ApprovalRepo.rollout).replacingOccurrences(
            of: #""checks": ["#, with: #""use": "web", "checks": ["#)
        try repo.fixture.signedCommitFiles(
            [ApprovalRepo.planPath: plan], "Use the web health set", key: Keys.robin,
            author: F.robin)
        try changePolicy(repo, ["policies/health/web.json": loose + "\n"])
        let loaded = try repo.load()
        #expect(loaded.policy.pending != nil)
        let checks = try #require(loaded.snapshot.rollout(named: ApprovalRepo.rollout)?.checks)
        #expect(checks.contains { $0.name == "errors" && $0.max == 0.01 })
        #expect(!checks.contains { $0.max == 0.5 })
    }

    // MARK: The legitimate path: a policy change approved by the policyApprovals roles

    @Test func approvedPolicyChangeComesIntoForceAndItsRoleCountsFromThen() throws {
        let repo = try ApprovalRepo()
        #expect(try repo.load().policy.inForce != nil)
        // Pat becomes an SRE; pat's approval does not count while the change waits.
        var roles = F.defaultRoles
        roles["sre"] = ["dana@example.com", "sam@example.com", "pat@example.com"]
        let proposal = try changePolicy(repo, ["policies/approvers.json": F.policy(roles: roles)])
        try repo.approveViaPullRequest(phase: "canary-10", role: "sre", person: F.pat, key: Keys.pat)
        let path = repo.approvalPath(phase: "canary-10", role: "sre", person: F.pat)
        expectNotCounted(try repo.status(path), "pat@example.com is not a member of role \"sre\"")
        let digest = try repo.load().snapshot.policySet.digest
        #expect(digest == (try gitDigest(repo)), "the digest is the one `git ls-tree | sha256sum` prints")
        #expect(try repo.load().policy.pending?.point.digest == digest)

        try approvePolicy(repo, role: "sre", person: F.dana, key: Keys.dana)
        let loaded = try repo.load()
        #expect(loaded.policy.pending == nil)
        #expect(loaded.policy.inForce?.digest == digest)
        #expect(loaded.policy.inForce?.commit != proposal, "in force from the commit that merged its approval")
        let counted = try repo.status(path)
        #expect(counted.counted, "\(counted.reason ?? "")")
    }

    @Test func policyApprovalBySomeoneWhoMadeTheChangeDoesNotCount() throws {
        let repo = try ApprovalRepo()
        let fixture = repo.fixture
        // Dana changes the policy herself and approves it.
        var roles = F.defaultRoles
        roles["sre"] = ["dana@example.com"]
        try fixture.git("checkout", "-q", "-b", "dana-policy", "main")
        try fixture.signedCommitFiles(
            ["policies/approvers.json": F.policy(roles: roles)], "Policy", key: Keys.dana,
            author: F.dana)
        try fixture.git("checkout", "-q", "main")
        try fixture.git("merge", "-q", "--no-ff", "-m", "Merge", "dana-policy", author: F.service)
        try approvePolicy(repo, role: "sre", person: F.dana, key: Keys.dana)
        let pending = try #require(try repo.load().policy.pending)
        #expect(pending.missing == ["sre"])
        expectNotCounted(try #require(pending.approvals.first), "self-approval", "dana@example.com authored")
        // Sam, another SRE, approves: it comes into force.
        try approvePolicy(repo, role: "sre", person: F.sam, key: Keys.sam)
        #expect(try repo.load().policy.pending == nil)
    }

    @Test func policyApprovalMergedBeforeTheProposalDoesNotCount() throws {
        let repo = try ApprovalRepo()
        var roles = F.defaultRoles
        roles["sre"] = ["dana@example.com"]
        let policyText = F.policy(roles: roles)
        // Dana approves a digest computed ahead of time, merged before the change it approves.
        let future = try ApprovalRepo()
        try changePolicy(future, ["policies/approvers.json": policyText])
        let digest = try future.load().snapshot.policySet.digest
        let text = """
            {"apiVersion": "rolloutctl/v1", "policy": "\(digest)", "role": "sre", "approver": "dana@example.com"}

            """
        try repo.fixture.signedCommitFiles(
            ["policies/approvals/early.json": text], "Early", key: Keys.dana, author: F.dana)
        try changePolicy(repo, ["policies/approvers.json": policyText])
        let pending = try #require(try repo.load().policy.pending)
        #expect(pending.point.digest == digest)
        expectNotCounted(try #require(pending.approvals.first), "merged before the policy change was proposed")
    }

    // MARK: 2. A plan sets its own gates: environment floors

    @Test func environmentFloorAddsRolesThePlanDoesNotList() throws {
        let repo = try ApprovalRepo(canaryApprovals: ["qa-lead"])
        try changePolicy(repo, ["policies/approvers.json": F.policy(environments: ["production": ["sre"]])])
        try approvePolicy(repo, role: "sre", person: F.dana, key: Keys.dana)
        try repo.approveViaPullRequest(phase: "canary-10", role: "qa-lead", person: F.quinn, key: Keys.quinn)
        let loaded = try repo.load()
        let plan = try #require(loaded.snapshot.rollout(named: ApprovalRepo.rollout)?.plan)
        let missing = ApprovalRules.missingRoles(
            plan: plan, policy: loaded.policy.inForceSet?.approvers,
            statuses: loaded.approvals[ApprovalRepo.rollout] ?? [])
        #expect(missing[1] == ["sre"])
        #expect(missing[0].isEmpty, "staging raises no production exposure")
        // The floor's role counts once approved.
        try repo.approveViaPullRequest(phase: "canary-10", role: "sre", person: F.sam, key: Keys.sam)
        let again = try repo.load()
        let stillMissing = ApprovalRules.missingRoles(
            plan: plan, policy: again.policy.inForceSet?.approvers,
            statuses: again.approvals[ApprovalRepo.rollout] ?? [])
        #expect(stillMissing[1].isEmpty)
    }

    // MARK: 3. Replay

    @Test func removedApprovalBroughtBackByAnotherMergeDoesNotCount() throws {
        let repo = try ApprovalRepo()
        let fixture = repo.fixture
        let path = repo.approvalPath(phase: "canary-10", role: "sre", person: F.dana)
        let (approval, _) = try repo.approveViaPullRequest(
            phase: "canary-10", role: "sre", person: F.dana, key: Keys.dana)
        #expect(try repo.status(path).counted)
        try fixture.remove(path)
        try fixture.signedCommit("Withdraw dana's approval", key: Keys.robin, author: F.robin)
        // Mallory branches from dana's approval commit and merges it back, keeping the file.
        try fixture.git("checkout", "-q", "-b", "replay", approval)
        try fixture.commitFiles(["notes.txt": "unrelated"], "Unrelated", author: F.mallory)
        try fixture.git("checkout", "-q", "main")
        try fixture.git("merge", "-q", "--no-ff", "--no-commit", "replay", author: F.mallory)
        try fixture.git("checkout", "replay", "--", path)
        try fixture.commit("Merge replay", author: F.mallory)
        let status = try repo.status(path)
        expectNotCounted(status, "approval commit not found on the merged side")
        #expect(status.commit == nil)
    }

    @Test func approversSignedMergeOfSomebodyElsesCommitIsNotTheApproval() throws {
        let repo = try ApprovalRepo()
        let fixture = repo.fixture
        let path = repo.approvalPath(phase: "canary-10", role: "sre", person: F.dana)
        try fixture.git("checkout", "-q", "-b", "forged", "main")
        try fixture.write(path, try repo.approvalText(phase: "canary-10", role: "sre", approver: F.dana.email))
        let forged = try fixture.commit("Approve as dana", author: F.mallory)
        try fixture.git("checkout", "-q", "main")
        // Dana signs the merge of mallory's branch (as a reviewer pressing merge would).
        try fixture.git(
            [
                "-c", "gpg.format=ssh", "-c", "user.signingkey=\(Keys.dana.path)", "merge", "-q", "--no-ff",
                "-S", "-m", "Merge forged", "forged",
            ], author: F.dana)
        let status = try repo.status(path)
        #expect(status.commit == forged)
        expectNotCounted(status, "is not signed")
    }

    // MARK: 4. Laundering self-approval

    @Test func anotherPersonsTrivialEditDoesNotLaunderTheApproversChange() throws {
        let repo = try ApprovalRepo()
        let fixture = repo.fixture
        try fixture.signedCommitFiles(
            [ApprovalRepo.planPath: F.plan(name: ApprovalRepo.rollout, description: "by dana")],
            "Dana's change", key: Keys.dana, author: F.dana)
        try fixture.signedCommitFiles(
            [ApprovalRepo.planPath: F.plan(name: ApprovalRepo.rollout, description: "by dana ")],
            "Whitespace", key: Keys.robin, author: F.robin)
        try repo.approveViaPullRequest(phase: "canary-10", role: "sre", person: F.dana, key: Keys.dana)
        expectNotCounted(
            try repo.status(repo.approvalPath(phase: "canary-10", role: "sre", person: F.dana)),
            "self-approval", "dana@example.com authored")
    }

    @Test func unsignedPlanChangeInSignatureModeHidesItsMakerSoNothingCounts() throws {
        let repo = try ApprovalRepo()
        // Someone commits a plan change under robin's name, unsigned.
        let change = try repo.fixture.commitFiles(
            [ApprovalRepo.planPath: F.plan(name: ApprovalRepo.rollout, description: "who?")], "Edit", author: F.robin)
        try repo.approveViaPullRequest(phase: "canary-10", role: "sre", person: F.dana, key: Keys.dana)
        try repo.approveViaPullRequest(phase: "canary-10", role: "qa-lead", person: F.quinn, key: Keys.quinn)
        for status in try repo.statuses() {
            expectNotCounted(status, "plan change \(change.prefix(12)) is not signed: its maker cannot be verified")
        }
    }

    // MARK: 5. Revert replay

    @Test func planRevertedToOldContentNeedsFreshApprovals() throws {
        let repo = try ApprovalRepo()
        let fixture = repo.fixture
        try repo.approveViaPullRequest(phase: "canary-10", role: "sre", person: F.dana, key: Keys.dana)
        let path = repo.approvalPath(phase: "canary-10", role: "sre", person: F.dana)
        #expect(try repo.status(path).counted)
        let original = try String(contentsOfFile: fixture.path + "/" + ApprovalRepo.planPath, encoding: .utf8)
        try fixture.signedCommitFiles(
            [ApprovalRepo.planPath: F.plan(name: ApprovalRepo.rollout, description: "v2")],
            "Edit", key: Keys.robin, author: F.robin)
        try fixture.signedCommitFiles(
            [ApprovalRepo.planPath: original], "Revert to v1", key: Keys.robin, author: F.robin)
        expectNotCounted(try repo.status(path), "merged before the plan took its current content")
        // A fresh approval of the (same) content counts.
        try repo.approveViaPullRequest(phase: "canary-10", role: "sre", person: F.sam, key: Keys.sam)
        #expect(try repo.status(repo.approvalPath(phase: "canary-10", role: "sre", person: F.sam)).counted)
    }

    // MARK: 6. One key, two roles

    @Test func oneKeyListedForTwoPrincipalsFillsOneRole() throws {
        var roles = F.defaultRoles
        roles["qa-lead"] = ["quinn@example.com", "sam@example.com"]
        roles["sre"] = ["dana@example.com"]
        let repo = try ApprovalRepo(roles: roles)
        // Dana's key is (also) listed for sam, through a policy change approved by sam himself... no:
        // it is listed so from the start here, as a careless allowed_signers would.
        let fixture = repo.fixture
        let signers = Keys.allowedSigners + Keys.dana.allowedSignersLine("sam@example.com") + "\n"
        try changePolicy(repo, ["policies/allowed_signers": signers])
        try approvePolicy(repo, role: "sre", person: F.dana, key: Keys.dana)
        #expect(try repo.load().policy.pending == nil)
        try repo.approveViaPullRequest(phase: "canary-10", role: "sre", person: F.dana, key: Keys.dana)
        try repo.approveViaPullRequest(phase: "canary-10", role: "qa-lead", person: F.sam, key: Keys.dana)
        let statuses = try repo.statuses()
        #expect(statuses.filter(\.counted).count == 1)
        let loser = try #require(statuses.first { !$0.counted })
        expectNotCounted(loser, "key SHA256:", "already fills role")
        _ = fixture
    }

    // MARK: The root of trust

    @Test func policyRootIsTheFirstCommitWithApproversAndCanBeMovedByTheOperator() throws {
        let repo = try ApprovalRepo()
        let root = try repo.fixture.git("rev-list", "--max-parents=0", "HEAD").trimmingCharacters(
            in: .whitespacesAndNewlines)
        let loaded = try repo.load()
        #expect(loaded.policy.root?.commit == root)
        // An unapproved change, then the operator makes it the root (init --policy-root).
        var roles = F.defaultRoles
        roles["sre"] = ["pat@example.com"]
        let proposal = try changePolicy(repo, ["policies/approvers.json": F.policy(roles: roles)])
        #expect(try repo.load().policy.pending != nil)
        let moved = try RepositoryReader.load(
            repository: try GitRepository(path: repo.path), ref: nil, cacheFile: nil,
            policyRoot: proposal)
        #expect(moved.policy.root?.commit == proposal)
        #expect(moved.policy.pending == nil)
        #expect(moved.policy.inForceSet?.approvers?.isMember("pat@example.com", of: "sre") == true)
        // A root that is not on the first-parent line is refused.
        #expect(throws: GitError.self) {
            _ = try RepositoryReader.load(
                repository: try GitRepository(path: repo.path), ref: nil, cacheFile: nil,
                policyRoot: String(repeating: "1", count: 40))
        }
    }
}
