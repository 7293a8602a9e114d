import Foundation
import Logging
import RolloutAdapters
import RolloutCore
import RolloutGit

/// What a run is for: a preview (`plan`), or applying (`reconcile`, possibly `--dry-run`).
public enum RunMode: Sendable, Equatable {
    case plan
    case reconcile(dryRun: Bool)

    var applies: Bool { self == .reconcile(dryRun: false) }
}

/// Everything one run needs, resolved from the command line.
public struct RunSettings: Sendable {
    public var repositoryPath: String
    public var ref: String?
    public var rollouts: [String]
    public var now: Date
    public var statePath: String
    public var mode: RunMode
    public var fetchRemote: String?
    /// True when `now` was supplied (`--now`) rather than read from the clock (SPEC §5.12).
    public var clockSupplied: Bool
    /// How many rollouts are reconciled at once (flag and metrics calls).
    public var concurrency: Int
    /// [issue 12] A state the command already opened (PostgreSQL: the session holding the run's lock);
    /// nil: the run opens `statePath` itself.
    public var openedState: (any StateStorage)?

    public init(
        repositoryPath: String = ".", ref: String? = nil, rollouts: [String] = [], now: Date = Date(),
        statePath: String = ".rolloutctl/state.sqlite", mode: RunMode = .plan, fetchRemote: String? = nil,
        clockSupplied: Bool = false, concurrency: Int = 8
    ) {
        self.repositoryPath = repositoryPath
        self.ref = ref
        self.rollouts = rollouts
        self.now = now
        self.statePath = statePath
        self.mode = mode
        self.fetchRemote = fetchRemote
        self.clockSupplied = clockSupplied
        self.concurrency = concurrency
    }

    /// The default `.rolloutctl/` of a repository (SPEC §5.10): inside `--repo` (the work tree's top,
    /// or a bare repository's own directory), never relative to the working directory.
    public static func defaultDirectory(repositoryPath: String) -> String {
        let home =
            (try? GitRepository(path: repositoryPath))?.home
            ?? URL(fileURLWithPath: repositoryPath).standardizedFileURL.path
        return URL(fileURLWithPath: home).appendingPathComponent(".rolloutctl").path
    }

    /// The state database when `--state` is not given: `state.sqlite` in `defaultDirectory`.
    public static func defaultStatePath(repositoryPath: String) -> String {
        defaultDirectory(repositoryPath: repositoryPath) + "/state.sqlite"
    }

    /// The history walk's cache (HistoryCache's binary format) lives beside the state database.
    var scanCachePath: String {
        if StateLocation.isPostgres(statePath) {  // [issue 12] no state folder: the repository's .rolloutctl/
            return Self.defaultDirectory(repositoryPath: repositoryPath) + "/history-walk.cache"
        }
        return URL(fileURLWithPath: statePath).deletingLastPathComponent().appendingPathComponent("history-walk.cache")
            .path
    }
}

/// The outside world of a run: flag store, metrics, notifications, logs.
public struct RunPorts: Sendable {
    public var flags: FlagStore
    public var metrics: MetricsProvider?
    public var notifier: Notifier
    public var logger: Logger

    public init(flags: FlagStore, metrics: MetricsProvider?, notifier: Notifier, logger: Logger) {
        self.flags = flags
        self.metrics = metrics
        self.notifier = notifier
        self.logger = logger
    }
}

/// Runs `plan` and `reconcile`: reads the repository, the state and the flags; lets the core decide;
/// executes the decision's steps in order (commit first, flag changes with intent and result,
/// commit after); then delivers the notification outbox.
public struct Reconciler: Sendable {
    public var settings: RunSettings
    public var ports: RunPorts

    public init(settings: RunSettings, ports: RunPorts) {
        self.settings = settings
        self.ports = ports
    }

