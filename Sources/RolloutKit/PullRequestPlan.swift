import Foundation
import RolloutAdapters
import RolloutCore
import RolloutGit

/// `plan --base REF --ref REF` (SPEC §6.1 [r3]): what merging a pull request's branch into the base would do.
/// The branch is merged onto the base's tip in memory (`GitRepository.mergeInMemory`), and the normal plan runs
/// twice against the same state, flags and metrics: once at the base's tip, once at the merge as the protected
/// branch's next tip. `PullRequestComparison` then says what differs, rollout by rollout.
public struct PullRequestPlan: Sendable {
    public var settings: RunSettings
    public var ports: RunPorts
    /// The base branch (`main`, `origin/main`, a full ref or a commit).
    public var base: String
    /// The pull request's own head commit or ref.
    public var head: String
    /// With `--metrics http…`: the backtest, before and after, of every check the branch changes (SPEC §6.2).
    public var backtest: PullRequestBacktest?

    public init(
        settings: RunSettings, ports: RunPorts, base: String, head: String, backtest: PullRequestBacktest? = nil
    ) {
        self.settings = settings
        self.ports = ports
        self.base = base
        self.head = head
        self.backtest = backtest
    }

    public func run() async throws -> PullRequestReport {
        let repository = try GitRepository(path: settings.repositoryPath)
        try repository.refuseShallow()
        let baseID = try repository.resolveCommit(base)
        let headID = try repository.resolveCommit(head)
        // Plan mode only: `plan --base` never writes the state (SPEC §5.10) nor the repository (§6.1).
        var common = settings
        common.mode = .plan
        common.openedState = nil

        var baseSettings = common
        baseSettings.ref = baseID.description
        var before = try await Reconciler(settings: baseSettings, ports: ports).run()
        before.ref = base

        let merge = try repository.mergeInMemory(base: baseID, head: headID, time: settings.now)
        var mergedSettings = common
        mergedSettings.ref = merge.commit.description
        mergedSettings.openedRepository = repository
        mergedSettings.writesScanCache = false
        var after = try await Reconciler(settings: mergedSettings, ports: ports).run()
        after.ref = "\(base) + \(head)"

        let baseFiles = try repository.listFiles(commit: baseID, under: RepositoryLayout.folders)
        let mergedFiles = try repository.listFiles(commit: merge.commit, under: RepositoryLayout.folders)
        let changed = PullRequestComparison.changedPaths(base: baseFiles, merged: mergedFiles)
        var policyChange: PolicyChange?
        if changed.contains(where: { $0.hasPrefix(RepositoryLayout.policiesPrefix) }) {
            let baseOwn = try RepositoryReader.snapshot(repository: repository, commit: baseID)
            let mergedOwn = try RepositoryReader.snapshot(repository: repository, commit: merge.commit)
            policyChange = PullRequestComparison.policyChange(
                changed: changed, baseOwn: baseOwn, mergedOwn: mergedOwn, merged: after)
        }
        var comparison = PullRequestComparison.compare(
            before: before, after: after, changed: changed, policyChange: policyChange,
            selected: settings.rollouts)
        var backtested: PullRequestBacktestWindow?
        if let backtest {
            backtested = await backtest.run(&comparison, now: settings.now)
        }
        return PullRequestReport(
            base: base, head: head, baseCommit: baseID.description, headCommit: headID.description,
            mergeCommit: merge.commit.description, alreadyMerged: merge.alreadyMerged, before: before, after: after,
            affected: comparison, unaffected: PullRequestComparison.unaffected(before, after, comparison),
            policyChange: policyChange, backtest: backtested)
    }
}

/// How `plan --base … --metrics http…` backtests the checks a branch changes (SPEC §6.2): over `since`
/// seconds at `step`, through `BacktestRunner.replay`, the code path of `rolloutctl backtest`.
public struct PullRequestBacktest: Sendable {
    public var client: PrometheusBacktestClient
    public var since: Int
    public var step: Int

    public init(
        client: PrometheusBacktestClient, since: Int = BacktestSettings.defaultSince,
        step: Int = BacktestSettings.defaultStep
    ) {
        self.client = client
        self.since = since
        self.step = step
    }

