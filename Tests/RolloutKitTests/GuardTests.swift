import Foundation
import RolloutAdapters
import RolloutCore
import RolloutGit
import RolloutTestSupport
import Testing

@testable import RolloutKit

/// SPEC §5 rules 7, 8 and 13 [r3]: no merge disarms a rollback. The state keeps each rollout's guard (the
/// rollback and notify checks of the latest plan whose gates held) and applies it whenever the current plan
/// cannot be trusted. Repositories made by `git`, a real SQLite state, the embedded flag store.
@Suite(.serialized) struct GuardTests {
    static let breach = ["error-rate": 0.05, "latency-p95-delta": 0.05, "submission-success": 0.98]

    /// EXP-001 at canary-10 (staging 100%, production 10%), healthy.
    func atCanary10() async throws -> (RolloutWorld, MetricsFile, String) {
        let metrics = try MetricsFile(MetricsFile.healthy)
        let world = try RolloutWorld(metrics: FileMetricsProvider(path: metrics.path))
        try world.seed()
        _ = try await world.run(hours: 0)
        try world.approveCanary10()
        let report = try await world.run(hours: 1)
        #expect(try await world.flagState()["production"] == .on(10))
        let blob = try world.planBlob()
        // The run whose gates held kept this plan's checks as the guard.
        #expect(report.rollout()?.guardedBy == blob)
        return (world, metrics, blob)
    }

    @Test func aPlanBrokenByASyntaxErrorStillRollsBackOnABreach() async throws {
        let (world, metrics, blob) = try await atCanary10()
        try world.editPlan("{ \"apiVersion\": \"rolloutctl/v1\", ", message: "Broken merge")
        try metrics.set(Self.breach)
        let plan = try await world.run(.plan, hours: 2)
        #expect(plan.rollout()?.status == .rolledBack)
        #expect(plan.rollout()?.guardNote?.contains("guarded by the checks of plan \(blob.prefix(7))") == true)
        #expect(plan.rollout()?.guardedBy == blob)
        #expect(try await world.flagState()["production"] == .on(10))  // plan changes nothing

        let report = try await world.run(hours: 2)
        let rollout = try #require(report.rollout())
        #expect(rollout.status == .rolledBack)
        #expect(rollout.changes.map(\.environment) == ["production", "staging"])
        #expect(try await world.flagState() == ["staging": .disabled, "production": .disabled])
        let outbox = try SQLiteStateStore(path: world.statePath).outbox()
        #expect(outbox.count == 1)
        #expect(outbox.first?.message.body.contains("rolled-back") == true)
        // Healthy again and still broken: nothing is raised, the rollback stays.
        try metrics.set(MetricsFile.healthy)
        let later = try await world.run(hours: 30)
        #expect(later.rollout()?.changes.isEmpty == true)
        #expect(try await world.flagState() == ["staging": .disabled, "production": .disabled])
    }

    @Test func anUnapprovedEditThatDropsTheRollbackChecksIsStillGuardedByThem() async throws {
        let (world, metrics, blob) = try await atCanary10()
        let onlyHold = """
                { "name": "latency-p95-delta", "query": "p95_delta", "max": 0.20, "onBreach": "hold" }
            """
        try world.editPlan(RolloutWorld.exp001Plan(checks: onlyHold), message: "Drop the rollback checks")
        try metrics.set(Self.breach)
        let report = try await world.run(hours: 2)
        let rollout = try #require(report.rollout())
        #expect(rollout.status == .rolledBack, "\(rollout.blockers)")
        #expect(rollout.guardNote?.contains(String(blob.prefix(7))) == true)
        #expect(try await world.flagState() == ["staging": .disabled, "production": .disabled])
    }

    @Test func anOrphanedRolloutIsGuardedUntilItIsRolledBack() async throws {
        let (world, metrics, _) = try await atCanary10()
        try world.repo.remove("rollouts/exp-001-autosave")
        try world.repo.commit("Remove the rollout folder", author: RolloutWorld.robin)
        try metrics.set(Self.breach)
        let report = try await world.run(hours: 2)
        let rollout = try #require(report.rollout())
        #expect(rollout.status == .rolledBack)
        #expect(try await world.flagState() == ["staging": .disabled, "production": .disabled])
    }

    @Test func aPlanFixedAfterASyntaxErrorContinuesWhereItWasAndIsNeverLoweredWhileHealthy() async throws {
        let (world, _, _) = try await atCanary10()
        let good = try String(
            decoding: Data(world.repo.git("show", "main:rollouts/exp-001-autosave/plan.json").utf8), as: UTF8.self)
        try world.editPlan("{ broken", message: "Broken merge")
        let broken = try await world.run(hours: 2)
        #expect(broken.rollout()?.status == .invalid)
        #expect(broken.rollout()?.changes.isEmpty == true)
        #expect(try await world.flagState()["production"] == .on(10))
        try world.editPlan(good + "\n", message: "Fix the plan")
        let fixed = try await world.run(hours: 3)
        #expect(fixed.rollout()?.changes.isEmpty == true)
        #expect(try await world.flagState()["production"] == .on(10))
    }

