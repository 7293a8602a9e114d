import Foundation
import Logging
import RolloutAdapters
import RolloutCore
import RolloutGit

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
        let repository = try settings.openedRepository ?? GitRepository(path: settings.repositoryPath)
        var ref = settings.ref
        // `reconcile` never creates the state; `plan` and `--dry-run` never write it (SPEC §5.10).
        let state: (any StateStorage)? =
            try settings.openedState
            ?? (settings.mode.applies
                ? StateStorageFactory.open(settings.statePath)
                : StateStorageFactory.openReadOnly(settings.statePath))
        // SPEC §4.0 rule 1 [r3]: with a state, reconcile reads only the branch the state recorded.
        let isReconcile = settings.mode != .plan
        // `plan` (and `serve`) without `--ref` read what the next reconcile reads, and judge its tip the same way.
        let readsLine = isReconcile || settings.ref == nil
        let line = readsLine ? try state?.keptValues(prefix: TipTrust.keyPrefix) ?? [:] : [:]
        let recordedBranch = line[TipTrust.branchKey]
        if isReconcile, let state, try state.installation() != nil, settings.ref != nil {
            throw RunRefusal(
                "--ref is refused with a state: reconcile reads the branch the state recorded"
                    + (recordedBranch.map { " (\($0))" } ?? "")
                    + "; an operator changes it with `rolloutctl init --adopt`")
        }
        if let recordedBranch { ref = "refs/heads/\(recordedBranch)" }
        if let remote = settings.fetchRemote {
            let branch = recordedBranch ?? settings.ref ?? RepositoryLayout.protectedBranch(protectedBranch(repository))
            do {
                ref = try repository.fetch(remote: remote, branch: branch)
            } catch {
                // SPEC §5.13 [r3]: a failed fetch leaves the tip unknown; every recorded rollout is guarded.
                guard isReconcile, let state, try state.installation() != nil else { throw error }
                return try await untrusted(
                    .fetchFailed("\(error.message)"), ref: branch, revision: line[TipTrust.tipKey] ?? "",
                    policy: nil, state: state, line: line)
            }
            ports.logger.info("fetched \(branch) from \(remote) into \(ref!)")
        }
        // The root of trust `init` recorded is where the policy walk starts (SPEC §4.3).
        // The repository first: a state of another repository is refused before anything else is read.
        if let state, let installation = try state.installation() {
            let (_, tip) = try RepositoryReader.resolve(repository: repository, ref: ref)
            let root = try RepositoryReader.firstParentRoot(
                repository: repository, of: tip, cacheFile: settings.scanCachePath
            ).description
            if installation.repositoryRoot != root {
                throw StateStoreError.anotherRepository(
                    path: state.path, recorded: installation.repositoryRoot,
                    actual: root)
            }
        }
        let policyRoot = try state?.installation()?.policyRootCommit
        let firstRead: LoadedRepository
        do {
            firstRead = try load(repository, ref: ref, policyRoot: policyRoot, line: line)
            if let state {
                try checkInstallation(
                    state, repository: repository, revision: firstRead.revision, policy: firstRead.policy)
            }
        } catch let changed as PolicyRootChanged {
            // SPEC §4.3 [r3]: the tip is not trusted; every recorded rollout is guarded until an operator acts.
            guard let state else { throw RunRefusal("the policy root changed: \(changed.message)") }
            let (name, tip) = try RepositoryReader.resolve(repository: repository, ref: ref)
            return try await untrusted(
                .policyRootChanged(changed.message), ref: name, revision: tip.description, policy: nil, state: state,
                line: line)
        }
        let loaded: LoadedRepository
        // The first r3 run of a state that recorded no branch reads the branch the policy in force names, not
        // the one a pending proposal at HEAD names (SPEC §4.0 rule 1, §4.3).
        if readsLine, recordedBranch == nil, settings.fetchRemote == nil, try state?.installation() != nil,
            let branch = firstRead.policy.inForceSet?.approvers?.protectedBranch,
            firstRead.ref != branch, firstRead.ref != "refs/heads/\(branch)", repository.hasBranch(branch)
        {
            loaded = try load(repository, ref: "refs/heads/\(branch)", policyRoot: policyRoot, line: line)
        } else {
            loaded = firstRead
        }
        if let state, loaded.revision != firstRead.revision {
            try checkInstallation(state, repository: repository, revision: loaded.revision, policy: loaded.policy)
        }
        var unwritable = state?.unwritableReason  // SPEC §5.3 [r3]
        if settings.mode.applies, let state {
            let latest = settings.clockSupplied ? try state.latestRunTime() : nil
            if let refusal = RunRules.clockRefusal(
                now: settings.now, clockSupplied: settings.clockSupplied, latestRun: latest)
            {
                throw RunRefusal(refusal)
            }
            do {
                try state.recordRun(time: settings.now, clockSupplied: settings.clockSupplied)
            } catch  where UnrecordedWrites.isUnwritable(error, state: state) {
                unwritable = unwritable ?? "\(error)"
                ports.logger.error("\(error): this run records nothing, and only lowers exposure")
            }
        }

        var trust = TipTrust.trusted
        if readsLine, let state, try state.installation() != nil, let tip = ObjectID(hex: loaded.revision) {
            trust = try judge(tip, loaded, repository: repository, state: state, line: line, unwritable: &unwritable)
        }
        if trust != .trusted {
            return try await untrusted(
                trust, ref: loaded.ref, revision: loaded.revision, policy: loaded.policy, state: state, line: line)
        }
        let stored = try state?.allRollouts() ?? []
        let guards = try Self.guards(in: state)

        let selected = loaded.snapshot.rollouts.filter {
            settings.rollouts.isEmpty || settings.rollouts.contains($0.name)
        }
        let storedByName = Dictionary(stored.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let openIntents = settings.mode.applies ? try state?.allUnresolvedIntents() ?? [:] : [:]
        let policyErrors = loaded.snapshot.policyDiagnostics.map(ReportedError.init)

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
                let kept = guards[rollout.name]
                group.addTask {
                    (
                        index,
                        await reconcile(
                            rollout: rollout, approvals: approvals,
                            policy: loaded.policy.inForceSet?.approvers, record: record,
                            intents: intents, state: state, revision: loaded.revision, guard: kept)
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

        reports += await orphans(stored, of: loaded, guards: guards, state: state)
        if settings.mode.applies, let state {
            await Outbox(state: state, notifier: ports.notifier, logger: ports.logger).deliver(now: settings.now)
        }
        var report = RunReport(
            ref: loaded.ref, revision: loaded.revision, now: settings.now, mode: settings.mode,
            rollouts: reports, policyErrors: policyErrors, policy: loaded.policy)
        if settings.mode.applies, let reason = unwritable {
            report.runErrors.append(UnrecordedWrites.runError(reason))  // SPEC §5.3 [r3]
        }
        return report
    }

    /// Rollouts the state knows but the repository no longer has (SPEC §5 rule 8): left as they are, reported
    /// orphaned, and watched by their guard until they finished.
    private func orphans(
        _ stored: [StoredRollout], of loaded: LoadedRepository, guards: [String: RolloutGuard],
        state: (any StateStorage)?
    ) async -> [RolloutReport] {
        var reports: [RolloutReport] = []
        let present = Set(loaded.snapshot.rollouts.map(\.name))
        let drivenFlags = Set(loaded.snapshot.rollouts.compactMap { $0.plan?.flag })
        for orphan in stored
        where !present.contains(orphan.name)
            && (settings.rollouts.isEmpty || settings.rollouts.contains(orphan.name))
        {
            var report = RolloutReport(
                name: orphan.name, flag: orphan.flag, planBlob: orphan.record.planBlob, status: .orphaned,
                currentPhase: orphan.record.phase, nextPhase: nil, blockers: [RunRules.orphaned(orphan.name)])
            if RunRules.isGuarded(status: orphan.record.status, flag: orphan.flag, drivenFlags: drivenFlags) {
                report = await guarded(
                    report, guard: guards[orphan.name], record: orphan.record, currentBlob: nil, state: state,
                    revision: loaded.revision, why: "the rollout was removed from the repository")
            }
            reports.append(report)
        }
        return reports
    }

    /// SPEC §4.0 rule 5 [r3]: the first-parent line only grows. The tip judged against the one the state
    /// recorded; a trusted tip of an applying run is recorded (a state written before r3 records its branch
    /// on its first r3 run, audited).
    private func judge(
        _ tip: ObjectID, _ loaded: LoadedRepository, repository: GitRepository, state: any StateStorage,
        line: [String: String], unwritable: inout String?
    ) throws -> TipTrust {
        let recordedBranch = line[TipTrust.branchKey]
        let recordedTip = line[TipTrust.tipKey]
        var relation: TipTrust.Relation?
        if let recordedTip, let recorded = ObjectID(hex: recordedTip) {
            if try repository.isOnFirstParentLine(recorded, of: tip) {
                relation = .grows
            } else if (try? repository.isOnFirstParentLine(tip, of: recorded)) == true {
                relation = .behind
            } else {
                relation = .diverged
            }
        }
        let branchInForce = loaded.policy.inForceSet?.approvers?.protectedBranch
        let trust = TipTrust.judge(
            recordedTip: recordedTip, tip: loaded.revision, relation: relation, recordedBranch: recordedBranch,
            branchInForce: recordedBranch == nil ? nil : branchInForce)
        if trust == .trusted, settings.mode.applies {
            // A state written before r3 records its branch and tip on its first r3 run (audited).
            var values: [String: String?] = [TipTrust.tipKey: loaded.revision]
            var audit: [AuditEntry] = []
            if recordedBranch == nil {
                let branch = branchInForce ?? RepositoryLayout.protectedBranch(nil)
                values[TipTrust.branchKey] = branch
                audit.append(
                    AuditEntry(
                        time: settings.now, rollout: "", phase: nil, environment: nil, from: nil, to: nil,
                        reason: "branch", revision: loaded.revision, planBlob: nil, approvals: [], kind: .event,
                        detail: "the state now reads refs/heads/\(branch) (recorded on the first run of r3)",
                        clockSupplied: settings.clockSupplied))
            }
            if unwritable == nil {
                do {
                    try state.keep(values, audit: audit)
                } catch  where UnrecordedWrites.isUnwritable(error, state: state) {
                    unwritable = "\(error)"  // the tip is recorded by the next run that can write
                }
            }
        }
        return trust
    }

    private func load(
        _ repository: GitRepository, ref: String?, policyRoot: String?, line: [String: String]
    ) throws -> LoadedRepository {
        do {
            return try RepositoryReader.load(
                repository: repository, ref: ref, cacheFile: settings.scanCachePath,
                policyRoot: policyRoot, acceptedLine: TipTrust.acceptedLine(line),
                writesCache: settings.writesScanCache)
        } catch {
            guard error.code == .policyRootNotFound else { throw error }
            throw PolicyRootChanged(message: error.message)
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
        switch RunRules.policyRoot(
            recordedCommit: installation.policyRootCommit, recordedDigest: installation.policyRootDigest,
            found: policy.root.map { ($0.commit, $0.digest) }, statePath: state.path)
        {
        case .same:
            break
        case .changed(let message):
            throw PolicyRootChanged(message: message)
        case .pin(let commit, let digest):
            guard settings.mode.applies else { break }
            var pinned = installation
            pinned.policyRootCommit = commit
            pinned.policyRootDigest = digest
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
        /// The guard to keep once the flush made the changes durable (SPEC §5.13).
        var guardToKeep: RolloutGuard?
    }

    func reconcile(
        rollout: RolloutFiles, approvals: [ApprovalStatus], policy: ApproversPolicy?, record: RolloutRecord?,
        intents: [AuditEntry], state: (any StateStorage)?, revision: String, guard kept: RolloutGuard? = nil
    ) async -> RolloutOutcome {
        var report = RolloutReport(
            name: rollout.name, flag: rollout.plan?.flag ?? kept?.flag, planBlob: rollout.planBlob,
            status: .invalid, currentPhase: record?.phase, nextPhase: nil, approvals: approvals)
        report.errors = rollout.allDiagnostics.map(ReportedError.init)
        // A plan the flag store cannot carry out (e.g. 12.5% in an Unleash environment) is invalid too.
        let storeProblems = rollout.plan.map { ports.flags.planProblems($0, path: rollout.planPath) } ?? []
        report.errors += storeProblems.map(ReportedError.init)
        guard let plan = rollout.plan, let planBlob = rollout.planBlob, rollout.isValid, storeProblems.isEmpty else {
            report.blockers = [RunRules.invalidPlan]
            // SPEC §5 rule 7 [r3]: a broken merge never disarms a rollback; the guard applies.
            let report = await guarded(
                report, guard: kept, record: record, currentBlob: rollout.planBlob, state: state,
                revision: revision, why: "the plan is invalid")
            return RolloutOutcome(report: report)
        }
        report.guardedBy = kept?.planBlob
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
            let refusals = RunRules.refusals(flag, plan: plan)
            if !refusals.isEmpty {
                var refused = report
                refused.warnings = RunRules.warnings(flag, plan: plan)
                for refusal in refusals { refused = failed(refused, refusal) }
                return RolloutOutcome(report: refused)
            }
            if settings.mode.applies, let state, !intents.isEmpty {
                do {
                    record = try recover(
                        intents: intents, plan: plan, flag: flag, record: record, state: state,
                        context: context)
                    intents = []
                } catch  where UnrecordedWrites.isUnwritable(error, state: state) {
                    intents = []  // SPEC §5.3 [r3]: resolved by the next run that can write; this one only lowers
                } catch {
                    return RolloutOutcome(report: failed(report, "recovering interrupted changes: \(error)"))
                }
            }
            let (current, enteredAt) = PhaseMachine.currentPhase(
                plan: plan, planBlob: planBlob, record: record,
                actual: flag.environments, now: settings.now)
            var health: [HealthResult] = []
            if let measured = PhaseMachine.measuredPhase(
                plan: plan, planBlob: planBlob, record: record, current: current)
            {
                health = await evaluate(
                    checks: rollout.checks, plan: plan, phase: plan.phases[measured],
                    since: enteredAt ?? settings.now)
            }
            // SPEC §5 rule 13 [r3]: a plan edited and not approved again is watched by its guard too.
            if let kept, kept.planBlob != planBlob, !GuardRules.gatesHeld(current: current, missingRoles: missingRoles)
            {
                report.guardNote =
                    "guarded by the checks of plan \(kept.planBlob.prefix(7)) (plan.json changed and is not approved again)"
                let guardHealth = await evaluate(guard: kept, since: enteredAt ?? settings.now)
                if let rollback = GuardRules.decide(
                    guard: kept, record: record, currentBlob: planBlob, status: .holding, actual: flag.environments,
                    health: guardHealth, why: "plan.json changed and is not approved again")
                {
                    report = await execute(
                        guarded: rollback, report: report, guard: kept, state: state, revision: revision,
                        version: flag.version)
                    return RolloutOutcome(report: report)
                }
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
            report.warnings = RunRules.warnings(flag, plan: plan)
            // [issue 11] serve's view and the projected timeline; reads only what this run already decided.
            report.plan = plan
            report.actual = flag.environments
            report.timeline = RunHooks.timeline(
                plan: plan, missingRoles: missingRoles, current: current,
                enteredAt: enteredAt, decision: decision, now: settings.now)
            guard settings.mode.applies, let state else { return RolloutOutcome(report: report) }

            let target = ExecutionTarget(
                context: context, notify: plan.rollback.notify, patchReason: nil, patchPlanBlob: planBlob)
            var execution = Execution(
                kind: .plan, flag: plan.flag, decision: decision, version: flag.version,
                stagesWrites: ports.flags.stagesWrites, conflictsSoFar: conflicts)
            let ending = await carryOut(
                &execution, target: target, state: state, report: &report,
                watchNotifyChecks: {
                    // [issue 11] notify checks: one notification per breach episode (NotifyWatch), never a gate.
                    await RunHooks.watchNotifyChecks(
                        rollout: rollout.name, plan: plan, checks: rollout.checks, health: decision.health,
                        phase: decision.currentPhase, revision: revision, state: state, now: settings.now,
                        ports: ports)
                },
                keepGuard: { report in
                    keepGuard(
                        plan: plan, planBlob: planBlob, checks: rollout.checks, decision: decision,
                        missingRoles: missingRoles, kept: kept, state: state, context: context, report: &report)
                })
            switch ending {
            case .decideAgain(let snapshot):
                conflicts += 1
                reread = snapshot  // the next decision's input
                continue
            case .staged(let results):
                let outbox =
                    decision.commitAfter.map {
                        outboxMessages($0, context: context, flag: plan.flag, notify: plan.rollback.notify)
                    } ?? []
                let fresh = freshGuard(
                    plan: plan, planBlob: planBlob, checks: rollout.checks, decision: decision,
                    missingRoles: missingRoles, kept: kept)
                return RolloutOutcome(
                    report: report,
                    staged: StagedWrites(
                        context: context, rollout: rollout.name, flag: plan.flag,
                        results: results.map { entry(of: $0, context: context) },
                        commit: decision.commitAfter, outbox: outbox, guardToKeep: fresh))
            case .applied, .failed:
                return RolloutOutcome(report: report)
            }
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
                    continue
                }
            }
            if let fresh = staged.guardToKeep {
                save(fresh, state: state, context: staged.context, report: &outcomes[index].report)
            }
        }
    }

    func outboxMessages(
        _ commit: StateCommit, context: AuditContext, flag: String, notify: [String]
    ) -> [OutboxMessage] {
        commit.notifications.flatMap {
            Outbox.messages(
                rollout: context.rollout, flag: flag, status: $0.status.rawValue, phase: $0.phase, message: $0.message,
                revision: context.revision, checks: $0.checks, to: notify, now: settings.now)
        }
    }

    func failed(_ report: RolloutReport, _ message: String) -> RolloutReport {
        var report = report
        report.errors.append(ReportedError(message: message))
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

    func evaluate(checks: [HealthCheck], plan: Plan, phase: Plan.Phase, since: Date) async -> [HealthResult] {
        await evaluate(
            checks: checks, flag: plan.flag, environment: phase.environment, phaseName: phase.name, since: since)
    }

    func evaluate(
        checks: [HealthCheck], flag: String, environment: String, phaseName: String, since: Date
    ) async -> [HealthResult] {
        guard let metrics = ports.metrics else {
            return checks.map {
                HealthResult(
                    check: $0, result: .noData(reason: "no metrics source configured (pass --metrics)"),
                    environment: environment)
            }
        }
        let queries = HealthQueries.at(
            settings.now, checks: checks, flag: flag, environment: environment, phase: phaseName, since: since)
        return await withTaskGroup(of: (Int, HealthResult).self) { group in
            for (index, (check, query)) in zip(checks, queries).enumerated() {
                group.addTask {
                    (index, HealthResult(check: check, result: await metrics.evaluate(query), environment: environment))
                }
            }
            var results: [(Int, HealthResult)] = []
            for await result in group { results.append(result) }
            return results.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }
}