    /// Replays each changed check as the base's plan has it and as the merged plan has it (each side with its
    /// own phases, flag and `rollback.automatic`), one fetch per distinct query over both sides, and pairs the
    /// rows by check and phase into each affected rollout's `backtests`.
    func run(_ affected: inout [AffectedRollout], now: Date) async -> PullRequestBacktestWindow {
        let window = Backtest.Window.ending(at: now, since: since, step: step)
        var sides: [BacktestRollout] = []
        var owners: [(index: Int, after: Bool)] = []
        for (index, rollout) in affected.enumerated() where !rollout.changedChecks.isEmpty {
            if let plan = rollout.before?.plan {
                sides.append(
                    BacktestRunner.pending(
                        name: rollout.name, plan: plan, checks: rollout.changedChecks.compactMap(\.before)))
                owners.append((index, false))
            }
            if let plan = rollout.after?.plan {
                sides.append(
                    BacktestRunner.pending(
                        name: rollout.name, plan: plan, checks: rollout.changedChecks.compactMap(\.after)))
                owners.append((index, true))
            }
        }
        let requests = await BacktestRunner.replay(&sides, window: window, client: client)
        var before: [Int: BacktestRollout] = [:]
        var after: [Int: BacktestRollout] = [:]
        for (side, owner) in zip(sides, owners) {
            if owner.after { after[owner.index] = side } else { before[owner.index] = side }
        }
        for index in affected.indices where !affected[index].changedChecks.isEmpty {
            affected[index].backtests = CheckBacktest.pair(
                affected[index].changedChecks, before: before[index], after: after[index])
        }
        return PullRequestBacktestWindow(window: window, since: since, requests: requests)
    }
}

/// The window `plan --base … --metrics` replayed the changed checks over, and the requests it took.
public struct PullRequestBacktestWindow: Sendable {
    public var window: Backtest.Window
    public var since: Int
    public var requests: Int
}

/// One changed check in one phase, replayed as the base has it and as the merge would have it (nil: the check
/// or the phase is absent on that side, or that side's plan is invalid).
public struct CheckBacktest: Sendable {
    public var check: String
    public var phase: String
    public var environment: String
    public var before: BacktestRow?
    public var after: BacktestRow?

    /// Rows paired by check and phase: the changed checks in their order, each in the merged plan's phases
    /// then the base's phases the merge drops.
    static func pair(_ changes: [CheckChange], before: BacktestRollout?, after: BacktestRollout?) -> [CheckBacktest] {
        changes.flatMap { change -> [CheckBacktest] in
            let old = before?.rows.filter { $0.check.name == change.name } ?? []
            let new = after?.rows.filter { $0.check.name == change.name } ?? []
            var phases = new.map(\.phase)
            for row in old where !phases.contains(row.phase) { phases.append(row.phase) }
            return phases.map { phase in
                let a = old.first { $0.phase == phase }
                let b = new.first { $0.phase == phase }
                return CheckBacktest(
                    check: change.name, phase: phase, environment: b?.environment ?? a?.environment ?? "",
                    before: a, after: b)
            }
        }
    }
}

/// What a pull request's merge would do (SPEC §6.1).
public struct PullRequestReport: Sendable {
    public var base: String
    public var head: String
    public var baseCommit: String
    public var headCommit: String
    /// The in-memory merge commit (the base's tip when the branch is already merged).
    public var mergeCommit: String
    public var alreadyMerged: Bool
    /// The plan at the base's tip and at the merge.
    public var before: RunReport
    public var after: RunReport
    public var affected: [AffectedRollout]
    /// Rollouts the branch does not affect.
    public var unaffected: [String]
    public var policyChange: PolicyChange?
    /// With `--metrics http…`: the window the changed checks were backtested over (nil: no backtest).
    public var backtest: PullRequestBacktestWindow?

    /// The merged plan's errors decide, as `plan`'s do (SPEC §6.1: exit codes as plan's).
    public var errorCount: Int { after.errorCount }
    public var changeCount: Int { after.changeCount }
}

