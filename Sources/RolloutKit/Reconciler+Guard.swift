import Foundation
import RolloutAdapters
import RolloutCore
import RolloutGit

// SPEC §5 rule 13 [r3] (the guard) and §4.0 rules 1 and 5 (an untrusted tip), as the Reconciler executes them;
// what they decide is `GuardRules` and `TipTrust` in the core.
extension Reconciler {

    /// A run whose tip is not trusted (SPEC §4.0 rules 1 and 5): every recorded rollout is guarded, nothing is
    /// raised, no new tip is recorded; a rewritten history is notified once per new tip.
    func untrusted(
        _ trust: TipTrust, ref: String, revision: String, policy: PolicyState?, state: (any StateStorage)?,
        line: [String: String]
    ) async throws -> RunReport {
        let stored = try state?.allRollouts() ?? []
        let guards = try Self.guards(in: state)
        let detail = trust.blocker ?? ""
        ports.logger.warning("\(detail)")
        var reports: [RolloutReport] = []
        for rollout in stored where settings.rollouts.isEmpty || settings.rollouts.contains(rollout.name) {
            var report = RolloutReport(
                name: rollout.name, flag: rollout.flag, planBlob: rollout.record.planBlob, status: .holding,
                currentPhase: rollout.record.phase, nextPhase: nil, blockers: [Blocker(kind: .state, detail: detail)])
            if trust.isError { report.errors = [RolloutError(message: detail)] }
            let finished: Set<RolloutStatus> = [.completed, .aborted, .rolledBack]
            if !finished.contains(rollout.record.status) {
                report = await guarded(
                    report, guard: guards[rollout.name], record: rollout.record, currentBlob: rollout.record.planBlob,
                    state: state, revision: revision, why: "the tip is not trusted")
            }
            reports.append(report)
        }
        if settings.mode.applies, let state, case .rewritten = trust, line[TipTrust.notifiedKey] != revision {
            let key = UUID().uuidString.lowercased()
            var outbox: [OutboxMessage] = []
            for target in Set(guards.values.flatMap(\.notify)).sorted() {
                let body = NotificationEvent(
                    id: key, rollout: "", flag: "", status: "history-rewritten", phase: nil, message: detail,
                    revision: revision, time: settings.now, checks: []
                ).json.render(pretty: false)
                outbox.append(OutboxMessage(key: key, target: target, rollout: "", body: body, createdAt: settings.now))
            }
            let event = AuditEntry(
                time: settings.now, rollout: "", phase: nil, environment: nil, from: nil, to: nil,
                reason: "history-rewritten", revision: revision, planBlob: nil, approvals: [], kind: .event,
                detail: detail, clockSupplied: settings.clockSupplied)
            do {
                try state.keep([TipTrust.notifiedKey: revision], audit: [event], outbox: outbox)
            } catch {
                ports.logger.error("the history rewrite could not be recorded or notified: \(error)")
            }
        }
        if settings.mode.applies, let state {
            await Outbox(state: state, notifier: ports.notifier, logger: ports.logger).deliver(now: settings.now)
        }
        return RunReport(
            ref: ref, revision: revision, now: settings.now, mode: settings.mode, rollouts: reports,
            policyErrors: trust.isError && reports.isEmpty ? [RolloutError(message: detail)] : [], policy: policy)
    }

    /// The guards the state keeps, by rollout.
    static func guards(in state: (any StateStorage)?) throws -> [String: RolloutGuard] {
        guard let state else { return [:] }
        var guards: [String: RolloutGuard] = [:]
        for (key, text) in try state.keptValues(prefix: GuardRules.keyPrefix) {
            guard let kept = GuardRules.decode(text) else { continue }
            guards[String(key.dropFirst(GuardRules.keyPrefix.count))] = kept
        }
        return guards
    }

    /// After a trusted run whose gates held up to the phase now in force, the state keeps this plan's checks as
    /// the rollout's guard (a state written before r3 takes its guards this way on its first r3 run).
    func keepGuard(
        plan: Plan, planBlob: String, checks: [HealthCheck], decision: Decision, missingRoles: [[String]],
        kept: RolloutGuard?, state: any StateStorage, context: AuditContext, report: inout RolloutReport
    ) {
        guard
            let fresh = freshGuard(
                plan: plan, planBlob: planBlob, checks: checks, decision: decision, missingRoles: missingRoles,
                kept: kept)
        else { return }
        save(fresh, state: state, context: context, report: &report)
    }

    /// The guard this decision earns when it differs from the one kept (nil otherwise).
    func freshGuard(
        plan: Plan, planBlob: String, checks: [HealthCheck], decision: Decision, missingRoles: [[String]],
        kept: RolloutGuard?
    ) -> RolloutGuard? {
        guard decision.status != .rolledBack, decision.status != .overridden else { return nil }
        let phase = (decision.advancedTo ?? decision.currentPhase).flatMap { plan.phaseIndex(named: $0) }
        guard
            let fresh = GuardRules.guardToKeep(
                plan: plan, planBlob: planBlob, checks: checks, current: phase, missingRoles: missingRoles),
            fresh != kept
        else { return nil }
        return fresh
    }

