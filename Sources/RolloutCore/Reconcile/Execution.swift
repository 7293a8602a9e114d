import Foundation

/// How one rollout's decision is carried out (SPEC §5.3, §5.10, §5 rule 3 [r3]), as a state machine the Kit's
/// executor drives: `next()` names one action, the executor performs it and hands what happened to
/// `handle(_:)`, until the action is `.finish`. What an outcome means — an answer lost and read again, a 412
/// decided again once, a state that cannot be written while exposure is lowered — is decided here; the
/// executor keeps only I/O and ordering.
///
/// The order: the state committed first (a rollback, an override), then for each flag change its intent, the
/// flag call and its result, then the notify checks' episodes, the state committed after, and the guard kept.
public struct Execution: Sendable {
    /// Whose decision is carried out.
    public enum Kind: Sendable, Equatable {
        /// The plan's own decision (`PhaseMachine`): a failed change stops the rollout's changes.
        case plan
        /// A guard's rollback (SPEC §5 rule 13 [r3]): every environment is lowered, even when one fails.
        case guarded
    }

    public enum Action: Equatable, Sendable {
        /// Commit the rollout's record, audit events and queued notifications in one transaction.
        case commitFirst(StateCommit)
        /// Send a commit's notifications now: the state cannot queue them (SPEC §5 rule 3 [r3]).
        case notifyDirectly(StateCommit)
        /// Append the intent of a flag change to the audit log.
        case writeIntent(FlagStep)
        /// Call the flag store with the change, if the flag is still at `ifMatch`.
        case apply(FlagStep, ifMatch: String)
        /// Read the flag again: the answer to the call was lost, the flag says whether it applied.
        case reread
        /// Append a flag change's result to the audit log (a failure to do so is not the run's failure).
        case record(StepResult)
        /// Make the store's staged changes durable (a guard's rollback on a store that stages its writes).
        case flush
        /// Apply the episode rule of the plan's `notify` checks (`NotifyWatch`).
        case watchNotifyChecks
        /// Commit the state after the changes.
        case commitAfter(StateCommit)
        /// Keep the guard this decision earned (`GuardRules.guardToKeep`).
        case keepGuard
        /// Nothing is left to do.
        case finish(Ending)
    }

    /// What performing an action gave.
    public enum Event: Sendable {
        /// A commit, record, notification, watch or guard action is done.
        case done
        /// The state refused a commit or an intent; `unwritable` when it cannot be written at all.
        case stateRefused(unwritable: Bool, message: String)
        /// The intent is in the audit log under `id`.
        case intentWritten(id: Int64?)
        case flagCallFinished(FlagCallOutcome)
        /// The flag as read again (nil: the read failed too).
        case reread(FlagSnapshot?)
        /// The store's flush (nil: it succeeded).
        case flushed(error: String?)
    }

    public enum FlagCallOutcome: Sendable {
        /// The change applied; the flag is now at `version`.
        case applied(version: String)
        /// The call failed: the store's error when it said one, and its message.
        case failed(FlagStoreError?, message: String)
    }

    /// A flag change's result, as the audit log records it against its intent.
    public struct StepResult: Equatable, Sendable {
        public var step: FlagStep
        public var intentID: Int64?
        /// `applied`, `conflict` or `failed`.
        public var result: String
        public var detail: String?
        /// True when the call's answer was lost and a re-read showed the change applied.
        public var confirmedByReread = false
    }

    public enum Ending: Equatable, Sendable {
        /// Every change applied and the state is written.
        case applied
        /// Every change is staged in a store whose `flush()` makes it durable; these results wait for it.
        case staged([StepResult])
        /// The flag changed meanwhile (412): read it (or take the re-read given) and decide again.
        case decideAgain(reread: FlagSnapshot?)
        /// A change or the state failed; `errors` says what.
        case failed
    }

    // MARK: Inputs

    public let kind: Kind
    public let flag: String
    public let commitFirst: StateCommit?
    public let steps: [FlagStep]
    public let commitAfter: StateCommit?
    /// True when the flag store stages its writes until a flush (its answers are never lost).
    public let stagesWrites: Bool
    /// How many times this rollout's decision already met a 412 in this run.
    public let conflictsSoFar: Int

