import Foundation
import RolloutCore
import RolloutGit
import RolloutTestSupport
import Testing

/// SSH keys shared by the approval tests (ssh-keygen once per process).
enum Keys {
    static let dana = try! SSHTestKey(comment: "dana")
    static let sam = try! SSHTestKey(comment: "sam")
    static let quinn = try! SSHTestKey(comment: "quinn")
    static let erin = try! SSHTestKey(comment: "erin")
    static let pat = try! SSHTestKey(comment: "pat")
    /// Listed for nobody.
    static let mallory = try! SSHTestKey(comment: "mallory")
    /// Listed for dana, but only until 2025-01-01 (fixture commits are dated 2026).
    static let danaExpired = try! SSHTestKey(comment: "dana-old")
    /// The hosting service's own key (not in allowed_signers).
    static let service = try! SSHTestKey(comment: "service")
    /// Robin writes plans (in signature mode every plan change must be signed by a listed key).
    static let robin = try! SSHTestKey(comment: "robin")

    static var allowedSigners: String {
        [
            dana.allowedSignersLine("dana@example.com"),
            sam.allowedSignersLine("sam@example.com"),
            quinn.allowedSignersLine("quinn@example.com"),
            erin.allowedSignersLine("erin@example.com"),
            pat.allowedSignersLine("pat@example.com"),
            robin.allowedSignersLine("robin@example.com"),
            danaExpired.allowedSignersLine("dana@example.com", options: "valid-before=\"20250101Z\""),
        ].joined(separator: "\n") + "\n"
    }
}

/// A rollout repository under test: `main` holds the policy, allowed_signers and `exp-001`.
struct ApprovalRepo {
    typealias F = RolloutFixtures
    typealias Person = GitFixture.Person
    static let rollout = "exp-001"
    static let planPath = "rollouts/exp-001/plan.json"

    let fixture: GitFixture

    init(
        identity: String = "ssh-signature", forbidSelfApproval: Bool = true,
        roles: [String: [String]] = F.defaultRoles, canaryApprovals: [String] = ["engineering-lead", "qa-lead", "sre"],
        planAuthor: Person = F.robin, planKey: SSHTestKey? = Keys.robin,
        allowedSigners: String = Keys.allowedSigners
    ) throws {
        fixture = try GitFixture()
        try fixture.commitFiles(
            [
                "policies/approvers.json": F.policy(
                    identity: identity, forbidSelfApproval: forbidSelfApproval, roles: roles),
                "policies/allowed_signers": allowedSigners,
            ], "Policies")
        let plan = [Self.planPath: F.plan(name: Self.rollout, canaryApprovals: canaryApprovals)]
        if let planKey {
            try fixture.signedCommitFiles(plan, "Add exp-001", key: planKey, author: planAuthor)
        } else {
            try fixture.commitFiles(plan, "Add exp-001", author: planAuthor)
        }
    }

    var path: String { fixture.path }

    enum Merge {
        /// `git merge --no-ff` by the hosting service.
        case mergeCommit
        /// `git merge --squash` + a commit by `author`, signed by `key` when given.
        case squash(author: Person, key: SSHTestKey?)
        /// `git merge --ff-only`.
        case fastForward
    }

    func approvalPath(phase: String, role: String, person: Person, suffix: String = "") -> String {
        let local = person.email.split(separator: "@")[0]
        return "rollouts/\(Self.rollout)/approvals/\(phase)/\(role)-\(local)\(suffix).json"
    }

    func approvalText(phase: String, role: String, approver: String, bodyPhase: String? = nil) throws -> String {
        F.approval(
            rollout: Self.rollout, phase: bodyPhase ?? phase, role: role, approver: approver,
            plan: try fixture.blobID(of: Self.planPath))
    }

