import Foundation
import RolloutAdapters
import RolloutCore
import RolloutTestSupport
import Testing

@testable import RolloutKit

/// SSH keys for the signature-mode reconcile tests (ssh-keygen once per process).
enum SignedKeys {
    static let erin = try! SSHTestKey(comment: "erin")
    static let quinn = try! SSHTestKey(comment: "quinn")
    static let dana = try! SSHTestKey(comment: "dana")
    static let pat = try! SSHTestKey(comment: "pat")
    static let robin = try! SSHTestKey(comment: "robin")
    static let mallory = try! SSHTestKey(comment: "mallory")

    static var allowedSigners: String {
        [
            erin.allowedSignersLine("erin@example.com"), quinn.allowedSignersLine("quinn@example.com"),
            dana.allowedSignersLine("dana@example.com"), pat.allowedSignersLine("pat@example.com"),
            robin.allowedSignersLine("robin@example.com"),
        ].joined(separator: "\n") + "\n"
    }
}

/// EXP-001 end to end in signature mode, with the project's own production floor (every phase that
/// raises production exposure needs an SRE), and the attacks of issue 8 tried against `reconcile`:
/// each leaves production at 0.
@Suite(.serialized) struct SignedReconcileTests {
    typealias F = RolloutFixtures
    typealias K = SignedKeys
    static let rollout = "exp-001-autosave"
    static let planPath = "rollouts/exp-001-autosave/plan.json"
    static let policy = F.policy(
        identity: "ssh-signature", roles: F.exp001Roles,
        policyApprovals: ["engineering-lead", "sre"], environments: ["production": ["sre"]])

    /// A world whose policy is in signature mode and whose plan Robin signed; `init` has run and
    /// staging is at 100%.
    func world() async throws -> RolloutWorld {
        let metrics = try MetricsFile(MetricsFile.healthy)
        let w = try RolloutWorld(metrics: FileMetricsProvider(path: metrics.path))
        w.retained.append(metrics)
        try w.repo.signedCommitFiles(
            [
                "policies/approvers.json": Self.policy, "policies/allowed_signers": K.allowedSigners,
                Self.planPath: RolloutWorld.exp001Plan(),
            ], "Add EXP-001", key: K.robin, author: RolloutWorld.robin)
        _ = try await w.initialise()
        let first = try await w.run(hours: 0)
        #expect(first.rollout()?.nextPhase == "staging")
        #expect(try await w.flagState()["staging"] == FlagEnvironmentState(enabled: true, coverage: 100))
        return w
    }

    /// A signed approval through a pull request merged with a merge commit.
    func approve(
        _ w: RolloutWorld, _ phase: String, role: String, by person: GitFixture.Person, key: SSHTestKey,
        approver: String? = nil, file: String? = nil
    ) throws {
        let blob = try w.planBlob()
        let branch = "approve-\(phase)-\(role)-\(UUID().uuidString.prefix(6))"
        try w.repo.git("switch", "-q", "-c", branch, "main")
        let text = F.approval(
            rollout: Self.rollout, phase: phase, role: role, approver: approver ?? person.email,
            plan: blob)
        try w.repo.signedCommitFiles(
            ["rollouts/\(Self.rollout)/approvals/\(phase)/\(file ?? role).json": text],
            "Approve \(phase) as \(role)", key: key, author: person)
        try w.repo.git("switch", "-q", "main")
        try w.repo.git("merge", "-q", "--no-ff", "-m", "Merge \(branch)", branch, author: F.service)
    }

    func production(_ w: RolloutWorld) async throws -> FlagEnvironmentState? {
        try await w.flagState()["production"]
    }

    func expectProductionClosed(_ w: RolloutWorld, hours: Double, sourceLocation: SourceLocation = #_sourceLocation)
        async throws -> RolloutReport?
    {
        let report = try await w.run(hours: hours)
        let state = try await production(w)
        #expect(
            state == nil || state?.enabled == false, "production: \(String(describing: state))",
            sourceLocation: sourceLocation)
        return report.rollout()
    }

    @Test func exp001FlowInSignatureModeWithMergeCommits() async throws {
        let w = try await world()
        try approve(w, "canary-10", role: "engineering-lead", by: RolloutWorld.erin, key: K.erin)
        try approve(w, "canary-10", role: "qa-lead", by: RolloutWorld.quinn, key: K.quinn)
        try approve(w, "canary-10", role: "sre", by: RolloutWorld.dana, key: K.dana)
        let entered = try await w.run(hours: 1)
        #expect(
            try await production(w) == FlagEnvironmentState(enabled: true, coverage: 10),
            "\(entered.rollout()?.blockers.map(\.detail) ?? []) \(entered.rollout()?.approvals.map { $0.reason ?? "ok" } ?? [])"
        )