/// One rollout the branch touches (its plan, its approvals) or a policy change in it affects.
public struct AffectedRollout: Sendable {
    public var name: String
    public var flag: String?
    /// Why it is listed: `plan.json changed`, `approval added: …`, `policy change`.
    public var causes: [String]
    public var before: RolloutReport?
    public var after: RolloutReport?
    /// The approvals once merged, counted or not, each with its reason (stale ones say what the branch changes).
    public var approvals: [ApprovalLine]
    /// Approvals counted at the base that would not count once merged.
    public var madeStale: [ApprovalLine]
    /// What the branch's policy, once in force, would find invalid in this plan.
    public var invalidUnderProposal: [String]
    /// The plan's own health checks the branch adds, removes or changes: the checks a backtest before → after
    /// (`plan --base … --metrics`, SPEC §6.2, issue 24) replays. Health sets (`health.use`) are policy.
    public var changedChecks: [CheckChange] = []
    /// With `--metrics http…`: each changed check in each phase, backtested before and after the merge.
    public var backtests: [CheckBacktest] = []
}

/// One health check before and after the merge (nil: absent on that side).
public struct CheckChange: Sendable, Equatable {
    public var name: String
    public var before: HealthCheck?
    public var after: HealthCheck?

    /// The plans' own checks that differ, by name, in the order the merged plan lists them.
    static func between(_ before: Plan?, _ after: Plan?) -> [CheckChange] {
        let old = before?.health.checks ?? []
        let new = after?.health.checks ?? []
        var names = new.map(\.name)
        for check in old where !names.contains(check.name) { names.append(check.name) }
        return names.compactMap { name in
            let a = old.first { $0.name == name }
            let b = new.first { $0.name == name }
            return a == b ? nil : CheckChange(name: name, before: a, after: b)
        }
    }
}

/// An approval as the comment shows it.
public struct ApprovalLine: Sendable, Equatable {
    public var phase: String
    public var role: String
    public var approver: String
    public var commit: String?
    public var counted: Bool
    public var reason: String?
    public var path: String
    /// Added or changed by the branch.
    public var inBranch: Bool
}

/// A change of `policies/` in the branch: what it proposes, who must approve it, what it would invalidate.
public struct PolicyChange: Sendable {
    /// Changed policy files (`policies/approvals/` excluded), with `added`/`removed`/`changed`.
    public var files: [String]
    /// Policy approval files the branch adds or changes.
    public var approvalFiles: [String]
    /// What the proposal changes, one sentence each (`role sre: + sam@example.com`).
    public var proposes: [String]
    /// The proposal's digest once merged (nil when the branch leaves the policy digest as it is).
    public var digest: String?
    /// Roles of the policy in force's `policyApprovals` that no counted approval fills yet once merged.
    public var missingRoles: [String]
    /// All roles `policyApprovals` of the policy in force asks for.
    public var requiredRoles: [String]
    /// Whether it would be in force right after the merge (its approvals are in the branch).
    public var inForceOnceMerged: Bool
    /// Its policy approvals once merged, with reasons.
    public var approvals: [ApprovalStatus]
    /// Rollouts valid under the policy in force but invalid under the proposal: name → first problem.
    public var invalidates: [(rollout: String, problem: String)]
}

/// Compares two plan runs (pure: reports in, comparison out).
public enum PullRequestComparison {
    /// Paths under `rollouts/` and `policies/` whose blob differs, was added or removed.
    public static func changedPaths(base: [TreeFile], merged: [TreeFile]) -> Set<String> {
        let before = Dictionary(base.map { ($0.path, $0.objectID) }, uniquingKeysWith: { a, _ in a })
        let after = Dictionary(merged.map { ($0.path, $0.objectID) }, uniquingKeysWith: { a, _ in a })
        var changed = Set<String>()
        for (path, id) in after where before[path] != id { changed.insert(path) }
        for path in before.keys where after[path] == nil { changed.insert(path) }
        return changed
    }

    static func rolloutName(of path: String) -> String? {
        guard path.hasPrefix(RepositoryLayout.rolloutsPrefix) else { return nil }
        let rest = path.dropFirst(RepositoryLayout.rolloutsPrefix.count)
        guard let slash = rest.firstIndex(of: "/") else { return nil }
        return String(rest[..<slash])
    }