    // MARK: What the run reports

    /// The version the flag is at, as the last answer said.
    public private(set) var version: String
    /// What failed, each as the rollout's error (`applying …`, `saving state: …`).
    public private(set) var errors: [String] = []
    /// Set when exposure was lowered without the state recording it (SPEC §5 rule 3 [r3]).
    public private(set) var unrecorded: String?

    private var stage = Stage.start
    /// Actions decided and not yet performed, each with the event it waits for.
    private var queue: [(action: Action, awaits: Awaiting)] = []
    private var awaiting = Awaiting.nothing
    private var index = 0
    private var intentID: Int64?
    private var staged: [StepResult] = []
    private var ending: Ending?

    private enum Stage { case start, steps, after }
    private enum Awaiting {
        case nothing
        case commitFirst(StateCommit)
        case intent, call
        case reread(FlagStoreError?, String)
        case flush, commitAfter
    }

    public init(
        kind: Kind, flag: String, decision: Decision, version: String, stagesWrites: Bool, conflictsSoFar: Int = 0
    ) {
        self.kind = kind
        self.flag = flag
        self.commitFirst = decision.commitFirst
        self.steps = decision.steps
        self.commitAfter = decision.commitAfter
        self.version = version
        self.stagesWrites = stagesWrites
        self.conflictsSoFar = conflictsSoFar
    }

    // MARK: The machine

    public mutating func next() -> Action {
        if !queue.isEmpty {
            let (action, awaits) = queue.removeFirst()
            awaiting = awaits
            return action
        }
        if let ending { return .finish(ending) }
        switch stage {
        case .start:
            stage = .steps
            if let first = commitFirst {
                awaiting = .commitFirst(first)
                return .commitFirst(first)
            }
            return next()
        case .steps:
            if index < steps.count {
                awaiting = .intent
                return .writeIntent(steps[index])
            }
            stage = .after
            queue = afterSteps()
            return next()
        case .after:
            ending = errors.isEmpty ? .applied : .failed
            return .finish(ending!)
        }
    }

    public mutating func handle(_ event: Event) {
        let expected = awaiting
        awaiting = .nothing
        switch (expected, event) {
        case (.commitFirst(let first), .stateRefused(let unwritable, let message)):
            if unwritable, first.record.status == .rolledBack {
                // Lowering is always safe: the rollback goes ahead unrecorded, its notification sent directly.
                unrecorded = message
                queue.append((.notifyDirectly(first), .nothing))
            } else {
                fail("saving state: \(message)")
            }
        case (.intent, .intentWritten(let id)):
            intentID = id
            callFlag()
        case (.intent, .stateRefused(let unwritable, let message)):
            // Nothing that raises exposure goes ahead without its intent; lowering may (SPEC §5 rule 3 [r3]).
            guard Self.lowers(steps[index].change), unwritable || kind == .guarded else {
                return stop("writing the audit log: \(message)")
            }
            unrecorded = unrecorded ?? message
            intentID = nil
            callFlag()
        case (.call, .flagCallFinished(.applied(let version))):
            self.version = version
            settle(result(.applied))
        case (.call, .flagCallFinished(.failed(let error, let message))):
            if !stagesWrites, Self.mayHaveApplied(error) {
                queue.append((.reread, .reread(error, message)))
            } else {
                settleFailure(error, message, reread: nil)
            }
        case (.reread(let error, let message), .reread(let snapshot)):
            if let snapshot, PhaseMachine.matches(snapshot.environments[steps[index].change.environment], to) {
                version = snapshot.version
                var confirmed = result(.applied)
                confirmed.detail = [steps[index].detail, "confirmed by re-read: the answer was lost (\(message))"]
                    .compactMap { $0 }.joined(separator: "; ")
                confirmed.confirmedByReread = true
                settle(confirmed)
            } else {
                settleFailure(error, message, reread: snapshot)
            }
        case (.flush, .flushed(let error)):
            for var result in staged {
                if let error {
                    result.result = Outcome.failed.rawValue
                    result.detail = "writing the flag store: \(error)"
                }
                queue.append((.record(result), .nothing))
            }
            staged = []
            if let error { errors.append("writing the flag store: \(error)") }
        case (.commitAfter, .stateRefused(_, let message)):
            stop("saving state: \(message)")
        case (_, .done):
            break
        default:
            preconditionFailure("Execution: \(event) does not answer the action performed")
        }
    }

