import Foundation
import RolloutAdapters
import RolloutCore

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

/// Where an `Execution`'s actions land: the rollout's audit context, who is notified, and what the two
/// plan-only actions do.
struct ExecutionTarget {
    var context: AuditContext
    /// `rollback.notify` of the plan (or of the guard) whose decision is carried out.
    var notify: [String]
    /// The reason a flag service that keeps its own audit log is given, when not the change's own.
    var patchReason: String?
    /// The plan blob a flag service is told the change belongs to.
    var patchPlanBlob: String
}

// The executor: performs one action of the core's `Execution` at a time and hands its outcome back. It owns
// the I/O (state, flag store, notifier, log) and nothing else: what an outcome means is the core's.
extension Reconciler {

    /// Carries out `execution` to its end; `report` collects its errors and whether everything applied.
    func carryOut(
        _ execution: inout Execution, target: ExecutionTarget, state: any StateStorage,
        report: inout RolloutReport, watchNotifyChecks: () async -> Void = {},
        keepGuard: (inout RolloutReport) -> Void = { _ in }
    ) async -> Execution.Ending {
        let context = target.context
        while true {
            let event: Execution.Event
            switch execution.next() {
            case .finish(let ending):
                for message in execution.errors { report = failed(report, message) }
                switch ending {
                case .applied, .staged: report.applied = true
                case .decideAgain, .failed: report.applied = false
                }
                if let unrecorded = execution.unrecorded {
                    report.errors.append(UnrecordedWrites.notRecorded(unrecorded))
                }
                return ending
            case .commitFirst(let commit), .commitAfter(let commit):
                do {
                    try self.commit(commit, state: state, target: target)
                    event = .done
                } catch {
                    event = .stateRefused(
                        unwritable: UnrecordedWrites.isUnwritable(error, state: state), message: "\(error)")
                }
            case .notifyDirectly(let commit):
                await UnrecordedWrites.notifyDirectly(
                    outboxMessages(commit, context: context, flag: context.flag, notify: target.notify),
                    notifier: ports.notifier, logger: ports.logger)
                event = .done
            case .writeIntent(let step):
                do {
                    event = .intentWritten(id: try state.append(intent(of: step, context: context)))
                } catch {
                    event = .stateRefused(
                        unwritable: UnrecordedWrites.isUnwritable(error, state: state), message: "\(error)")
                }
            case .apply(let step, let version):
                let change = step.change
                let patch = FlagPatch(
                    environment: change.environment, enabled: change.to.enabled, coverage: change.to.coverage,
                    context: FlagChangeContext(
                        rollout: context.rollout, phase: step.phase, planBlob: target.patchPlanBlob,
                        reason: target.patchReason ?? change.reason.rawValue))
                do {
                    let updated = try await ports.flags.apply(flag: context.flag, patch: patch, ifMatch: version)
                    let from = FlagEnvironmentState.describe(change.from)
                    let to = FlagEnvironmentState.describe(change.to)
                    let why = target.patchReason ?? change.reason.rawValue
                    ports.logger.info("applied \(context.flag)[\(change.environment)] \(from) → \(to) (\(why))")
                    event = .flagCallFinished(.applied(version: updated.version))
                } catch {
                    event = .flagCallFinished(.failed(error as? FlagStoreError, message: "\(error)"))
                }
            case .reread:
                event = .reread(try? await ports.flags.read(flag: context.flag))
            case .record(let result):
                if result.confirmedByReread {
                    let environment = result.step.change.environment
                    ports.logger.warning(
                        "\(context.flag)[\(environment)]: the answer was lost, a re-read shows the change applied")
                }
                _ = try? state.append(entry(of: result, context: context))
                event = .done
            case .flush:
                do {
                    try await ports.flags.flush()
                    event = .flushed(error: nil)
                } catch {
                    event = .flushed(error: "\(error)")
                }
            case .watchNotifyChecks:
                await watchNotifyChecks()
                event = .done
            case .keepGuard:
                keepGuard(&report)
                event = .done
            }
            execution.handle(event)
        }
    }

    /// The audit entry of a change's intent (SPEC §5.10: an intent before the call, a result after).
    func intent(of step: FlagStep, context: AuditContext) -> AuditEntry {
        let change = step.change
        return context.entry(
            kind: .intent, phase: step.phase, environment: change.environment, from: change.from, to: change.to,
            reason: change.reason.rawValue, approvals: step.approvals, detail: step.detail)
    }

    /// The audit entry of a change's result, bound to its intent.
    func entry(of result: Execution.StepResult, context: AuditContext) -> AuditEntry {
        var entry = intent(of: result.step, context: context)
        entry.kind = .result
        entry.intentID = result.intentID
        entry.result = result.result
        entry.detail = result.detail
        return entry
    }

    /// Writes a state commit: record, audit events and queued notifications in one transaction.
    func commit(_ commit: StateCommit, state: any StateStorage, target: ExecutionTarget) throws {
        let context = target.context
        try state.save(
            rollout: context.rollout, flag: context.flag, record: commit.record, now: settings.now,
            enteredPhase: commit.enteredPhase, audit: commit.events.map(context.event),
            outbox: outboxMessages(commit, context: context, flag: context.flag, notify: target.notify))
        for notification in commit.notifications {
            ports.logger.notice("notify \(target.notify.joined(separator: ",")): \(notification.message)")
        }
    }
}
