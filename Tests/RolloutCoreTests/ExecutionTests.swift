import Foundation
import Testing

@testable import RolloutCore

/// The executor's rules as a table (SPEC §5.3, §5.10, §5 rule 3 [r3]): each case scripts what the state and the
/// flag store answer, and checks the actions `Execution` asks for, in order, and how it ends.
@Suite struct ExecutionTests {
    static let staging = Change(
        environment: "staging", from: .disabled, to: FlagEnvironmentState(enabled: true, coverage: 100),
        reason: .advance)
    static let prod = Change(
        environment: "prod", from: .disabled, to: FlagEnvironmentState(enabled: true, coverage: 10), reason: .advance)
    static let lowerStaging = Change(
        environment: "staging", from: FlagEnvironmentState(enabled: true, coverage: 100), to: .disabled,
        reason: .rollback)
    static let lowerProd = Change(
        environment: "prod", from: FlagEnvironmentState(enabled: true, coverage: 10), to: .disabled,
        reason: .rollback)

    static let rolledBack = RolloutRecord(phase: "canary", enteredAt: nil, status: .rolledBack, planBlob: "b")
    static let progressing = RolloutRecord(phase: "canary", enteredAt: nil, status: .progressing, planBlob: "b")

    static func decision(
        _ changes: [Change], first: StateCommit? = nil, after: StateCommit? = nil
    ) -> Decision {
        var decision = Decision(
            status: .progressing, currentPhase: "canary", nextPhase: nil, blockers: [], changes: changes, health: [],
            record: progressing, advancedTo: nil, notification: nil)
        decision.steps = changes.map { FlagStep(change: $0, phase: "canary") }
        decision.commitFirst = first
        decision.commitAfter = after
        return decision
    }

    /// What the outside world answers, per action.
    struct World {
        var commit: (StateCommit) -> Execution.Event = { _ in .done }
        var intent: (FlagStep) -> Execution.Event = { _ in .intentWritten(id: 7) }
        var apply: (FlagStep, String) -> Execution.Event = { _, v in .flagCallFinished(.applied(version: v + "'")) }
        var reread: () -> Execution.Event = { .reread(nil) }
        var flush: () -> Execution.Event = { .flushed(error: nil) }
    }

    /// Drives the machine as the Kit's executor does, and writes down each action.
    static func run(_ execution: inout Execution, _ world: World) -> (trace: [String], ending: Execution.Ending) {
        var trace: [String] = []
        for _ in 0..<100 {
            let event: Execution.Event
            switch execution.next() {
            case .finish(let ending): return (trace, ending)
            case .commitFirst(let c):
                trace.append("commitFirst")
                event = world.commit(c)
            case .commitAfter(let c):
                trace.append("commitAfter")
                event = world.commit(c)
            case .notifyDirectly:
                trace.append("notifyDirectly")
                event = .done
            case .writeIntent(let step):
                trace.append("intent \(step.change.environment)")
                event = world.intent(step)
            case .apply(let step, let version):
                trace.append("apply \(step.change.environment) if \(version)")
                event = world.apply(step, version)
            case .reread:
                trace.append("reread")
                event = world.reread()
            case .record(let result):
                var line = "record \(result.step.change.environment) \(result.result)"
                if result.intentID == nil { line += " unbound" }
                if result.confirmedByReread { line += " confirmed" }
                trace.append(line)
                event = .done
            case .flush:
                trace.append("flush")
                event = world.flush()
            case .watchNotifyChecks:
                trace.append("watch")
                event = .done
            case .keepGuard:
                trace.append("keepGuard")
                event = .done
            }
            execution.handle(event)
        }
        Issue.record("the execution did not finish")
        return (trace, .failed)
    }

    static func failing(_ error: FlagStoreError) -> (FlagStep, String) -> Execution.Event {
        { _, _ in .flagCallFinished(.failed(error, message: "\(error)")) }
    }