    static func compare(
        before: RunReport, after: RunReport, changed: Set<String>, policyChange: PolicyChange?, selected: [String]
    ) -> [AffectedRollout] {
        var causes: [String: [String]] = [:]
        for path in changed.sorted() {
            guard let name = rolloutName(of: path) else { continue }
            let rest = String(path.dropFirst(RepositoryLayout.rolloutFolder(name).count + 1))
            if rest == RepositoryLayout.planFile {
                causes[name, default: []].append("plan.json changed")
            } else if rest.hasPrefix(RepositoryLayout.approvalsFolder + "/") {
                causes[name, default: []].append(
                    "approval \(rest.dropFirst(RepositoryLayout.approvalsFolder.count + 1))")
            } else {
                causes[name, default: []].append("\(rest) changed")
            }
        }
        let beforeByName = Dictionary(before.rollouts.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let afterByName = Dictionary(after.rollouts.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let invalidates = Dictionary(
            (policyChange?.invalidates ?? []).map { ($0.rollout, $0.problem) }, uniquingKeysWith: { a, _ in a })
        if policyChange != nil {
            // A policy change affects every rollout whose plan run differs, and those it would make invalid.
            for name in Set(beforeByName.keys).union(afterByName.keys)
            where causes[name] == nil && (differs(beforeByName[name], afterByName[name]) || invalidates[name] != nil) {
                causes[name] = ["policy change"]
            }
        }
        var names: [String] = after.rollouts.map(\.name)
        for report in before.rollouts where afterByName[report.name] == nil { names.append(report.name) }
        return names.compactMap { name -> AffectedRollout? in
            guard let why = causes[name], selected.isEmpty || selected.contains(name) else { return nil }
            let old = beforeByName[name]
            let new = afterByName[name]
            let lines = approvalLines(before: old, after: new, changed: changed)
            let stale = staleLines(before: old, after: new, lines: lines)
            return AffectedRollout(
                name: name, flag: new?.flag ?? old?.flag, causes: why, before: old, after: new, approvals: lines,
                madeStale: stale, invalidUnderProposal: invalidates[name].map { [$0] } ?? [],
                changedChecks: CheckChange.between(old?.plan, new?.plan))
        }
    }

    static func unaffected(_ before: RunReport, _ after: RunReport, _ affected: [AffectedRollout]) -> [String] {
        let listed = Set(affected.map(\.name))
        return after.rollouts.map(\.name).filter { !listed.contains($0) }
    }

    /// Whether a rollout's plan run differs in anything a reviewer acts on.
    static func differs(_ a: RolloutReport?, _ b: RolloutReport?) -> Bool {
        guard let a, let b else { return a != nil || b != nil }
        return a.status != b.status || a.nextPhase != b.nextPhase || a.planBlob != b.planBlob
            || a.changes.map(\.summaryKey) != b.changes.map(\.summaryKey)
            || a.timeline != b.timeline || a.errors.map(\.description) != b.errors.map(\.description)
            || a.approvals.map { "\($0.path) \($0.counted)" } != b.approvals.map { "\($0.path) \($0.counted)" }
    }

    static func approvalLines(before: RolloutReport?, after: RolloutReport?, changed: Set<String>) -> [ApprovalLine] {
        guard let after else { return [] }
        let planChanged = before?.planBlob != nil && before?.planBlob != after.planBlob
        return after.approvals.map { approval in
            var reason = approval.reason
            let wasFine = before?.approvals.first(where: { $0.path == approval.path }).map {
                !($0.reason ?? "").hasPrefix("stale")
            }
            // SPEC §6.1: an approval the branch makes stale says what the branch changes.
            if !approval.counted, (reason ?? "").hasPrefix("stale"), planChanged, wasFine == true,
                let old = before?.planBlob, let new = after.planBlob
            {
                reason = "stale: approves plan \(old.prefix(7)), the branch changes it to \(new.prefix(7))"
            }
            return ApprovalLine(
                phase: approval.phase, role: approval.role ?? "?", approver: approval.approver ?? "?",
                commit: approval.commit, counted: approval.counted, reason: reason, path: approval.path,
                inBranch: changed.contains(approval.path))
        }
    }

    static func staleLines(before: RolloutReport?, after: RolloutReport?, lines: [ApprovalLine]) -> [ApprovalLine] {
        guard let before else { return [] }
        return before.approvals.filter(\.counted).compactMap { old in
            if let line = lines.first(where: { $0.path == old.path }) { return line.counted ? nil : line }
            return ApprovalLine(
                phase: old.phase, role: old.role ?? "?", approver: old.approver ?? "?", commit: old.commit,
                counted: false, reason: "removed by the branch", path: old.path, inBranch: true)
        }
    }

    static func policyChange(
        changed: Set<String>, baseOwn: RepositorySnapshot, mergedOwn: RepositorySnapshot, merged: RunReport
    ) -> PolicyChange {
        let policyPaths = changed.filter { $0.hasPrefix(RepositoryLayout.policiesPrefix) }.sorted()
        let approvalFiles = policyPaths.filter { $0.hasPrefix(RepositoryLayout.policyApprovalsPrefix) }
        let files = policyPaths.filter { !$0.hasPrefix(RepositoryLayout.policyApprovalsPrefix) }
        let digestChanged = baseOwn.policySet.digest != mergedOwn.policySet.digest
        let pending = merged.policy?.pending
        let inForce = merged.policy?.inForce
        let invalidates: [(rollout: String, problem: String)] = mergedOwn.rollouts.compactMap { own in
            guard !own.allDiagnostics.isEmpty || own.plan == nil,
                let report = merged.rollouts.first(where: { $0.name == own.name }), report.status != .invalid
            else { return nil }
            return (
                own.name,
                own.allDiagnostics.first.map { "\($0.path):\($0.line):\($0.column): \($0.message)" }
                    ?? "invalid under the proposed policy"
            )
        }
        return PolicyChange(
            files: files, approvalFiles: approvalFiles,
            proposes: describe(from: baseOwn.policySet, to: mergedOwn.policySet),
            digest: digestChanged ? mergedOwn.policySet.digest : nil,
            missingRoles: pending?.missing ?? [],
            requiredRoles: merged.policy?.inForceSet?.approvers?.policyApprovals ?? [],
            inForceOnceMerged: digestChanged && pending == nil && inForce?.digest == mergedOwn.policySet.digest,
            approvals: pending?.approvals ?? [],
            invalidates: invalidates)
    }

    /// What a policy change proposes, one sentence per difference.
    static func describe(from old: PolicySet, to new: PolicySet) -> [String] {
        var lines: [String] = []
        guard let a = old.approvers, let b = new.approvers else {
            if old.approvers == nil, new.approvers != nil { lines.append("adds \(RepositoryLayout.approvers)") }
            if old.approvers != nil, new.approvers == nil {
                lines.append("removes or breaks \(RepositoryLayout.approvers)")
            }
            return lines
        }
        if a.protectedBranch != b.protectedBranch {
            lines.append("protectedBranch \(a.protectedBranch) → \(b.protectedBranch)")
        }
        if a.identity != b.identity { lines.append("identity \(a.identity.rawValue) → \(b.identity.rawValue)") }
        if a.forbidSelfApproval != b.forbidSelfApproval {
            lines.append("forbidSelfApproval \(a.forbidSelfApproval) → \(b.forbidSelfApproval)")
        }
        if a.policyApprovals != b.policyApprovals {
            lines.append(
                "policyApprovals \(a.policyApprovals.joined(separator: ", ")) → \(b.policyApprovals.joined(separator: ", "))"
            )
        }
        for role in Set(a.roles.keys).union(b.roles.keys).sorted() {
            let was = Set(a.roles[role] ?? [])
            let now = Set(b.roles[role] ?? [])
            if a.roles[role] == nil {
                lines.append("adds role \(role): \(now.sorted().joined(separator: ", "))")
            } else if b.roles[role] == nil {
                lines.append("removes role \(role)")
            } else if was != now {
                let added = now.subtracting(was).sorted().map { "+ \($0)" }
                let removed = was.subtracting(now).sorted().map { "- \($0)" }
                lines.append("role \(role): " + (added + removed).joined(separator: ", "))
            }
        }
        for environment in Set(a.environmentApprovals.keys).union(b.environmentApprovals.keys).sorted()
        where a.environmentApprovals[environment] != b.environmentApprovals[environment] {
            let was = a.environmentApprovals[environment]?.joined(separator: ", ") ?? "none"
            let now = b.environmentApprovals[environment]?.joined(separator: ", ") ?? "none"
            lines.append("environment \(environment) needs \(was) → \(now)")
        }
        let oldSets = Set(old.healthSets.keys)
        let newSets = Set(new.healthSets.keys)
        for name in newSets.subtracting(oldSets).sorted() { lines.append("adds health set \(name)") }
        for name in oldSets.subtracting(newSets).sorted() { lines.append("removes health set \(name)") }
        return lines
    }
}

extension Change {
    var summaryKey: String { "\(environment) \(to.enabled) \(to.coverage) \(reason.rawValue)" }
}