    @Test func withoutAGuardThePlanSaysNothingGuardsIt() async throws {
        let world = try RolloutWorld()
        try world.seed(plan: "{ broken")
        let report = try await world.run(.plan, hours: 0)
        #expect(report.rollout()?.guardedBy == nil)
        #expect(report.rollout()?.guardNote?.contains("nothing guards it") == true)
    }

    // MARK: SPEC §4.0 rule 5: the first-parent line only grows

    @Test func aTipBehindTheRecordedOneRaisesNothingAndExitsZero() async throws {
        let metrics = try MetricsFile(MetricsFile.healthy)
        let world = try RolloutWorld(metrics: FileMetricsProvider(path: metrics.path))
        try world.seed()
        _ = try await world.run(hours: 0)
        let beforeApprovals = try world.repo.head()
        try world.approveCanary10()
        _ = try await world.run(hours: 1)
        let recorded = try world.repo.head()
        #expect(try await world.flagState()["production"] == .on(10))
        // Production is lowered by a plan edit; then a late clone reads the old tip.
        try world.editPlan(RolloutWorld.exp001Plan(state: "aborted"), message: "Abort")
        _ = try await world.run(hours: 2)
        let abortedTip = try world.repo.head()
        #expect(try await world.flagState()["production"] == .disabled)
        try world.repo.git("update-ref", "refs/heads/main", recorded)
        let late = try await world.run(hours: 3)
        // Behind: no new tip is recorded (§4.0 rule 5).
        let kept = try SQLiteStateStore(path: world.statePath).keptValues(prefix: TipTrust.keyPrefix)
        #expect(kept[TipTrust.tipKey] == abortedTip)
        #expect(late.errorCount == 0)
        #expect(late.rollout()?.changes.isEmpty == true)
        #expect(late.rollout()?.blockers.contains { $0.detail.contains("is behind") } == true)
        #expect(try await world.flagState()["production"] == .disabled)
        try world.repo.git("update-ref", "refs/heads/main", beforeApprovals)
        _ = try await world.run(hours: 4)
        #expect(try await world.flagState()["production"] == .disabled)
    }

    @Test func aRewrittenHistoryIsNotTrustedUntilAnOperatorAdoptsIt() async throws {
        let metrics = try MetricsFile(MetricsFile.healthy)
        let world = try RolloutWorld(metrics: FileMetricsProvider(path: metrics.path))
        try world.seed()
        _ = try await world.run(hours: 0)
        try world.approveCanary10()
        _ = try await world.run(hours: 1)
        // A force-push: main moved to another line that replays the approvals as new commits.
        try world.repo.git("reset", "-q", "--hard", "HEAD~3")
        try world.repo.commitFiles(["README.md": "rewritten\n"], "Rewrite", author: RolloutWorld.robin)
        try world.approveCanary10(suffix: "-again")
        let report = try await world.run(hours: 2)
        #expect(report.errorCount > 0)
        #expect(report.rollout()?.blockers.contains { $0.detail.contains("history rewritten") } == true)
        let first = try SQLiteStateStore(path: world.statePath).outbox().count
        #expect(first == 1)
        _ = try await world.run(hours: 3)
        #expect(try SQLiteStateStore(path: world.statePath).outbox().count == first)  // once per new tip
        // A breach is still rolled back by the guard while the tip is not trusted.
        try metrics.set(Self.breach)
        let breach = try await world.run(hours: 4)
        #expect(breach.rollout()?.status == .rolledBack)
        #expect(try await world.flagState()["production"] == .disabled)
        // The operator accepts the new line.
        _ = try await world.initialise(adopt: true, hours: 5)
        try metrics.set(MetricsFile.healthy)
        let accepted = try await world.run(hours: 6)
        #expect(accepted.rollout()?.blockers.contains { $0.detail.contains("history rewritten") } != true)
        #expect(try await world.flagState()["production"] == .disabled)
        // Approvals start over: those merged on the rewritten line before the accepted tip do not count.
        let approvals = try #require(accepted.rollout()?.approvals)
        #expect(!approvals.isEmpty)
        #expect(approvals.allSatisfy { !$0.counted && $0.reason?.contains("init --adopt") == true }, "\(approvals)")
    }

    // MARK: SPEC §4.0 rule 1: the branch the state recorded