    @Test func everyChangeHasItsIntentCallAndResultThenTheStateAndTheGuard() {
        var e = Execution(
            kind: .plan, flag: "f",
            decision: Self.decision(
                [Self.staging, Self.prod],
                after: StateCommit(
                    record: Self.progressing)), version: "v1", stagesWrites: false)
        let (trace, ending) = Self.run(&e, World())
        #expect(
            trace == [
                "intent staging", "apply staging if v1", "record staging applied",
                "intent prod", "apply prod if v1'", "record prod applied",
                "watch", "commitAfter", "keepGuard",
            ])
        #expect(ending == .applied)
        #expect(e.errors.isEmpty && e.unrecorded == nil)
    }

    @Test func aLostAnswerIsReadAgainAndTheFlagSaysWhetherItApplied() {
        var world = World()
        world.apply = Self.failing(.unavailable("connection reset"))
        world.reread = {
            .reread(
                FlagSnapshot(key: "f", version: "v9", environments: ["staging": Self.staging.to]))
        }
        var e = Execution(
            kind: .plan, flag: "f", decision: Self.decision([Self.staging]), version: "v1", stagesWrites: false)
        let (trace, ending) = Self.run(&e, world)
        #expect(
            trace == [
                "intent staging", "apply staging if v1", "reread", "record staging applied confirmed", "watch",
                "keepGuard",
            ])
        #expect(ending == .applied)
        #expect(e.version == "v9")
    }

    @Test func aLostAnswerTheFlagDoesNotShowFailsAndStopsTheChanges() {
        var world = World()
        world.apply = Self.failing(.unavailable("timed out"))
        world.reread = { .reread(FlagSnapshot(key: "f", version: "v1", environments: ["staging": .disabled])) }
        var e = Execution(
            kind: .plan, flag: "f", decision: Self.decision([Self.staging, Self.prod]), version: "v1",
            stagesWrites: false)
        let (trace, ending) = Self.run(&e, world)
        #expect(trace == ["intent staging", "apply staging if v1", "reread", "record staging failed"])
        #expect(ending == .failed)
        #expect(e.errors == ["applying f[staging]: the flag service is unavailable: timed out"])
    }

    @Test func anAnswerThatCannotHaveAppliedIsNotReadAgain() {
        for error in [FlagStoreError.notFound(flag: "f"), .unauthorized(status: 403), .notManaged("by hand")] {
            var world = World()
            world.apply = Self.failing(error)
            var e = Execution(
                kind: .plan, flag: "f", decision: Self.decision([Self.staging]), version: "v1", stagesWrites: false)
            let (trace, ending) = Self.run(&e, world)
            #expect(trace == ["intent staging", "apply staging if v1", "record staging failed"])
            #expect(ending == .failed)
        }
    }

    @Test func a412DecidesAgainOnceWithTheFlagAsReadAgainAndFailsTheSecondTime() {
        let now = FlagSnapshot(key: "f", version: "v5", environments: ["staging": .disabled])
        var world = World()
        world.apply = Self.failing(.versionConflict(flag: "f"))
        world.reread = { .reread(now) }
        var first = Execution(
            kind: .plan, flag: "f", decision: Self.decision([Self.staging]), version: "v1", stagesWrites: false)
        let (trace, ending) = Self.run(&first, world)
        #expect(trace == ["intent staging", "apply staging if v1", "reread", "record staging conflict"])
        #expect(ending == .decideAgain(reread: now))
        #expect(first.errors.isEmpty)

        var second = Execution(
            kind: .plan, flag: "f", decision: Self.decision([Self.staging]), version: "v5", stagesWrites: false,
            conflictsSoFar: 1)
        let (_, again) = Self.run(&second, world)
        #expect(again == .failed)
        #expect(
            second.errors == ["flag f kept changing while it was being updated (412 twice); the next run tries again"])
    }

    @Test func aStoreThatStagesItsWritesGetsItsResultsAfterTheFlushNeverReadsAgain() {
        var e = Execution(
            kind: .plan, flag: "f", decision: Self.decision([Self.staging, Self.prod]), version: "v1",
            stagesWrites: true)
        let (trace, ending) = Self.run(&e, World())
        #expect(trace == ["intent staging", "apply staging if v1", "intent prod", "apply prod if v1'"])
        guard case .staged(let results) = ending else {
            Issue.record("expected staged results, got \(ending)")
            return
        }
        #expect(results.map(\.result) == ["applied", "applied"])

        var world = World()
        var calls = 0
        world.apply = { _, v in
            calls += 1
            return calls == 1
                ? .flagCallFinished(.applied(version: v)) : .flagCallFinished(.failed(nil, message: "disk full"))
        }
        var failing = Execution(
            kind: .plan, flag: "f", decision: Self.decision([Self.staging, Self.prod]), version: "v1",
            stagesWrites: true)
        let (failed, end) = Self.run(&failing, world)
        // The failure first, then what was staged before it: nothing is left unrecorded.
        #expect(
            failed == [
                "intent staging", "apply staging if v1", "intent prod", "apply prod if v1", "record prod failed",
                "record staging applied",
            ])
        #expect(end == .failed)
    }

    @Test func anUnwritableStateNeverBlocksARollbackButBlocksEveryRaise() {
        let first = StateCommit(
            record: Self.rolledBack,
            notifications: [NotificationRequest(status: .rolledBack, phase: "canary", message: "rollback", checks: [])])
        var world = World()
        world.commit = { _ in .stateRefused(unwritable: true, message: "the disk is full") }
        world.intent = { _ in .stateRefused(unwritable: true, message: "the disk is full") }
        var rollback = Execution(
            kind: .plan, flag: "f", decision: Self.decision([Self.lowerProd, Self.lowerStaging], first: first),
            version: "v1", stagesWrites: false)
        let (trace, ending) = Self.run(&rollback, world)
        #expect(
            trace == [
                "commitFirst", "notifyDirectly",
                "intent prod", "apply prod if v1", "record prod applied unbound",
                "intent staging", "apply staging if v1'", "record staging applied unbound",
                "watch", "keepGuard",
            ])
        #expect(ending == .applied)
        #expect(rollback.unrecorded == "the disk is full")

        var raise = Execution(
            kind: .plan, flag: "f", decision: Self.decision([Self.staging]), version: "v1", stagesWrites: false)
        let (raised, end) = Self.run(&raise, world)
        #expect(raised == ["intent staging"])
        #expect(end == .failed)
        #expect(raise.errors == ["writing the audit log: the disk is full"])

        // A state that refuses for another reason stops even a lowering change of the plan.
        world.intent = { _ in .stateRefused(unwritable: false, message: "constraint failed") }
        var other = Execution(
            kind: .plan, flag: "f", decision: Self.decision([Self.lowerProd]), version: "v1", stagesWrites: false)
        #expect(Self.run(&other, world).trace == ["intent prod"])
    }

    @Test func aRefusedFirstCommitThatIsNoRollbackStopsThePlan() {
        let override = StateCommit(
            record: RolloutRecord(phase: "canary", enteredAt: nil, status: .overridden, planBlob: "b"))
        var world = World()
        world.commit = { _ in .stateRefused(unwritable: true, message: "read-only") }
        var e = Execution(
            kind: .plan, flag: "f", decision: Self.decision([Self.lowerProd], first: override), version: "v1",
            stagesWrites: false)
        let (trace, ending) = Self.run(&e, world)
        #expect(trace == ["commitFirst"])
        #expect(ending == .failed)
        #expect(e.errors == ["saving state: read-only"])
    }

    @Test func aRefusedCommitAfterTheChangesFailsTheRollout() {
        var world = World()
        world.commit = { _ in .stateRefused(unwritable: false, message: "locked") }
        var e = Execution(
            kind: .plan, flag: "f", decision: Self.decision([], after: StateCommit(record: Self.progressing)),
            version: "v1", stagesWrites: false)
        let (trace, ending) = Self.run(&e, world)
        #expect(trace == ["watch", "commitAfter"])
        #expect(ending == .failed)
        #expect(e.errors == ["saving state: locked"])
    }

    @Test func aGuardGoesOnLoweringEveryEnvironmentWhenOneFails() {
        var world = World()
        world.apply = { step, v in
            step.change.environment == "prod"
                ? .flagCallFinished(.failed(.notFound(flag: "f"), message: "gone"))
                : .flagCallFinished(.applied(version: v + "'"))
        }
        world.commit = { _ in .stateRefused(unwritable: false, message: "locked") }
        let first = StateCommit(record: Self.rolledBack)
        var e = Execution(
            kind: .guarded, flag: "f", decision: Self.decision([Self.lowerProd, Self.lowerStaging], first: first),
            version: "v1", stagesWrites: false)
        let (trace, ending) = Self.run(&e, world)
        #expect(
            trace == [
                "commitFirst", "intent prod", "apply prod if v1", "record prod failed",
                "intent staging", "apply staging if v1", "record staging applied",
            ])
        #expect(ending == .failed)
        #expect(e.errors == ["saving state: locked", "applying f[prod]: gone"])
    }

    @Test func aGuardOnAStoreThatStagesItsWritesFlushesThenRecords() {
        var world = World()
        world.flush = { .flushed(error: "permission denied") }
        var e = Execution(
            kind: .guarded, flag: "f", decision: Self.decision([Self.lowerProd]), version: "v1", stagesWrites: true)
        let (trace, ending) = Self.run(&e, world)
        #expect(trace == ["intent prod", "apply prod if v1", "flush", "record prod failed"])
        #expect(ending == .failed)
        #expect(e.errors == ["writing the flag store: permission denied"])
    }

    @Test func onlyLoweringChangesMayGoAheadUnrecorded() {
        #expect(Execution.lowers(Self.lowerProd))
        #expect(!Execution.lowers(Self.prod))
        let down = Change(
            environment: "prod", from: FlagEnvironmentState(enabled: true, coverage: 50),
            to: FlagEnvironmentState(enabled: true, coverage: 10), reason: .lower)
        #expect(Execution.lowers(down))
        let fromAbsent = Change(
            environment: "prod", from: nil, to: FlagEnvironmentState(enabled: true, coverage: 0), reason: .drift)
        #expect(!Execution.lowers(fromAbsent))
    }
}