    /// Adds an approval on a pull-request branch committed by `author` (signed by `key` when given)
    /// and merges it into main. Returns the branch commit and main's new tip.
    @discardableResult
    func approveViaPullRequest(
        phase: String, role: String, person: Person, key: SSHTestKey?,
        merge: Merge = .mergeCommit, author: Person? = nil, approver: String? = nil,
        path: String? = nil, bodyPhase: String? = nil
    ) throws -> (branchCommit: String, tip: String) {
        let branch = "approve-\(UUID().uuidString.prefix(8))"
        let text = try approvalText(phase: phase, role: role, approver: approver ?? person.email, bodyPhase: bodyPhase)
        try fixture.git("checkout", "-q", "-b", branch, "main")
        try fixture.write(path ?? approvalPath(phase: phase, role: role, person: person), text)
        let branchCommit: String
        if let key {
            branchCommit = try fixture.signedCommit("Approve \(phase) as \(role)", key: key, author: author ?? person)
        } else {
            branchCommit = try fixture.commit("Approve \(phase) as \(role)", author: author ?? person)
        }
        try fixture.git("checkout", "-q", "main")
        switch merge {
        case .mergeCommit:
            try fixture.git("merge", "-q", "--no-ff", "-m", "Merge pull request \(branch)", branch, author: F.service)
        case .squash(let squashAuthor, let squashKey):
            try fixture.git("merge", "-q", "--squash", branch)
            if let squashKey {
                try fixture.signedCommit("Approve \(phase) as \(role) (#1)", key: squashKey, author: squashAuthor)
            } else {
                try fixture.commit("Approve \(phase) as \(role) (#1)", author: squashAuthor)
            }
        case .fastForward:
            try fixture.git("merge", "-q", "--ff-only", branch)
        }
        return (branchCommit, try fixture.head())
    }

    /// Commits an approval straight onto main.
    @discardableResult
    func approveDirectly(
        phase: String, role: String, person: Person, key: SSHTestKey?, author: Person? = nil,
        approver: String? = nil, suffix: String = ""
    ) throws -> String {
        try fixture.write(
            approvalPath(phase: phase, role: role, person: person, suffix: suffix),
            try approvalText(phase: phase, role: role, approver: approver ?? person.email))
        if let key {
            return try fixture.signedCommit("Approve \(phase) as \(role)", key: key, author: author ?? person)
        }
        return try fixture.commit("Approve \(phase) as \(role)", author: author ?? person)
    }

    func load(cacheFile: String? = nil, ref: String? = nil) throws -> LoadedRepository {
        try RepositoryReader.load(repository: try GitRepository(path: path), ref: ref, cacheFile: cacheFile)
    }

    func statuses(cacheFile: String? = nil) throws -> [ApprovalStatus] {
        try load(cacheFile: cacheFile).approvals[Self.rollout] ?? []
    }

    func status(_ path: String) throws -> ApprovalStatus {
        let all = try statuses()
        guard let status = all.first(where: { $0.path == path }) else {
            throw FixtureError("no approval status for \(path); have \(all.map(\.path))")
        }
        return status
    }
}

@Suite struct ApprovalScanTests {
    typealias F = RolloutFixtures

    /// Asserts the approval is not counted and its reason contains every fragment.
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

    // MARK: Counted