        // canary-50 raises production: the floor asks an SRE, whatever the plan lists.
        let blocked = try await w.run(hours: 26)
        #expect(blocked.rollout()?.blockers.contains { $0.kind == .approval && $0.role == "sre" } == true)
        #expect(try await production(w)?.coverage == 10)
        try approve(w, "canary-50", role: "sre", by: RolloutWorld.dana, key: K.dana)
        _ = try await w.run(hours: 27)
        #expect(try await production(w) == FlagEnvironmentState(enabled: true, coverage: 50))

        try approve(w, "production", role: "product-owner", by: RolloutWorld.pat, key: K.pat)
        try approve(w, "production", role: "sre", by: RolloutWorld.dana, key: K.dana)
        let done = try await w.run(hours: 52)
        #expect(try await production(w) == FlagEnvironmentState(enabled: true, coverage: 100))
        #expect(done.rollout()?.approvals.allSatisfy(\.counted) == true)
    }

    // MARK: The attacks, each leaving production closed

    @Test func policyChangeThatAddsItsAuthorToARoleOpensNothing() async throws {
        let w = try await world()
        var roles = F.exp001Roles
        roles["sre"] = ["dana@example.com", "mallory@example.com"]
        let policy = F.policy(
            identity: "ssh-signature", roles: roles, policyApprovals: ["engineering-lead", "sre"],
            environments: ["production": ["sre"]])
        try w.repo.signedCommitFiles(
            [
                "policies/approvers.json": policy,
                "policies/allowed_signers": K.allowedSigners + K.mallory.allowedSignersLine("mallory@example.com")
                    + "\n",
            ], "Add mallory", key: K.robin, author: RolloutWorld.robin)
        try approve(w, "canary-10", role: "engineering-lead", by: RolloutWorld.erin, key: K.erin)
        try approve(w, "canary-10", role: "qa-lead", by: RolloutWorld.quinn, key: K.quinn)
        try approve(w, "canary-10", role: "sre", by: F.mallory, key: K.mallory)
        let report = try await expectProductionClosed(w, hours: 1)
        let mallory = report?.approvals.first { $0.approver == F.mallory.email }
        #expect(mallory?.counted == false)
        #expect(report?.blockers.contains { $0.role == "sre" } == true)
    }

    @Test func planThatDropsItsGatesStillNeedsTheFloor() async throws {
        let w = try await world()
        let plan = RolloutWorld.exp001Plan().replacingOccurrences(
            of: #""approvals": ["engineering-lead", "qa-lead", "sre"] "#, with: ""
        )
        .replacingOccurrences(of: #""bake": "24h","#, with: #""bake": "24h""#, options: [], range: nil)
        #expect(plan != RolloutWorld.exp001Plan())
        try w.repo.signedCommitFiles([Self.planPath: plan], "No gates", key: K.robin, author: RolloutWorld.robin)
        let report = try await expectProductionClosed(w, hours: 1)
        #expect(
            report?.blockers.contains { $0.kind == .approval && $0.role == "sre" } == true,
            "\(report?.blockers.map(\.detail) ?? [])")
    }

    @Test func replayedApprovalOpensNothing() async throws {
        let w = try await world()
        try approve(w, "canary-10", role: "engineering-lead", by: RolloutWorld.erin, key: K.erin)
        try approve(w, "canary-10", role: "qa-lead", by: RolloutWorld.quinn, key: K.quinn)
        try approve(w, "canary-10", role: "sre", by: RolloutWorld.dana, key: K.dana)
        let path = "rollouts/\(Self.rollout)/approvals/canary-10/sre.json"
        let approval = try w.repo.git("rev-list", "-n", "1", "main", "--no-merges", "--", path)
        // Dana withdraws before any run; Mallory merges a branch from her commit back, keeping the file.
        try w.repo.remove(path)
        try w.repo.signedCommit("Withdraw", key: K.dana, author: RolloutWorld.dana)
        try w.repo.git("switch", "-q", "-c", "replay", approval)
        try w.repo.commitFiles(["notes.txt": "x"], "Unrelated", author: F.mallory)
        try w.repo.git("switch", "-q", "main")
        try w.repo.git("merge", "-q", "--no-ff", "--no-commit", "replay", author: F.mallory)
        try w.repo.git("checkout", "replay", "--", path)
        try w.repo.commit("Merge replay", author: F.mallory)
        let report = try await expectProductionClosed(w, hours: 1)
        let sre = report?.approvals.first { $0.path == path }
        #expect(sre?.reason?.contains("approval commit not found on the merged side") == true, "\(sre?.reason ?? "")")
    }

    @Test func launderedSelfApprovalOpensNothing() async throws {
        let w = try await world()
        try w.repo.signedCommitFiles(
            [
                Self.planPath: RolloutWorld.exp001Plan(name: Self.rollout)
                    .replacingOccurrences(of: "\"state\": \"active\"", with: "\"state\": \"active\" ")
            ],
            "Dana's change", key: K.dana, author: RolloutWorld.dana)
        try w.repo.signedCommitFiles(
            [Self.planPath: RolloutWorld.exp001Plan()], "Whitespace", key: K.robin,
            author: RolloutWorld.robin)
        try approve(w, "canary-10", role: "engineering-lead", by: RolloutWorld.erin, key: K.erin)
        try approve(w, "canary-10", role: "qa-lead", by: RolloutWorld.quinn, key: K.quinn)
        try approve(w, "canary-10", role: "sre", by: RolloutWorld.dana, key: K.dana)
        let report = try await expectProductionClosed(w, hours: 1)
        let dana = report?.approvals.first { $0.approver == RolloutWorld.dana.email }
        #expect(dana?.reason?.contains("self-approval") == true, "\(dana?.reason ?? "")")
    }

    @Test func revertedPlanDoesNotBringBackOldApprovals() async throws {
        let w = try await world()
        let original = RolloutWorld.exp001Plan()
        try approve(w, "canary-10", role: "engineering-lead", by: RolloutWorld.erin, key: K.erin)
        try approve(w, "canary-10", role: "qa-lead", by: RolloutWorld.quinn, key: K.quinn)
        try approve(w, "canary-10", role: "sre", by: RolloutWorld.dana, key: K.dana)
        try w.repo.signedCommitFiles(
            [
                Self.planPath: original.replacingOccurrences(
                    of: "\"coverage\": 10,",
                    with: "\"coverage\": 5,")
            ],
            "Smaller canary", key: K.robin, author: RolloutWorld.robin)
        try w.repo.signedCommitFiles([Self.planPath: original], "Back to 10", key: K.robin, author: RolloutWorld.robin)
        let report = try await expectProductionClosed(w, hours: 1)
        #expect(report?.approvals.allSatisfy { !$0.counted } == true)
        #expect(report?.approvals.first?.reason?.contains("merged before the plan took its current content") == true)
    }

    @Test func oneKeyForTwoPrincipalsOpensNothing() async throws {
        // Quinn's key is (carelessly) also listed for dana in the root policy of this world.
        let metrics = try MetricsFile(MetricsFile.healthy)
        let w2 = try RolloutWorld(metrics: FileMetricsProvider(path: metrics.path))
        w2.retained.append(metrics)
        try w2.repo.signedCommitFiles(
            [
                "policies/approvers.json": Self.policy,
                "policies/allowed_signers": K.allowedSigners + K.quinn.allowedSignersLine("dana@example.com") + "\n",
                Self.planPath: RolloutWorld.exp001Plan(),
            ], "Add EXP-001", key: K.robin, author: RolloutWorld.robin)
        _ = try await w2.initialise()
        _ = try await w2.run(hours: 0)
        try approve(w2, "canary-10", role: "engineering-lead", by: RolloutWorld.erin, key: K.erin)
        try approve(w2, "canary-10", role: "qa-lead", by: RolloutWorld.quinn, key: K.quinn)
        try approve(w2, "canary-10", role: "sre", by: RolloutWorld.dana, key: K.quinn)
        let report = try await expectProductionClosed(w2, hours: 1)
        #expect(report?.approvals.filter(\.counted).count == 2)
        #expect(report?.approvals.contains { $0.reason?.contains("one key fills at most one role") == true } == true)
    }

    @Test func planJSONShowsThePendingPolicyAndTheOldPolicyGoverns() async throws {
        let w = try await world()
        var roles = F.exp001Roles
        roles["qa-lead"] = ["quinn@example.com", "robin@example.com"]
        let proposed = F.policy(
            identity: "ssh-signature", roles: roles, policyApprovals: ["engineering-lead", "sre"],
            environments: ["production": ["sre"]])
        try w.repo.signedCommitFiles(
            ["policies/approvers.json": proposed], "Robin joins QA", key: K.robin,
            author: RolloutWorld.robin)
        let report = try await w.run(.plan, hours: 1)
        let pending = try #require(report.policy?.pending)
        #expect(pending.missing == ["engineering-lead", "sre"])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(report.json().utf8)) as? [String: Any])
        let policy = try #require(json["policy"] as? [String: Any])
        let pendingJSON = try #require(policy["pending"] as? [String: Any])
        #expect(pendingJSON["missing"] as? [String] == ["engineering-lead", "sre"])
        #expect((policy["inForce"] as? [String: Any])?["digest"] as? String != pendingJSON["digest"] as? String)
        #expect(
            report.human(style: Style(enabled: false)).contains(
                "not in force: needs approval from engineering-lead, sre"))
    }
}