    // MARK: Rules

    private enum Outcome: String { case applied, conflict, failed }

    private var to: FlagEnvironmentState { steps[index].change.to }

    private func result(_ outcome: Outcome, detail: String? = nil) -> StepResult {
        StepResult(
            step: steps[index], intentID: intentID, result: outcome.rawValue, detail: detail ?? steps[index].detail)
    }

    private mutating func callFlag() {
        queue.append((.apply(steps[index], ifMatch: version), .call))
    }

    /// A change applied: recorded now, or kept until the store's flush makes it durable.
    private mutating func settle(_ result: StepResult) {
        if stagesWrites {
            staged.append(result)
        } else {
            queue.append((.record(result), .nothing))
        }
        index += 1
    }

    /// A change that did not apply. A 412 decides again with the flag as it is now, once per run (SPEC §5.10);
    /// any other failure stops the plan's changes, while a guard goes on lowering the other environments.
    private mutating func settleFailure(_ error: FlagStoreError?, _ message: String, reread: FlagSnapshot?) {
        let environment = steps[index].change.environment
        if case .versionConflict? = error, kind == .plan {
            let detail = "the flag changed meanwhile (412); re-reading and deciding again"
            queue.append((.record(result(.conflict, detail: detail)), .nothing))
            releaseStaged()
            if conflictsSoFar >= 1 {
                errors.append(
                    "flag \(flag) kept changing while it was being updated (412 twice); the next run tries again")
                ending = .failed
            } else {
                ending = .decideAgain(reread: reread)
            }
            return
        }
        queue.append((.record(result(.failed, detail: message)), .nothing))
        errors.append("applying \(flag)[\(environment)]: \(message)")
        if kind == .guarded {
            if let reread { version = reread.version }
            index += 1
            return
        }
        releaseStaged()
        ending = .failed
    }

    /// Stops the rollout: nothing planned after this point happens; what is staged is recorded.
    private mutating func stop(_ message: String) {
        errors.append(message)
        queue.removeAll()
        releaseStaged()
        ending = .failed
    }

    /// A commit that failed: the plan's changes stop; a guard's rollback goes on lowering.
    private mutating func fail(_ message: String) {
        if kind == .guarded {
            errors.append(message)
        } else {
            stop(message)
        }
    }

    private mutating func releaseStaged() {
        queue += staged.map { (.record($0), .nothing) }
        staged = []
    }

    /// After the last change: a plan's notify checks, its state and its guard; a guard's rollback flushes.
    private mutating func afterSteps() -> [(action: Action, awaits: Awaiting)] {
        switch kind {
        case .guarded:
            var actions: [(action: Action, awaits: Awaiting)] = stagesWrites ? [(.flush, .flush)] : []
            if let after = commitAfter { actions.append((.commitAfter(after), .commitAfter)) }
            return actions
        case .plan:
            if stagesWrites {
                // The run's one flush writes the store; the state follows it (Reconciler.flushStaged).
                ending = .staged(staged)
                staged = []
                return []
            }
            return [(.watchNotifyChecks, .nothing)] + (commitAfter.map { [(.commitAfter($0), .commitAfter)] } ?? [])
                + [(.keepGuard, .nothing)]
        }
    }

    /// Whether a change only lowers exposure (SPEC §5 rule 3 [r3]: it may go ahead without a record).
    public static func lowers(_ change: Change) -> Bool {
        let before = change.from ?? .disabled
        if !change.to.enabled { return true }
        return before.enabled && change.to.coverage <= before.coverage
    }

    /// An error after which the change may still have reached the flag (its answer was lost).
    public static func mayHaveApplied(_ error: FlagStoreError?) -> Bool {
        switch error {
        case .versionConflict?, .unavailable?, .invalidResponse?: return true
        case .notFound?, .unauthorized?, .notManaged?: return false
        case nil: return true
        }
    }
}