    /// Keeps a guard in the state (a record, like the rollout's own: not an audit event).
    func save(
        _ fresh: RolloutGuard, state: any StateStorage, context: AuditContext, report: inout RolloutReport
    ) {
        do {
            try state.keep([GuardRules.key(rollout: context.rollout): GuardRules.encode(fresh)], audit: [])
            report.guardedBy = fresh.planBlob
        } catch {
            ports.logger.error("\(context.rollout): keeping the guard failed: \(error)")
        }
    }

    /// A rollout whose current plan cannot be trusted (invalid, orphaned): its guard's checks are evaluated and
    /// a breach of a rollback check rolls back; nothing is raised. Without a guard, the report says so.
    func guarded(
        _ report: RolloutReport, guard kept: RolloutGuard?, record: RolloutRecord?, currentBlob: String?,
        state: (any StateStorage)?, revision: String, why: String
    ) async -> RolloutReport {
        var report = report
        guard let kept else {
            report.guardNote = "nothing guards it: no plan of it held its gates in a run yet"
            return report
        }
        report.guardedBy = kept.planBlob
        report.flag = kept.flag
        report.guardNote = "guarded by the checks of plan \(kept.planBlob.prefix(7)) (\(why))"
        let health = await evaluate(guard: kept, since: record?.enteredAt ?? settings.now)
        report.health = health
        // The flag is read only when the guard may act on it: a breach, or a guarded rollback to finish.
        let rollbackToFinish = record.map { $0.status == .rolledBack && $0.planBlob == currentBlob } ?? false
        guard rollbackToFinish || GuardRules.rollbackBreach(guard: kept, health: health) != nil else { return report }
        let flag: FlagSnapshot
        do {
            flag = try await ports.flags.read(flag: kept.flag)
        } catch {
            return failed(report, "reading flag \(kept.flag) for its guard: \(error)")
        }
        report.actual = flag.environments
        guard
            let decision = GuardRules.decide(
                guard: kept, record: record, currentBlob: currentBlob, status: report.status,
                actual: flag.environments, health: health, why: why)
        else { return report }
        return await execute(
            guarded: decision, report: report, guard: kept, state: state, revision: revision, version: flag.version)
    }

    /// Executes a guard's decision: the rolled-back record and its notification first, then each disable with
    /// its intent and result. A state that cannot be written never stops the disables.
    func execute(
        guarded decision: Decision, report: RolloutReport, guard kept: RolloutGuard, state: (any StateStorage)?,
        revision: String, version read: String
    ) async -> RolloutReport {
        var report = report
        report.status = decision.status
        report.currentPhase = decision.currentPhase
        report.nextPhase = nil
        report.changes = decision.changes
        report.blockers = decision.blockers + report.blockers.filter { $0.kind == .error || $0.kind == .state }
        report.health = decision.health
        guard settings.mode.applies, let state else { return report }
        let context = AuditContext(
            rollout: report.name, flag: kept.flag, revision: revision,
            planBlob: decision.record.planBlob ?? kept.planBlob,
            now: settings.now, clockSupplied: settings.clockSupplied)
        if let first = decision.commitFirst {
            let outbox = outboxMessages(first, context: context, flag: kept.flag, notify: kept.notify)
            do {
                try state.save(
                    rollout: report.name, flag: kept.flag, record: first.record, now: settings.now, enteredPhase: false,
                    audit: first.events.map(context.event), outbox: outbox)
            } catch  where UnrecordedWrites.isUnwritable(error, state: state) {
                // SPEC §5 rule 3 [r3]: the disables go ahead; the notification cannot be queued, so it goes now.
                report.errors.append(UnrecordedWrites.notRecorded("\(error)"))
                await UnrecordedWrites.notifyDirectly(outbox, notifier: ports.notifier, logger: ports.logger)
            } catch {
                report = failed(report, "saving state: \(error)")
            }
        }
        var version = read
        var failures = 0
        for step in decision.steps {
            let change = step.change
            let intent = context.entry(
                kind: .intent, phase: step.phase, environment: change.environment, from: change.from, to: change.to,
                reason: change.reason.rawValue, detail: step.detail)
            let intentID = try? state.append(intent)
            var result = intent
            result.kind = .result
            result.intentID = intentID
            do {
                let patch = FlagPatch(
                    environment: change.environment, enabled: false, coverage: 0,
                    context: FlagChangeContext(
                        rollout: report.name, phase: step.phase, planBlob: kept.planBlob, reason: "rollback (guard)"))
                let updated = try await ports.flags.apply(flag: kept.flag, patch: patch, ifMatch: version)
                version = updated.version
                result.result = "applied"
                ports.logger.info("applied \(kept.flag)[\(change.environment)] → disabled (rollback, guard)")
            } catch {
                result.result = "failed"
                result.detail = "\(error)"
                failures += 1
                report = failed(report, "applying \(kept.flag)[\(change.environment)]: \(error)")
            }
            _ = try? state.append(result)
        }
        if ports.flags.stagesWrites {
            do {
                try await ports.flags.flush()
            } catch {
                failures += 1
                report = failed(report, "writing the flag store: \(error)")
            }
        }
        report.applied = failures == 0
        return report
    }

    /// A guard's checks, measured where its phase is (SPEC §5.13).
    func evaluate(guard kept: RolloutGuard, since: Date) async -> [HealthResult] {
        guard let environment = kept.environment, let phase = kept.phase else { return [] }
        return await evaluate(
            checks: kept.checks, flag: kept.flag, environment: environment, phaseName: phase, since: since)
    }
}