    @Test func aStateWrittenBeforeR3RecordsItsBranchAndTipOnItsFirstRunAudited() async throws {
        let world = try RolloutWorld()
        try world.repo.commitFiles(
            [
                "policies/approvers.json": RolloutWorld.approvers,
                "rollouts/exp-001-autosave/plan.json":
                    RolloutWorld.exp001Plan(),
            ], "Add exp-001", author: RolloutWorld.robin)
        // An r2 state: no branch, no tip, no guards.
        _ = try StateStorageFactory.create(
            world.statePath, installation: Installation(repositoryRoot: try world.repositoryRoot()))
        _ = try await world.run(hours: 0)
        let state = try SQLiteStateStore(path: world.statePath)
        let line = try state.keptValues(prefix: TipTrust.keyPrefix)
        #expect(line[TipTrust.branchKey] == "main")
        #expect(line[TipTrust.tipKey] == (try world.repo.head()))
        #expect(
            try state.history().contains { $0.reason == "branch" && $0.detail?.contains("refs/heads/main") == true })
        #expect(
            try state.keptValues(prefix: GuardRules.keyPrefix).keys.contains(
                GuardRules.key(rollout: "exp-001-autosave")))
    }

    @Test func aPendingPolicyNamingAnotherBranchIsNotFollowed() async throws {
        let world = try RolloutWorld()
        try world.seed()
        _ = try await world.run(hours: 0)
        let main = try world.repo.head()
        // The attacker's branch, and an unapproved policy change that names it.
        try world.repo.git("branch", "evil", main)
        let policy = RolloutWorld.approvers.replacingOccurrences(
            of: "\"protectedBranch\": \"main\"", with: "\"protectedBranch\": \"evil\"")
        #expect(policy != RolloutWorld.approvers)
        try world.repo.commitFiles(["policies/approvers.json": policy], "Protect evil", author: RolloutWorld.robin)
        try world.repo.git("checkout", "-q", "evil")
        try world.repo.commitFiles(["README.md": "evil\n"], "Evil", author: RolloutWorld.robin)
        try world.repo.git("checkout", "-q", "main")
        let report = try await world.run(hours: 1)
        #expect(report.revision == (try world.repo.git("rev-parse", "refs/heads/main")))
        // `plan` without --ref reads what the next reconcile reads: the recorded branch.
        let plan = try await world.run(.plan, hours: 1)
        #expect(plan.revision == (try world.repo.git("rev-parse", "refs/heads/main")))
        // --ref is refused with a state.
        var settings = world.settings(.reconcile(dryRun: false), hours: 2)
        settings.ref = "evil"
        let ports = RunPorts(flags: world.flags, metrics: nil, notifier: world.notifier, logger: world.logger)
        await #expect(throws: RunRefusal.self) { try await Reconciler(settings: settings, ports: ports).run() }
    }

    @Test func aFailedFetchRaisesNothingAndTheGuardStillRollsBack() async throws {
        let (world, metrics, _) = try await atCanary10()
        try metrics.set(Self.breach)
        var settings = world.settings(.reconcile(dryRun: false), hours: 2)
        settings.fetchRemote = world.stateDirectory.file("no-such-remote")
        let ports = RunPorts(
            flags: world.flags, metrics: world.metrics, notifier: world.notifier, logger: world.logger)
        let report = try await Reconciler(settings: settings, ports: ports).run()
        #expect(report.errorCount > 0)
        let rollout = try #require(report.rollout())
        #expect(rollout.blockers.contains { $0.detail.contains("the tip is not known") })
        #expect(rollout.status == .rolledBack)
        #expect(try await world.flagState() == ["staging": .disabled, "production": .disabled])
    }

    @Test func anApprovedChangeOfTheProtectedBranchIsFollowedOnceAnOperatorAdoptsIt() async throws {
        let world = try RolloutWorld()
        try world.seed()
        _ = try await world.run(hours: 0)
        let policy = RolloutWorld.approvers.replacingOccurrences(
            of: "\"protectedBranch\": \"main\"", with: "\"protectedBranch\": \"release\"")
        try world.repo.commitFiles(["policies/approvers.json": policy], "Protect release", author: RolloutWorld.robin)
        let digest = try RepositoryReader.load(
            repository: GitRepository(path: world.repo.path), ref: "main", cacheFile: nil
        ).snapshot.policySet.digest
        try world.repo.git("switch", "-q", "-c", "approve-policy", "main")
        try world.repo.commitFiles(
            [
                "policies/approvals/sre-dana.json":
                    "{\"apiVersion\": \"rolloutctl/v1\", \"policy\": \"\(digest)\", \"role\": \"sre\", "
                    + "\"approver\": \"dana@example.com\"}\n"
            ], "Approve the policy", author: RolloutWorld.dana)
        try world.repo.git("switch", "-q", "main")
        try world.repo.git("merge", "-q", "--no-ff", "-m", "Merge approve-policy", "approve-policy")
        try world.repo.git("branch", "release", "main")
        let inForce = try RepositoryReader.load(
            repository: GitRepository(path: world.repo.path), ref: "main", cacheFile: nil
        ).policy
        #expect(inForce.pending == nil, "\(inForce)")
        // In force, but the state reads main: nothing is raised until an operator adopts the new branch.
        let before = try await world.run(hours: 1)
        #expect(before.errorCount > 0)
        #expect(before.rollout()?.blockers.contains { $0.detail.contains("names branch release") } == true)
        _ = try await world.initialise(adopt: true, hours: 2)
        #expect(
            try SQLiteStateStore(path: world.statePath).keptValues(prefix: TipTrust.keyPrefix)[TipTrust.branchKey]
                == "release")
        let after = try await world.run(hours: 3)
        #expect(after.errorCount == 0, "\(after.rollouts.map(\.blockers))")
        #expect(after.ref == "refs/heads/release")
    }
}