    @Test func everyMergeStyleCounts() throws {
        let repo = try ApprovalRepo()
        // Merge commit: the approval commit is dana's signed commit on the merged side.
        let merged = try repo.approveViaPullRequest(phase: "canary-10", role: "sre", person: F.dana, key: Keys.dana)
        // Squash whose commit quinn signed herself.
        let squashed = try repo.approveViaPullRequest(
            phase: "canary-10", role: "qa-lead", person: F.quinn, key: Keys.quinn,
            merge: .squash(author: F.quinn, key: Keys.quinn))
        // Fast-forward.
        let forwarded = try repo.approveViaPullRequest(
            phase: "canary-10", role: "engineering-lead", person: F.erin,
            key: Keys.erin, merge: .fastForward)
        // A direct commit on main.
        let direct = try repo.approveDirectly(phase: "production", role: "product-owner", person: F.pat, key: Keys.pat)

        let statuses = try repo.statuses()
        #expect(statuses.count == 4)
        for status in statuses {
            #expect(status.counted, "\(status.path): \(status.reason ?? "")")
            #expect(status.reason == nil)
        }
        let byRole = Dictionary(uniqueKeysWithValues: statuses.map { ($0.role ?? "", $0) })
        #expect(byRole["sre"]?.commit == merged.branchCommit)
        #expect(merged.branchCommit != merged.tip)
        #expect(byRole["qa-lead"]?.commit == squashed.tip)
        #expect(byRole["engineering-lead"]?.commit == forwarded.branchCommit)
        #expect(forwarded.branchCommit == forwarded.tip)
        #expect(byRole["product-owner"]?.commit == direct)

        let plan = try #require(try repo.load().snapshot.rollout(named: ApprovalRepo.rollout)?.plan)
        for phase in plan.phases {
            #expect(
                ApprovalRules.missingRoles(plan: plan, policy: nil, statuses: statuses)[
                    plan.phaseIndex(named: phase.name) ?? 0
                ].isEmpty, "\(phase.name)")
        }
    }

    @Test func mergedBranchWithSeveralCommitsUsesTheCommitThatAddedTheFile() throws {
        let repo = try ApprovalRepo()
        let fixture = repo.fixture
        try fixture.git("checkout", "-q", "-b", "pr", "main")
        let path = repo.approvalPath(phase: "canary-10", role: "sre", person: F.dana)
        try fixture.write(path, try repo.approvalText(phase: "canary-10", role: "sre", approver: F.dana.email))
        let added = try fixture.signedCommit("Approve", key: Keys.dana, author: F.dana)
        try fixture.commitFiles(["notes.txt": "unrelated"], "Notes", author: F.robin)
        try fixture.git("checkout", "-q", "main")
        try fixture.commitFiles(["other.txt": "main moved on"], "Other work")
        try fixture.git("merge", "-q", "--no-ff", "-m", "Merge pr", "pr", author: F.service)
        let status = try repo.status(path)
        #expect(status.counted, "\(status.reason ?? "")")
        #expect(status.commit == added)
    }

    // MARK: Identity failures

    @Test func forgedAuthorWithoutSignature() throws {
        let repo = try ApprovalRepo()
        try repo.approveViaPullRequest(phase: "canary-10", role: "sre", person: F.dana, key: nil)
        let status = try repo.status(repo.approvalPath(phase: "canary-10", role: "sre", person: F.dana))
        expectNotCounted(status, "is not signed", "SSH signature by dana@example.com")
    }

    @Test func signatureByAKeyNotInAllowedSigners() throws {
        let repo = try ApprovalRepo()
        try repo.approveViaPullRequest(phase: "canary-10", role: "sre", person: F.dana, key: Keys.mallory)
        expectNotCounted(
            try repo.status(repo.approvalPath(phase: "canary-10", role: "sre", person: F.dana)),
            "is not in policies/allowed_signers")
    }

    @Test func validSignatureOfAnotherPrincipal() throws {
        let repo = try ApprovalRepo()
        try repo.approveViaPullRequest(phase: "canary-10", role: "sre", person: F.dana, key: Keys.quinn)
        expectNotCounted(
            try repo.status(repo.approvalPath(phase: "canary-10", role: "sre", person: F.dana)),
            "allowed for quinn@example.com, not dana@example.com")
    }

    @Test func signatureOutsideItsValidityWindow() throws {
        let repo = try ApprovalRepo()
        try repo.approveViaPullRequest(phase: "canary-10", role: "sre", person: F.dana, key: Keys.danaExpired)
        expectNotCounted(
            try repo.status(repo.approvalPath(phase: "canary-10", role: "sre", person: F.dana)),
            "after valid-before 20250101Z")
    }

    @Test func tamperedCommitKeepsItsSignatureButFailsVerification() throws {
        let repo = try ApprovalRepo()
        let fixture = repo.fixture
        let original = try repo.approveDirectly(phase: "canary-10", role: "sre", person: F.dana, key: Keys.dana)
        let path = repo.approvalPath(phase: "canary-10", role: "sre", person: F.dana)
        #expect(try repo.status(path).counted)

        let object = try fixture.git("cat-file", "commit", original) + "\n"
        #expect(object.contains("gpgsig -----BEGIN SSH SIGNATURE-----"))
        let edited = object.replacingOccurrences(
            of: "Approve canary-10 as sre", with: "Approve canary-10 as sre, edited")
        #expect(edited != object)
        let forged = try runProgram(
            "git", ["-C", fixture.path, "hash-object", "-t", "commit", "-w", "--stdin"], input: edited
        )
        .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(forged != original)
        try fixture.git("update-ref", "refs/heads/main", forged)
        let status = try repo.status(path)
        #expect(status.commit == forged)
        expectNotCounted(status, "bad signature")
    }

    @Test func squashNotSignedByTheApproverSaysSo() throws {
        let repo = try ApprovalRepo()
        // The hosting service squashes dana's signed commit into an unsigned one...
        try repo.approveViaPullRequest(
            phase: "canary-10", role: "sre", person: F.dana, key: Keys.dana,
            merge: .squash(author: F.dana, key: nil))
        expectNotCounted(
            try repo.status(repo.approvalPath(phase: "canary-10", role: "sre", person: F.dana)),
            "is not signed", "squash")
        // ...or signs it with its own key.
        try repo.approveViaPullRequest(
            phase: "canary-10", role: "qa-lead", person: F.quinn, key: Keys.quinn,
            merge: .squash(author: F.quinn, key: Keys.service))
        expectNotCounted(
            try repo.status(repo.approvalPath(phase: "canary-10", role: "qa-lead", person: F.quinn)),
            "is not in policies/allowed_signers", "squash")
    }

    // MARK: Plan and role failures

    @Test func stalePlanBlob() throws {
        let repo = try ApprovalRepo()
        try repo.approveViaPullRequest(phase: "canary-10", role: "sre", person: F.dana, key: Keys.dana)
        let path = repo.approvalPath(phase: "canary-10", role: "sre", person: F.dana)
        #expect(try repo.status(path).counted)
        try repo.fixture.commitFiles(
            [ApprovalRepo.planPath: F.plan(name: ApprovalRepo.rollout, description: "edited")],
            "Edit the plan")
        expectNotCounted(try repo.status(path), "stale", "approve the current plan again")
    }

    @Test func selfApprovalIsForbidden() throws {
        let repo = try ApprovalRepo(planAuthor: F.dana)
        try repo.approveViaPullRequest(phase: "canary-10", role: "sre", person: F.dana, key: Keys.dana)
        try repo.approveViaPullRequest(phase: "canary-10", role: "qa-lead", person: F.quinn, key: Keys.quinn)
        expectNotCounted(
            try repo.status(repo.approvalPath(phase: "canary-10", role: "sre", person: F.dana)),
            "self-approval", "dana@example.com authored", "which changed plan.json")
        #expect(try repo.status(repo.approvalPath(phase: "canary-10", role: "qa-lead", person: F.quinn)).counted)

        // Without forbidSelfApproval the same approval counts.
        let lenient = try ApprovalRepo(forbidSelfApproval: false, planAuthor: F.dana)
        try lenient.approveViaPullRequest(phase: "canary-10", role: "sre", person: F.dana, key: Keys.dana)
        #expect(try lenient.status(lenient.approvalPath(phase: "canary-10", role: "sre", person: F.dana)).counted)
    }

    @Test func selfApprovalCannotHideBehindAnotherAuthorsEmail() throws {
        // Dana commits a plan change under Robin's name, but signs it with her own key.
        let repo = try ApprovalRepo()
        try repo.fixture.signedCommitFiles(
            [ApprovalRepo.planPath: F.plan(name: ApprovalRepo.rollout, description: "edited by dana")],
            "Edit the plan", key: Keys.dana, author: F.robin)
        try repo.approveViaPullRequest(phase: "canary-10", role: "sre", person: F.dana, key: Keys.dana)
        expectNotCounted(
            try repo.status(repo.approvalPath(phase: "canary-10", role: "sre", person: F.dana)),
            "self-approval", "dana@example.com signed", "which changed plan.json")
        // Quinn, who neither wrote nor signed it, still counts.
        try repo.approveViaPullRequest(phase: "canary-10", role: "qa-lead", person: F.quinn, key: Keys.quinn)
        #expect(try repo.status(repo.approvalPath(phase: "canary-10", role: "qa-lead", person: F.quinn)).counted)
    }

    @Test func onePersonFillsAtMostOneRolePerPhase() throws {
        var roles = F.defaultRoles
        roles["qa-lead"] = ["quinn@example.com", "dana@example.com"]
        let repo = try ApprovalRepo(roles: roles)
        try repo.approveViaPullRequest(phase: "canary-10", role: "qa-lead", person: F.dana, key: Keys.dana)
        try repo.approveViaPullRequest(phase: "canary-10", role: "sre", person: F.dana, key: Keys.dana)
        let statuses = try repo.statuses()
        #expect(statuses.count == 2)
        #expect(statuses.filter(\.counted).count == 1)
        let loser = try #require(statuses.first { !$0.counted })
        expectNotCounted(loser, "already fills role", "one person fills at most one role")
    }

    @Test func aRoleListedTwiceNeedsTwoApprovers() throws {
        let repo = try ApprovalRepo(canaryApprovals: ["sre", "sre"])
        try repo.approveDirectly(phase: "canary-10", role: "sre", person: F.dana, key: Keys.dana)
        try repo.approveDirectly(phase: "canary-10", role: "sre", person: F.dana, key: Keys.dana, suffix: "-again")
        var statuses = try repo.statuses()
        #expect(statuses.filter(\.counted).count == 1)
        expectNotCounted(
            try #require(statuses.first { !$0.counted }), "a role listed twice needs two different approvers")
        let plan = try #require(try repo.load().snapshot.rollout(named: ApprovalRepo.rollout)?.plan)
        #expect(ApprovalRules.missingRoles(plan: plan, policy: nil, statuses: statuses)[1] == ["sre"])

        try repo.approveViaPullRequest(phase: "canary-10", role: "sre", person: F.sam, key: Keys.sam)
        statuses = try repo.statuses()
        #expect(statuses.filter(\.counted).count == 2)
        #expect(Set(statuses.filter(\.counted).compactMap(\.approver)) == ["dana@example.com", "sam@example.com"])
        #expect(ApprovalRules.missingRoles(plan: plan, policy: nil, statuses: statuses)[1].isEmpty)
    }

    @Test func nonMember() throws {
        let repo = try ApprovalRepo()
        try repo.approveViaPullRequest(phase: "canary-10", role: "sre", person: F.pat, key: Keys.pat)
        expectNotCounted(
            try repo.status(repo.approvalPath(phase: "canary-10", role: "sre", person: F.pat)),
            "pat@example.com is not a member of role \"sre\"")
    }

    @Test func approvalAtTheWrongPath() throws {
        let repo = try ApprovalRepo()
        // The file says production, its folder says canary-10.
        try repo.approveViaPullRequest(
            phase: "canary-10", role: "product-owner", person: F.pat, key: Keys.pat,
            bodyPhase: "production")
        let status = try repo.status(repo.approvalPath(phase: "canary-10", role: "product-owner", person: F.pat))
        expectNotCounted(
            status, "invalid approval file", "\"phase\" is \"production\" but the file is under approvals/canary-10/")
    }

    @Test func approvalOnlyOnAnUnmergedBranchIsNotListed() throws {
        let repo = try ApprovalRepo()
        let fixture = repo.fixture
        try fixture.git("checkout", "-q", "-b", "pending", "main")
        try fixture.write(
            repo.approvalPath(phase: "canary-10", role: "sre", person: F.dana),
            try repo.approvalText(phase: "canary-10", role: "sre", approver: F.dana.email))
        try fixture.signedCommit("Approve", key: Keys.dana, author: F.dana)
        // HEAD is on the unmerged branch; the protected branch is still read.
        let loaded = try repo.load()
        #expect(loaded.ref == "main")
        #expect(loaded.approvals[ApprovalRepo.rollout] == [])
        // Reading the branch itself does list it.
        #expect(try repo.load(ref: "pending").approvals[ApprovalRepo.rollout]?.count == 1)
    }

    @Test func addedRemovedAndAddedAgainCountsFromItsLastAddition() throws {
        let repo = try ApprovalRepo(identity: "author")
        let fixture = repo.fixture
        let path = repo.approvalPath(phase: "canary-10", role: "sre", person: F.dana)
        let text = try repo.approvalText(phase: "canary-10", role: "sre", approver: F.dana.email)
        // Dana adds it, it is removed, and robin adds the very same bytes again.
        let first = try fixture.commitFiles([path: text], "Approve", author: F.dana)
        #expect(try repo.status(path).counted)
        #expect(try repo.status(path).commit == first)
        try fixture.remove(path)
        try fixture.commit("Remove approval")
        let again = try fixture.commitFiles([path: text], "Approve again", author: F.robin)
        let status = try repo.status(path)
        #expect(status.commit == again)
        expectNotCounted(status, "authored by robin@example.com, not by the approver dana@example.com")

        // And the other way round: robin first, dana's re-addition counts.
        try fixture.remove(path)
        try fixture.commit("Remove approval")
        let last = try fixture.commitFiles([path: text], "Approve once more", author: F.dana)
        let recounted = try repo.status(path)
        #expect(recounted.commit == last)
        #expect(recounted.counted, "\(recounted.reason ?? "")")
    }

    @Test func blobChangedAndChangedBackCountsFromTheLastChange() throws {
        let repo = try ApprovalRepo(identity: "author")
        let fixture = repo.fixture
        let path = repo.approvalPath(phase: "canary-10", role: "sre", person: F.dana)
        let text = try repo.approvalText(phase: "canary-10", role: "sre", approver: F.dana.email)
        try fixture.commitFiles([path: text], "Approve", author: F.dana)
        try fixture.commitFiles(
            [path: text.replacingOccurrences(of: "\n}", with: ",\n  \"comment\": \"x\"\n}")], "Comment",
            author: F.robin)
        let back = try fixture.commitFiles([path: text], "Revert comment", author: F.robin)
        let status = try repo.status(path)
        #expect(status.commit == back)
        expectNotCounted(status, "authored by robin@example.com")
    }

    // MARK: Author mode

    @Test func authorModeCountsTheAuthorAndRejectsOthers() throws {
        let repo = try ApprovalRepo(identity: "author")
        try repo.approveViaPullRequest(phase: "canary-10", role: "sre", person: F.dana, key: nil)
        #expect(try repo.status(repo.approvalPath(phase: "canary-10", role: "sre", person: F.dana)).counted)
        // Robin commits an approval in quinn's name.
        try repo.approveViaPullRequest(phase: "canary-10", role: "qa-lead", person: F.quinn, key: nil, author: F.robin)
        expectNotCounted(
            try repo.status(repo.approvalPath(phase: "canary-10", role: "qa-lead", person: F.quinn)),
            "was authored by robin@example.com, not by the approver quinn@example.com")
        // Squash in author mode: the squash commit's author decides.
        try repo.approveViaPullRequest(
            phase: "canary-10", role: "engineering-lead", person: F.erin, key: nil,
            merge: .squash(author: F.service, key: nil))
        expectNotCounted(
            try repo.status(repo.approvalPath(phase: "canary-10", role: "engineering-lead", person: F.erin)),
            "authored by noreply@git.example.com")
    }

    /// Author mode trusts the author field: anyone who can merge can forge it. This is why
    /// SPEC §4 offers ssh-signature mode; the test documents the limit.
    @Test func authorModeCannotDetectAForgedAuthor() throws {
        let repo = try ApprovalRepo(identity: "author")
        try repo.approveViaPullRequest(phase: "canary-10", role: "sre", person: F.dana, key: nil)  // made by anyone
        #expect(try repo.status(repo.approvalPath(phase: "canary-10", role: "sre", person: F.dana)).counted)
    }

    // MARK: Cache

    static func busyRepository() throws -> ApprovalRepo {
        let repo = try ApprovalRepo()
        try repo.approveViaPullRequest(phase: "canary-10", role: "sre", person: F.dana, key: Keys.dana)
        for index in 0..<5 {
            try repo.fixture.commitFiles(
                ["rollouts/other-\(index)/plan.json": F.plan(name: "other-\(index)")], "Other \(index)")
        }
        try repo.approveViaPullRequest(
            phase: "canary-10", role: "qa-lead", person: F.quinn, key: Keys.quinn,
            merge: .squash(author: F.quinn, key: Keys.quinn))
        try repo.approveDirectly(phase: "canary-10", role: "engineering-lead", person: F.erin, key: Keys.erin)
        return repo
    }

    @Test func unchangedRepositoryReadsNoCommitsOnTheSecondLoad() throws {
        let repo = try Self.busyRepository()
        let cacheDir = try TemporaryDirectory()
        let cache = cacheDir.file("scan.json")
        let cold = try repo.load(cacheFile: cache)
        #expect(cold.scanStatistics.commitsWalked > 10)
        #expect(!cold.scanStatistics.usedCache)
        #expect(FileManager.default.fileExists(atPath: cache))
        let warm = try repo.load(cacheFile: cache)
        #expect(warm.scanStatistics.commitsWalked == 0)
        #expect(warm.scanStatistics.commitsDescribed == 0)
        #expect(warm.scanStatistics.usedCache)
        #expect(!warm.scanStatistics.cacheDiscarded)
        #expect(warm.approvals == cold.approvals)
        #expect(warm.approvals[ApprovalRepo.rollout]?.filter(\.counted).count == 3)
    }

    @Test func oneNewCommitReadsOnlyAFewCommits() throws {
        let repo = try Self.busyRepository()
        let cacheDir = try TemporaryDirectory()
        let cache = cacheDir.file("scan.json")
        _ = try repo.load(cacheFile: cache)

        try repo.approveDirectly(phase: "production", role: "product-owner", person: F.pat, key: Keys.pat)
        let warm = try repo.load(cacheFile: cache)
        #expect(warm.scanStatistics.usedCache)
        #expect(!warm.scanStatistics.cacheDiscarded)
        #expect(warm.scanStatistics.commitsWalked <= 4, "walked \(warm.scanStatistics.commitsWalked)")
        #expect(warm.scanStatistics.commitsDescribed == 1)
        let cold = try repo.load()
        #expect(warm.approvals == cold.approvals)
        #expect(warm.approvals[ApprovalRepo.rollout]?.filter(\.counted).count == 4)

        // An unrelated commit outside rollouts/.
        try repo.fixture.commitFiles(["README.md": "hello"], "Docs")
        let docs = try repo.load(cacheFile: cache)
        #expect(docs.scanStatistics.usedCache)
        #expect(docs.scanStatistics.commitsWalked <= 2, "walked \(docs.scanStatistics.commitsWalked)")
        #expect(docs.scanStatistics.commitsDescribed == 0)
        #expect(docs.approvals == cold.approvals)
    }

    @Test func rewrittenHistoryIsDetectedAndEqualsAColdScan() throws {
        let repo = try Self.busyRepository()
        let fixture = repo.fixture
        let cacheDir = try TemporaryDirectory()
        let cache = cacheDir.file("scan.json")
        let older = try fixture.git("rev-parse", "HEAD~3")
        try repo.approveDirectly(phase: "production", role: "product-owner", person: F.pat, key: Keys.pat)
        _ = try repo.load(cacheFile: cache)

        // Force-push: main goes back, and new commits are made on top.
        try fixture.git("reset", "-q", "--hard", older)
        try repo.approveDirectly(phase: "production", role: "product-owner", person: F.pat, key: Keys.mallory)
        try repo.approveViaPullRequest(
            phase: "canary-10", role: "engineering-lead", person: F.erin, key: Keys.erin,
            merge: .fastForward)
        let warm = try repo.load(cacheFile: cache)
        #expect(warm.scanStatistics.cacheDiscarded)
        let cold = try repo.load()
        #expect(warm.approvals == cold.approvals)
        #expect(warm.revision == cold.revision)
        let po = try #require(warm.approvals[ApprovalRepo.rollout]?.first { $0.role == "product-owner" })
        expectNotCounted(po, "is not in policies/allowed_signers")

        // And the rebuilt cache serves the next load.
        let again = try repo.load(cacheFile: cache)
        #expect(again.scanStatistics.commitsWalked == 0)
        #expect(again.approvals == cold.approvals)
    }

    @Test func rewrittenHistoryWithTheSameFilesButDifferentCommits() throws {
        // The same approval bytes, re-committed by someone else after a reset: the cache must not
        // keep the old (signed) approval commit.
        let repo = try ApprovalRepo()
        let fixture = repo.fixture
        let cacheDir = try TemporaryDirectory()
        let cache = cacheDir.file("scan.json")
        let base = try fixture.head()
        try repo.approveDirectly(phase: "canary-10", role: "sre", person: F.dana, key: Keys.dana)
        let path = repo.approvalPath(phase: "canary-10", role: "sre", person: F.dana)
        #expect(try repo.load(cacheFile: cache).approvals[ApprovalRepo.rollout]?.first?.counted == true)

        try fixture.git("reset", "-q", "--hard", base)
        try repo.approveDirectly(phase: "canary-10", role: "sre", person: F.dana, key: nil)
        let warm = try repo.load(cacheFile: cache)
        let cold = try repo.load()
        #expect(warm.approvals == cold.approvals)
        expectNotCounted(try #require(warm.approvals[ApprovalRepo.rollout]?.first { $0.path == path }), "is not signed")
    }

    @Test func corruptCacheIsIgnoredAndRebuilt() throws {
        let repo = try Self.busyRepository()
        let cacheDir = try TemporaryDirectory()
        let cache = cacheDir.file("scan.json")
        var garbage = Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7919) })
        garbage.append(contentsOf: Array("{\"scan\": ".utf8))
        try garbage.write(to: URL(fileURLWithPath: cache))
        let first = try repo.load(cacheFile: cache)
        #expect(!first.scanStatistics.usedCache)
        #expect(first.approvals == (try repo.load()).approvals)
        let rebuilt = try Data(contentsOf: URL(fileURLWithPath: cache))
        #expect(rebuilt != garbage)
        #expect(rebuilt.prefix(8) == Data("rctlwalk".utf8))
        let second = try repo.load(cacheFile: cache)
        #expect(second.scanStatistics.commitsWalked == 0)
        #expect(second.approvals == first.approvals)

        // A truncated cache too.
        try rebuilt.prefix(rebuilt.count / 2).write(to: URL(fileURLWithPath: cache))
        let third = try repo.load(cacheFile: cache)
        #expect(third.approvals == first.approvals)
        #expect(try repo.load(cacheFile: cache).scanStatistics.commitsWalked == 0)
    }

    @Test func everyTruncationOrDamageOfTheCacheIsIgnored() throws {
        let repo = try Self.busyRepository()
        let cacheDir = try TemporaryDirectory()
        let cache = cacheDir.file("scan.json")
        let cold = try repo.load(cacheFile: cache)
        let good = try Data(contentsOf: URL(fileURLWithPath: cache))
        #expect(good.count > 64)
        // Cut anywhere (the header, inside a field, one byte short): a cold scan, then a rebuilt cache.
        for length in [0, 7, 8, 20, 31, 32, 40, good.count / 3, good.count / 2, good.count - 21, good.count - 1] {
            try good.prefix(length).write(to: URL(fileURLWithPath: cache))
            let load = try repo.load(cacheFile: cache)
            #expect(!load.scanStatistics.usedCache, "truncated to \(length)")
            #expect(load.approvals == cold.approvals, "truncated to \(length)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: cache)) == good, "rebuilt after truncation to \(length)")
        }
        // One flipped byte anywhere (header, repository, ids, commit facts): the checksum or the header rejects it.
        for position in [0, 9, 13, 17, 25, 33, 40, good.count / 2, good.count - 1] {
            var damaged = good
            damaged[position] ^= 0x20
            try damaged.write(to: URL(fileURLWithPath: cache))
            let load = try repo.load(cacheFile: cache)
            #expect(!load.scanStatistics.usedCache, "byte \(position) flipped")
            #expect(load.approvals == cold.approvals, "byte \(position) flipped")
        }
        // Trailing bytes after a good file.
        try (good + Data([0])).write(to: URL(fileURLWithPath: cache))
        #expect(!(try repo.load(cacheFile: cache)).scanStatistics.usedCache)
        // The old JSON cache is not this format either.
        try Data("{\"repository\": \"\(repo.path)\", \"scan\": {}}".utf8).write(to: URL(fileURLWithPath: cache))
        #expect(!(try repo.load(cacheFile: cache)).scanStatistics.usedCache)
        #expect(try repo.load(cacheFile: cache).scanStatistics.commitsWalked == 0)
    }

    @Test func cacheOfAnotherRepositoryIsNotUsed() throws {
        let one = try Self.busyRepository()
        let two = try ApprovalRepo()
        try two.approveDirectly(phase: "canary-10", role: "sre", person: F.dana, key: nil)
        let cacheDir = try TemporaryDirectory()
        let cache = cacheDir.file("scan.json")
        _ = try one.load(cacheFile: cache)
        let other = try two.load(cacheFile: cache)
        #expect(!other.scanStatistics.usedCache)
        #expect(other.approvals == (try two.load()).approvals)
    }
}