    public func run() async throws -> RunReport {
        let repository = try GitRepository(path: settings.repositoryPath)
        var ref = settings.ref
        if let remote = settings.fetchRemote {
            let branch = ref ?? RepositoryLayout.protectedBranch(protectedBranch(repository))
            ref = try repository.fetch(remote: remote, branch: branch)
            ports.logger.info("fetched \(branch) from \(remote) into \(ref!)")
        }
        // `reconcile` never creates the state; `plan` and `--dry-run` never write it (SPEC §5.10).
        let state: (any StateStorage)? =
            try settings.openedState
            ?? (settings.mode.applies
                ? StateStores.open(settings.statePath)
                : StateStores.openReadOnly(settings.statePath))
        // The root of trust `init` recorded is where the policy walk starts (SPEC §4.3).
        // The repository first: a state of another repository is refused before anything else is read.
        if let state, let installation = try state.installation() {
            let (_, tip) = try RepositoryReader.resolve(repository: repository, ref: ref)
            let root = try repository.firstParentRoot(of: tip).description
            if installation.repositoryRoot != root {
                throw StateStoreError.anotherRepository(
                    path: state.path, recorded: installation.repositoryRoot,
                    actual: root)
            }
        }
        let policyRoot = try state?.installation()?.policyRootCommit
        let loaded = try load(repository, ref: ref, policyRoot: policyRoot)
        if let state {
            try checkInstallation(state, repository: repository, revision: loaded.revision, policy: loaded.policy)
        }
        if settings.mode.applies, let state {
            if settings.clockSupplied, let latest = try state.latestRunTime(), settings.now < latest {
                throw RunRefusal(
                    "--now \(RFC3339.format(settings.now)) is earlier than the latest reconcile recorded "
                        + "in the state (\(RFC3339.format(latest))); time never runs backwards")
            }
            try state.recordRun(time: settings.now, clockSupplied: settings.clockSupplied)
        }

        let selected = loaded.snapshot.rollouts.filter {
            settings.rollouts.isEmpty || settings.rollouts.contains($0.name)
        }
        let stored = try state?.allRollouts() ?? []
        let storedByName = Dictionary(stored.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let openIntents = settings.mode.applies ? try state?.allUnresolvedIntents() ?? [:] : [:]
        let policyErrors = loaded.snapshot.policyDiagnostics.map(RolloutError.init)

        var outcomes = try await withThrowingTaskGroup(of: (Int, RolloutOutcome).self) { group in
            var results: [(Int, RolloutOutcome)] = []
            var next = 0
            func launch() {
                guard next < selected.count else { return }
                let index = next
                let rollout = selected[index]
                let approvals = loaded.approvals[rollout.name] ?? []
                let record = storedByName[rollout.name]?.record
                let intents = openIntents[rollout.name] ?? []
                group.addTask {
                    (
                        index,
                        await reconcile(
                            rollout: rollout, approvals: approvals,
                            policy: loaded.policy.inForceSet?.approvers, record: record,
                            intents: intents, state: state, revision: loaded.revision)
                    )
                }
                next += 1
            }
            for _ in 0..<max(1, settings.concurrency) { launch() }
            while let result = try await group.next() {
                results.append(result)
                launch()
            }
            return results.sorted { $0.0 < $1.0 }.map(\.1)
        }
        if settings.mode.applies, let state, ports.flags.stagesWrites {
            await flushStaged(&outcomes, state: state)
        }
        var reports = outcomes.map(\.report)

        // Rollouts the state knows but the repository no longer has: left as they are.
        let present = Set(loaded.snapshot.rollouts.map(\.name))
        for orphan in stored
        where !present.contains(orphan.name)
            && (settings.rollouts.isEmpty || settings.rollouts.contains(orphan.name))
        {
            reports.append(
                RolloutReport(
                    name: orphan.name, flag: orphan.flag, planBlob: orphan.record.planBlob, status: .orphaned,
                    currentPhase: orphan.record.phase, nextPhase: nil,
                    blockers: [
                        Blocker(
                            kind: .state,
                            detail: "\(RepositoryLayout.rolloutFolder(orphan.name)) "
                                + "was removed from the repository; "
                                + "its flag is left as it is (rolloutctl never prunes)")
                    ]))
        }
        if settings.mode.applies, let state {
            await Outbox(state: state, notifier: ports.notifier, logger: ports.logger).deliver(now: settings.now)
        }
        return RunReport(
            ref: loaded.ref, revision: loaded.revision, now: settings.now, mode: settings.mode,
            rollouts: reports, policyErrors: policyErrors, policy: loaded.policy)
    }

    private func load(_ repository: GitRepository, ref: String?, policyRoot: String?) throws -> LoadedRepository {
        do {
            return try RepositoryReader.load(
                repository: repository, ref: ref, cacheFile: settings.scanCachePath,
                policyRoot: policyRoot)
        } catch {
            guard error.code == .policyRootNotFound else { throw error }
            throw RunRefusal("the policy root changed: \(error.message)")
        }
    }

    /// A state belongs to one repository and one policy root of trust (SPEC §4.3, §5.10).
    private func checkInstallation(
        _ state: any StateStorage, repository: GitRepository, revision: String,
        policy: PolicyState
    ) throws {
        guard let installation = try state.installation() else {
            if settings.mode.applies { throw StateStoreError.notInitialised(path: state.path) }
            return
        }
        // The repository itself was checked before the history was read (run()).
        if let recorded = installation.policyRootDigest, let found = policy.root, recorded != found.digest {
            throw RunRefusal(
                "the policy root changed: \(state.path) records policy \(recorded.prefix(12)) at "
                    + "\(installation.policyRootCommit?.prefix(12) ?? "?"), but that commit now holds "
                    + "\(found.digest.prefix(12))"
            )
        }
        if installation.policyRootCommit == nil, settings.mode.applies, let root = policy.root {
            // No policy existed when `init` ran: the first one found is the root, pinned from now on.
            var pinned = installation
            pinned.policyRootCommit = root.commit
            pinned.policyRootDigest = root.digest
            try state.setInstallation(pinned)
        }
    }

    private func protectedBranch(_ repository: GitRepository) -> String? {
        guard let head = try? repository.head() else { return nil }
        return RepositoryReader.protectedBranch(repository: repository, at: head)
    }

    // MARK: One rollout

    /// A rollout's report, and (for a flag store that stages its writes) what waits for the flush.
    struct RolloutOutcome: Sendable {
        var report: RolloutReport
        var staged: StagedWrites?
    }

    /// Results and the state commit of a run whose flag changes are durable only after `flush()`.
    struct StagedWrites: Sendable {
        var context: AuditContext
        var rollout: String
        var flag: String
        var results: [AuditEntry]
        var commit: StateCommit?
        var outbox: [OutboxMessage]
    }

    func reconcile(
        rollout: RolloutFiles, approvals: [ApprovalStatus], policy: ApproversPolicy?, record: RolloutRecord?,
        intents: [AuditEntry], state: (any StateStorage)?, revision: String
    ) async -> RolloutOutcome {
        var report = RolloutReport(
            name: rollout.name, flag: rollout.plan?.flag, planBlob: rollout.planBlob,
            status: .invalid, currentPhase: record?.phase, nextPhase: nil, approvals: approvals)
        report.errors = rollout.allDiagnostics.map(RolloutError.init)
        // A plan the flag store cannot carry out (e.g. 12.5% in an Unleash environment) is invalid too.
        let storeProblems = rollout.plan.map { ports.flags.planProblems($0, path: rollout.planPath) } ?? []
        report.errors += storeProblems.map(RolloutError.init)
        guard let plan = rollout.plan, let planBlob = rollout.planBlob, rollout.isValid, storeProblems.isEmpty else {
            report.blockers = [
                Blocker(
                    kind: .error,
                    detail: "the plan is invalid; nothing is applied until it is fixed "
                        + "(run `rolloutctl validate`)")
            ]
            return RolloutOutcome(report: report)
        }
        let context = AuditContext(
            rollout: rollout.name, flag: plan.flag, revision: revision, planBlob: planBlob,
            now: settings.now, clockSupplied: settings.clockSupplied)
        // The roles each phase still needs under the policy in force, environment floors included (SPEC §4.2).
        let missingRoles = ApprovalRules.missingRoles(plan: plan, policy: policy, statuses: approvals)
        var record = record
        var intents = intents
        var conflicts = 0
        // After a 412, the re-read that checked for a lost answer is the next decision's input.
        var reread: FlagSnapshot?
        while true {
            let flag: FlagSnapshot
            do {
                if let reread { flag = reread } else { flag = try await ports.flags.read(flag: plan.flag) }
                reread = nil
            } catch {
                return RolloutOutcome(report: failed(report, "reading flag \(plan.flag): \(error)"))
            }
            if settings.mode.applies, let state, !intents.isEmpty {
                do {
                    record = try recover(
                        intents: intents, plan: plan, flag: flag, record: record, state: state,
                        context: context)
                    intents = []
                } catch {
                    return RolloutOutcome(report: failed(report, "recovering interrupted changes: \(error)"))
                }
            }
            let (current, enteredAt) = PhaseMachine.currentPhase(
                plan: plan, planBlob: planBlob, record: record,
                actual: flag.environments, now: settings.now)
            var health: [HealthResult] = []
            let rolledBack = record.map { $0.status == .rolledBack && $0.planBlob == planBlob } ?? false
            if !rolledBack, plan.state != .aborted, PhaseMachine.needsHealth(plan: plan, phaseIndex: current),
                let current
            {
                health = await evaluate(
                    checks: rollout.checks, plan: plan, phase: plan.phases[current],
                    since: enteredAt ?? settings.now)
            }
            let decision = PhaseMachine.decide(
                PhaseMachine.Input(
                    plan: plan, planBlob: planBlob, approvals: approvals, missingRoles: missingRoles, record: record,
                    actual: flag.environments, health: health, now: settings.now))
            report.status = decision.status
            report.currentPhase = decision.currentPhase
            report.nextPhase = decision.nextPhase
            report.blockers = decision.blockers
            report.changes = decision.changes
            report.health = decision.health
            let environments = Set(plan.phases.map(\.environment))
            report.warnings = flag.warnings.filter { environments.contains($0.environment) }
                .map { "\(plan.flag)[\($0.environment)]: \($0.message)" }
            // [issue 11] serve's view and the projected timeline; reads only what this run already decided.
            report.plan = plan
            report.actual = flag.environments
            report.timeline = ServeHooks.timeline(
                plan: plan, missingRoles: missingRoles, current: current,
                enteredAt: enteredAt, decision: decision, now: settings.now)
            guard settings.mode.applies, let state else { return RolloutOutcome(report: report) }

            // 1. The state to commit before any flag call (a rollback, an override).
            if let first = decision.commitFirst {
                do {
                    try commit(first, state: state, context: context, plan: plan, checks: decision.health)
                    record = first.record
                } catch {
                    return RolloutOutcome(report: failed(report, "saving state: \(error)"))
                }
            }

            // 2. The flag changes in order: an intent before each call, its result after.
            var version = flag.version
            var conflict = false
            var staged: [AuditEntry] = []
            for step in decision.steps {
                let change = step.change
                let intent = context.entry(
                    kind: .intent, phase: step.phase, environment: change.environment,
                    from: change.from, to: change.to, reason: change.reason.rawValue,
                    approvals: step.approvals, detail: step.detail)
                let intentID: Int64
                do {
                    intentID = try state.append(intent)
                } catch {
                    return RolloutOutcome(report: failed(report, "writing the audit log: \(error)"))
                }
                var result = intent
                result.kind = .result
                result.intentID = intentID
                let patch = FlagPatch(
                    environment: change.environment, enabled: change.to.enabled,
                    coverage: change.to.coverage)
                do {
                    let updated = try await ports.flags.apply(flag: plan.flag, patch: patch, ifMatch: version)
                    version = updated.version
                    result.result = "applied"
                    if ports.flags.stagesWrites {
                        staged.append(result)
                    } else {
                        _ = try? state.append(result)
                    }
                    let from = FlagEnvironmentState.describe(change.from)
                    let to = FlagEnvironmentState.describe(change.to)
                    let target = "\(plan.flag)[\(change.environment)]"
                    ports.logger.info("applied \(target) \(from) → \(to) (\(change.reason.rawValue))")
                } catch {
                    // A lost answer is not a failed change: the flag itself says whether it applied.
                    let check =
                        !ports.flags.stagesWrites && Self.mayHaveApplied(error)
                        ? try? await ports.flags.read(flag: plan.flag) : nil
                    if let check, PhaseMachine.matches(check.environments[change.environment], change.to) {
                        version = check.version
                        result.result = "applied"
                        result.detail = [step.detail, "confirmed by re-read: the answer was lost (\(error))"]
                            .compactMap { $0 }.joined(separator: "; ")
                        _ = try? state.append(result)
                        ports.logger.warning(
                            "\(plan.flag)[\(change.environment)]: the answer was lost, a re-read shows the change applied"
                        )
                        continue
                    }
                    if case FlagStoreError.versionConflict = error {
                        reread = check
                        result.result = "conflict"
                        result.detail = "the flag changed meanwhile (412); re-reading and deciding again"
                        _ = try? state.append(result)
                        conflict = true
                        break
                    }
                    result.result = "failed"
                    result.detail = "\(error)"
                    _ = try? state.append(result)
                    for entry in staged { _ = try? state.append(entry) }
                    return RolloutOutcome(
                        report: failed(report, "applying \(plan.flag)[\(change.environment)]: \(error)"))
                }
            }
            if conflict {
                for entry in staged { _ = try? state.append(entry) }
                conflicts += 1
                if conflicts > 1 {
                    return RolloutOutcome(
                        report: failed(
                            report,
                            "flag \(plan.flag) kept changing while it was being "
                                + "updated (412 twice); the next run tries again"))
                }
                continue
            }

            // 3. The state after the changes.
            report.applied = true
            if ports.flags.stagesWrites {
                let outbox =
                    decision.commitAfter.map {
                        outboxMessages(
                            $0, context: context, plan: plan,
                            checks: decision.health)
                    } ?? []
                return RolloutOutcome(
                    report: report,
                    staged: StagedWrites(
                        context: context, rollout: rollout.name, flag: plan.flag, results: staged,
                        commit: decision.commitAfter, outbox: outbox))
            }
            // [issue 11] notify checks: one notification per breach episode (NotifyWatch), never a gate.
            await ServeHooks.watchNotifyChecks(
                rollout: rollout.name, plan: plan, checks: rollout.checks,
                health: decision.health,
                phase: decision.currentPhase, revision: revision, state: state,
                now: settings.now, ports: ports)
            if let after = decision.commitAfter {
                do {
                    try commit(after, state: state, context: context, plan: plan, checks: decision.health)
                } catch {
                    return RolloutOutcome(report: failed(report, "saving state: \(error)"))
                }
            }
            return RolloutOutcome(report: report)
        }
    }

    /// An error after which the PATCH may still have reached the flag (its answer was lost).
    static func mayHaveApplied(_ error: Error) -> Bool {
        switch error as? FlagStoreError {
        case .versionConflict?, .unavailable?, .invalidResponse?: return true
        case .notFound?, .unauthorized?, .notManaged?: return false
        case nil: return true
        }
    }

    /// One `flush()` per run for a store that stages its writes; then the staged results and states,
    /// or `failed` results when the flush throws (the next run decides again from the flag).
    private func flushStaged(_ outcomes: inout [RolloutOutcome], state: any StateStorage) async {
        var flushError: Error?
        do {
            try await ports.flags.flush()
        } catch {
            flushError = error
        }
        for index in outcomes.indices {
            guard let staged = outcomes[index].staged else { continue }
            for var result in staged.results {
                if let flushError {
                    result.result = "failed"
                    result.detail = "writing the flag store: \(flushError)"
                }
                _ = try? state.append(result)
            }
            if let flushError {
                outcomes[index].report = failed(outcomes[index].report, "writing the flag store: \(flushError)")
                continue
            }
            if let commit = staged.commit {
                do {
                    try state.save(
                        rollout: staged.rollout, flag: staged.flag, record: commit.record, now: settings.now,
                        enteredPhase: commit.enteredPhase,
                        audit: commit.events.map(staged.context.event),
                        outbox: staged.outbox)
                } catch {
                    outcomes[index].report = failed(outcomes[index].report, "saving state: \(error)")
                }
            }
        }
    }

    /// Writes a state commit: record, audit events and queued notifications in one transaction.
    private func commit(
        _ commit: StateCommit, state: any StateStorage, context: AuditContext, plan: Plan,
        checks: [HealthResult]
    ) throws {
        try state.save(
            rollout: context.rollout, flag: plan.flag, record: commit.record, now: settings.now,
            enteredPhase: commit.enteredPhase, audit: commit.events.map(context.event),
            outbox: outboxMessages(commit, context: context, plan: plan, checks: checks))
        for notification in commit.notifications {
            ports.logger.notice("notify \(plan.rollback.notify.joined(separator: ",")): \(notification.message)")
        }
    }

    private func outboxMessages(
        _ commit: StateCommit, context: AuditContext, plan: Plan,
        checks: [HealthResult]
    ) -> [OutboxMessage] {
        commit.notifications.flatMap { notification -> [OutboxMessage] in
            let key = UUID().uuidString.lowercased()
            let body = NotificationEvent(
                id: key, rollout: context.rollout, flag: plan.flag, status: notification.status.rawValue,
                phase: notification.phase, message: notification.message, revision: context.revision,
                time: settings.now, checks: notification.checks.map { ($0.check.name, $0.value, $0.noDataReason) }
            )
            .json.render(pretty: false)
            return plan.rollback.notify.map {
                OutboxMessage(key: key, target: $0, rollout: context.rollout, body: body, createdAt: settings.now)
            }
        }
    }

    private func failed(_ report: RolloutReport, _ message: String) -> RolloutReport {
        var report = report
        report.errors.append(RolloutError(message: message))
        report.blockers.append(Blocker(kind: .error, detail: message))
        report.applied = false
        ports.logger.error("\(report.name): \(message)")
        return report
    }

    /// Finishes what an interrupted run started: each intent without a result is checked against
    /// the flag as it is now (the rules are `Recovery`'s); results and record in one transaction.
    private func recover(
        intents: [AuditEntry], plan: Plan, flag: FlagSnapshot, record: RolloutRecord?,
        state: any StateStorage, context: AuditContext
    ) throws -> RolloutRecord? {
        let open = intents.compactMap { intent -> OpenIntent? in
            guard let id = intent.id, let environment = intent.environment, let to = intent.to else { return nil }
            return OpenIntent(
                id: id, time: intent.time, phase: intent.phase, environment: environment, to: to,
                reason: intent.reason, planBlob: intent.planBlob)
        }
        let outcome = Recovery.resolve(intents: open, plan: plan, record: record, actual: flag.environments)
        let results = zip(open, outcome.results).compactMap { intent, resolved -> AuditEntry? in
            guard var result = intents.first(where: { $0.id == intent.id }) else { return nil }
            result.id = nil
            result.kind = .result
            result.intentID = intent.id
            result.time = settings.now
            result.clockSupplied = settings.clockSupplied
            result.result = resolved.applied ? "interrupted-applied" : "interrupted-not-applied"
            result.detail =
                resolved.applied
                ? "the run that wrote this intent stopped before recording its result; the flag shows it was applied"
                : "the run that wrote this intent stopped before the change reached the flag; decided again"
            ports.logger.warning(
                "\(context.rollout): recovered an interrupted change to \(intent.environment): \(result.result ?? "")")
            return result
        }
        if let newRecord = outcome.record {
            try state.save(
                rollout: context.rollout, flag: plan.flag, record: newRecord, now: settings.now,
                enteredPhase: outcome.enteredPhase, audit: results)
            return newRecord
        }
        for result in results { try state.append(result) }
        return record
    }

    // MARK: Health

    private func evaluate(checks: [HealthCheck], plan: Plan, phase: Plan.Phase, since: Date) async -> [HealthResult] {
        let window = RolloutDuration(seconds: max(1, elapsedSeconds(from: since, to: settings.now)))
        guard let metrics = ports.metrics else {
            return checks.map {
                HealthResult(
                    check: $0, result: .noData(reason: "no metrics source configured (pass --metrics)"),
                    environment: phase.environment)
            }
        }
        return await withTaskGroup(of: (Int, HealthResult).self) { group in
            for (index, check) in checks.enumerated() {
                let query = QueryText.substitute(
                    check.query, flag: plan.flag, environment: phase.environment, phase: phase.name, window: window)
                let now = settings.now
                group.addTask {
                    let result = await metrics.evaluate(MetricQuery(check: check.name, query: query, time: now))
                    return (index, HealthResult(check: check, result: result, environment: phase.environment))
                }
            }
            var results: [(Int, HealthResult)] = []
            for await result in group { results.append(result) }
            return results.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }
}

/// What every audit entry of one rollout in one run shares.
struct AuditContext: Sendable {
    var rollout: String
    var flag: String
    var revision: String
    var planBlob: String
    var now: Date
    var clockSupplied: Bool

    func entry(
        kind: AuditEntry.Kind, phase: String?, environment: String?, from: FlagEnvironmentState?,
        to: FlagEnvironmentState?, reason: String, approvals: [String] = [], detail: String?
    ) -> AuditEntry {
        AuditEntry(
            time: now, rollout: rollout, phase: phase, environment: environment, from: from, to: to,
            reason: reason, revision: revision, planBlob: planBlob, approvals: approvals, kind: kind,
            detail: detail, clockSupplied: clockSupplied)
    }

    func event(_ event: AuditEvent) -> AuditEntry {
        entry(
            kind: .event, phase: event.phase, environment: nil, from: nil, to: nil, reason: event.reason,
            detail: event.detail)
    }
}

/// A run that must not start (e.g. `--now` earlier than the last run).
public struct RunRefusal: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
