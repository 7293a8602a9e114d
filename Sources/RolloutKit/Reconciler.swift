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
    /// How many rollouts are reconciled at once (flag and metrics calls).
    public var concurrency: Int

    public init(repositoryPath: String = ".", ref: String? = nil, rollouts: [String] = [], now: Date = Date(),
                statePath: String = ".rolloutctl/state.sqlite", mode: RunMode = .plan, fetchRemote: String? = nil,
                concurrency: Int = 8) {
        self.repositoryPath = repositoryPath
        self.ref = ref
        self.rollouts = rollouts
        self.now = now
        self.statePath = statePath
        self.mode = mode
        self.fetchRemote = fetchRemote
        self.concurrency = concurrency
    }

    /// The history walk's cache (HistoryCache's binary format) lives beside the state database.
    var scanCachePath: String {
        URL(fileURLWithPath: statePath).deletingLastPathComponent().appendingPathComponent("history-walk.cache").path
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

/// An error of one rollout: a file position when it comes from a file, a message always.
public struct RolloutError: Equatable, Sendable {
    public var path: String?
    public var line: Int?
    public var column: Int?
    public var message: String

    public init(_ diagnostic: Diagnostic) {
        path = diagnostic.path
        line = diagnostic.line
        column = diagnostic.column
        message = diagnostic.message
    }

    public init(message: String) {
        self.message = message
    }

    public var description: String {
        guard let path else { return message }
        return "\(path):\(line ?? 1):\(column ?? 1): \(message)"
    }
}

/// One rollout's part of a plan or reconcile.
public struct RolloutReport: Sendable {
    public var name: String
    public var flag: String?
    public var planBlob: String?
    public var status: RolloutStatus
    public var currentPhase: String?
    public var nextPhase: String?
    public var blockers: [Blocker] = []
    public var approvals: [ApprovalStatus] = []
    public var changes: [Change] = []
    public var health: [HealthResult] = []
    public var errors: [RolloutError] = []
    /// For `reconcile`: whether the changes were applied.
    public var applied = false
}

/// The result of a run.
public struct RunReport: Sendable {
    public var ref: String
    public var revision: String
    public var now: Date
    public var mode: RunMode
    public var rollouts: [RolloutReport]
    /// Problems in `policies/` (they affect every rollout that needs approvals).
    public var policyErrors: [RolloutError]
    /// The policy in force and the proposal waiting for approvals (SPEC §4.3).
    public var policy: PolicyState?

    public var changeCount: Int { rollouts.filter { !$0.changes.isEmpty }.count }
    public var errorCount: Int { rollouts.filter { !$0.errors.isEmpty }.count + (policyErrors.isEmpty ? 0 : 1) }
    public var blockedCount: Int {
        rollouts.filter { $0.changes.isEmpty && $0.errors.isEmpty && !$0.blockers.isEmpty }.count
    }
    public var unchangedCount: Int {
        rollouts.filter { $0.changes.isEmpty && $0.errors.isEmpty && $0.blockers.isEmpty }.count
    }
}

/// Runs `plan` and `reconcile`: reads the repository, the state and the flags; decides; applies.
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
            let branch = ref ?? protectedBranch(repository) ?? "main"
            ref = try repository.fetch(remote: remote, branch: branch)
            ports.logger.info("fetched \(branch) from \(remote) into \(ref!)")
        }
        let loaded = try RepositoryReader.load(repository: repository, ref: ref, cacheFile: settings.scanCachePath)
        let state: StateStore? = settings.mode.applies
            ? try StateStore(path: settings.statePath)
            : try StateStore.openIfExists(path: settings.statePath)

        let selected = loaded.snapshot.rollouts.filter { settings.rollouts.isEmpty || settings.rollouts.contains($0.name) }
        let stored = try state?.allRollouts() ?? []
        let storedByName = Dictionary(stored.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let policyErrors = loaded.snapshot.policyDiagnostics.map(RolloutError.init)

        var reports = try await withThrowingTaskGroup(of: (Int, RolloutReport).self) { group in
            var results: [(Int, RolloutReport)] = []
            var next = 0
            func launch() {
                guard next < selected.count else { return }
                let index = next
                let rollout = selected[index]
                let approvals = loaded.approvals[rollout.name] ?? []
                let record = storedByName[rollout.name]?.record
                group.addTask {
                    (index, await reconcile(rollout: rollout, approvals: approvals,
                                            policy: loaded.policy.inForceSet?.approvers, record: record, state: state,
                                            revision: loaded.revision))
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

        // Rollouts the state knows but the repository no longer has: left as they are.
        let present = Set(loaded.snapshot.rollouts.map(\.name))
        for orphan in stored where !present.contains(orphan.name)
            && (settings.rollouts.isEmpty || settings.rollouts.contains(orphan.name)) {
            reports.append(RolloutReport(
                name: orphan.name, flag: orphan.flag, planBlob: orphan.record.planBlob, status: .orphaned,
                currentPhase: orphan.record.phase, nextPhase: nil,
                blockers: [Blocker(kind: .state, detail: "rollouts/\(orphan.name) was removed from the repository; "
                    + "its flag is left as it is (rolloutctl never prunes)")]))
        }
        return RunReport(ref: loaded.ref, revision: loaded.revision, now: settings.now, mode: settings.mode,
                         rollouts: reports, policyErrors: policyErrors, policy: loaded.policy)
    }

    private func protectedBranch(_ repository: GitRepository) -> String? {
        guard let head = try? repository.head() else { return nil }
        return RepositoryReader.protectedBranch(repository: repository, at: head)
    }

    // MARK: One rollout

    func reconcile(rollout: RolloutFiles, approvals: [ApprovalStatus], policy: ApproversPolicy?,
                   record: RolloutRecord?, state: StateStore?, revision: String) async -> RolloutReport {
        var report = RolloutReport(name: rollout.name, flag: rollout.plan?.flag, planBlob: rollout.planBlob,
                                   status: .invalid, currentPhase: record?.phase, nextPhase: nil, approvals: approvals)
        report.errors = rollout.allDiagnostics.map(RolloutError.init)
        guard let plan = rollout.plan, let planBlob = rollout.planBlob, rollout.isValid else {
            report.blockers = [Blocker(kind: .error, detail: "the plan is invalid; nothing is applied until it is fixed "
                + "(run `rolloutctl validate`)")]
            return report
        }
        var record = record
        var conflicts = 0
        while true {
            let flag: FlagSnapshot
            do {
                flag = try await ports.flags.read(flag: plan.flag)
            } catch {
                return failed(report, "reading flag \(plan.flag): \(error)", plan: plan)
            }
            if settings.mode.applies, let state {
                do {
                    record = try recover(rollout: rollout.name, plan: plan, flag: flag, record: record, state: state)
                } catch {
                    return failed(report, "recovering interrupted changes: \(error)", plan: plan)
                }
            }
            let (current, enteredAt) = PhaseMachine.currentPhase(plan: plan, planBlob: planBlob, record: record,
                                                                 actual: flag.environments, now: settings.now)
            var health: [HealthResult] = []
            let rolledBack = record.map { $0.status == .rolledBack && $0.planBlob == planBlob } ?? false
            if !rolledBack, plan.state != .aborted, PhaseMachine.needsHealth(plan: plan, phaseIndex: current),
               let current {
                health = await evaluate(checks: rollout.checks, plan: plan, phase: plan.phases[current],
                                        since: enteredAt ?? settings.now)
            }
            let decision = PhaseMachine.decide(PhaseMachine.Input(
                plan: plan, planBlob: planBlob, approvals: approvals,
                missingRoles: ApprovalRules.missingRoles(plan: plan, policy: policy, statuses: approvals),
                record: record, actual: flag.environments,
                health: health, now: settings.now))
            report.status = decision.status
            report.currentPhase = decision.currentPhase
            report.nextPhase = decision.nextPhase
            report.blockers = decision.blockers
            report.changes = decision.changes
            report.health = decision.health
            guard settings.mode.applies, let state else { return report }

            // Apply: an intent before each call, its result after.
            let allowedBy = approvals.filter { $0.counted && $0.phase == decision.advancedTo }
                .map { "\($0.role ?? "?")=\($0.approver ?? "?")@\(($0.commit ?? "").prefix(12))" }
            var version = flag.version
            var conflict = false
            for change in decision.changes {
                let intent = AuditEntry(
                    time: settings.now, rollout: rollout.name, phase: decision.advancedTo ?? decision.currentPhase,
                    environment: change.environment, from: change.from, to: change.to, reason: change.reason.rawValue,
                    revision: revision, planBlob: planBlob, approvals: change.reason == .advance ? allowedBy : [],
                    kind: .intent, detail: changeDetail(change, decision))
                let intentID: Int64
                do {
                    intentID = try state.append(intent)
                } catch {
                    return failed(report, "writing the audit log: \(error)", plan: plan)
                }
                var result = intent
                result.kind = .result
                result.intentID = intentID
                do {
                    let updated = try await ports.flags.apply(
                        flag: plan.flag,
                        patch: FlagPatch(environment: change.environment, enabled: change.to.enabled,
                                         coverage: change.to.coverage),
                        ifMatch: version)
                    version = updated.version
                    result.result = "applied"
                    try? state.append(result)
                    ports.logger.info("applied \(plan.flag)[\(change.environment)] \(describe(change.from)) → \(describe(change.to)) (\(change.reason.rawValue))")
                } catch FlagStoreError.versionConflict {
                    result.result = "conflict"
                    result.detail = "the flag changed meanwhile (412); re-reading and deciding again"
                    try? state.append(result)
                    conflict = true
                    break
                } catch {
                    result.result = "failed"
                    result.detail = "\(error)"
                    try? state.append(result)
                    return failed(report, "applying \(plan.flag)[\(change.environment)]: \(error)", plan: plan)
                }
            }
            if conflict {
                conflicts += 1
                if conflicts > 1 {
                    return failed(report, "flag \(plan.flag) kept changing while it was being updated (412 twice); "
                        + "the next run tries again", plan: plan)
                }
                continue
            }
            var events: [AuditEntry] = []
            let previousStatus = record?.status
            // The changes' intents carry a rollback's values; a hold's values need their own event,
            // even when this run also corrects drift (its intents carry no health values).
            if decision.status != previousStatus, decision.changes.isEmpty || decision.status == .holding,
               [.holding, .completed, .rolledBack, .paused, .aborted].contains(decision.status) {
                events.append(AuditEntry(
                    time: settings.now, rollout: rollout.name, phase: decision.currentPhase, environment: nil,
                    from: nil, to: nil, reason: decision.status.rawValue, revision: revision, planBlob: planBlob,
                    approvals: [], kind: .event,
                    detail: decision.blockers.map(\.detail).joined(separator: "; ")))
            }
            let enteredPhase = decision.advancedTo != nil || (record == nil && decision.record.phase != nil)
            // A run that changes nothing writes nothing: a cron tick over 1,000 steady rollouts
            // would otherwise cost 1,000 fsync'd transactions.
            let unchanged = record == decision.record && events.isEmpty && !enteredPhase
            do {
                if !unchanged {
                    try state.save(rollout: rollout.name, flag: plan.flag, record: decision.record, now: settings.now,
                                   enteredPhase: enteredPhase, audit: events)
                }
            } catch {
                return failed(report, "saving state: \(error)", plan: plan)
            }
            report.applied = true
            if let message = decision.notification, decision.status != previousStatus || decision.status == .rolledBack
                && !decision.changes.isEmpty {
                await ports.notifier.notify(names: plan.rollback.notify, event: NotificationEvent(
                    rollout: rollout.name, flag: plan.flag, status: decision.status.rawValue,
                    phase: decision.currentPhase, message: message, revision: revision, time: settings.now,
                    checks: decision.health.map { ($0.check.name, $0.value, $0.noDataReason) }))
            }
            return report
        }
    }

    private func failed(_ report: RolloutReport, _ message: String, plan: Plan) -> RolloutReport {
        var report = report
        report.errors.append(RolloutError(message: message))
        report.blockers.append(Blocker(kind: .error, detail: message))
        report.applied = false
        ports.logger.error("\(report.name): \(message)")
        return report
    }

    private func changeDetail(_ change: Change, _ decision: Decision) -> String? {
        switch change.reason {
        case .rollback, .hold:
            let values = decision.health.filter { $0.verdict != .pass }.map(\.summary)
            return values.isEmpty ? nil : values.joined(separator: "; ")
        default:
            return nil
        }
    }

    /// Finishes what an interrupted run started: each intent without a result is checked against
    /// the flag as it is now, and an advance that reached the flag is recorded as entered.
    private func recover(rollout: String, plan: Plan, flag: FlagSnapshot, record: RolloutRecord?,
                         state: StateStore) throws -> RolloutRecord? {
        var record = record
        for intent in try state.unresolvedIntents(rollout: rollout) {
            guard let environment = intent.environment, let target = intent.to, let intentID = intent.id else { continue }
            let applied = PhaseMachine.matches(flag.environments[environment], target)
            var result = intent
            result.kind = .result
            result.intentID = intentID
            result.time = settings.now
            result.result = applied ? "interrupted-applied" : "interrupted-not-applied"
            result.detail = applied
                ? "the run that wrote this intent stopped before recording its result; the flag shows it was applied"
                : "the run that wrote this intent stopped before the change reached the flag; decided again"
            var newRecord: RolloutRecord?
            if applied, intent.reason == Change.Reason.advance.rawValue, let phase = intent.phase {
                newRecord = RolloutRecord(phase: phase, enteredAt: intent.time, status: .progressing, planBlob: intent.planBlob)
            } else if applied, intent.reason == Change.Reason.rollback.rawValue {
                newRecord = RolloutRecord(phase: record?.phase ?? intent.phase, enteredAt: record?.enteredAt,
                                          status: .rolledBack, planBlob: intent.planBlob)
            }
            if let newRecord {
                try state.save(rollout: rollout, flag: plan.flag, record: newRecord, now: settings.now,
                               enteredPhase: intent.reason == Change.Reason.advance.rawValue, audit: [result])
                record = newRecord
            } else {
                try state.append(result)
            }
            ports.logger.warning("\(rollout): recovered an interrupted change to \(environment): \(result.result ?? "")")
        }
        return record
    }

    // MARK: Health

    private func evaluate(checks: [HealthCheck], plan: Plan, phase: Plan.Phase, since: Date) async -> [HealthResult] {
        let window = RolloutDuration(seconds: max(1, elapsedSeconds(from: since, to: settings.now)))
        guard let metrics = ports.metrics else {
            return checks.map {
                HealthResult(check: $0, result: .noData(reason: "no metrics source configured (pass --metrics)"),
                             environment: phase.environment)
            }
        }
        return await withTaskGroup(of: (Int, HealthResult).self) { group in
            for (index, check) in checks.enumerated() {
                let query = check.query
                    .replacingOccurrences(of: "{{flag}}", with: plan.flag)
                    .replacingOccurrences(of: "{{environment}}", with: phase.environment)
                    .replacingOccurrences(of: "{{phase}}", with: phase.name)
                    .replacingOccurrences(of: "{{window}}", with: window.prometheus)
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

func describe(_ state: FlagEnvironmentState?) -> String {
    guard let state else { return "absent" }
    return state.enabled ? "enabled \(formatNumber(state.coverage))%" : "disabled"
}
