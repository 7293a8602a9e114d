import Foundation
import Testing

@testable import RolloutCore

/// The one-way pipeline of SPEC §5 as a table: what the core tells a run to commit, apply and
/// notify, for each safety rule; no git, HTTP or clock involved.
@Suite struct ReconcilePipelineTests {
    static let plan = PhaseMachineTests.plan
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    let blob = "b1"
    let canary10Roles = ["engineering-lead", "qa-lead", "sre"]

    func on(_ coverage: Double) -> FlagEnvironmentState { FlagEnvironmentState(enabled: true, coverage: coverage) }

    func approved(_ phase: String, _ roles: [String]) -> [ApprovalStatus] {
        roles.map {
            ApprovalStatus(
                path: "p/\($0)", phase: phase, role: $0, approver: "\($0)@x", commit: "c0ffee",
                counted: true, reason: nil)
        }
    }

    func decide(
        plan: Plan = ReconcilePipelineTests.plan, record: RolloutRecord?,
        actual: [String: FlagEnvironmentState], approvals: [ApprovalStatus] = [],
        health: [HealthResult] = [], planBlob: String? = nil
    ) -> Decision {
        PhaseMachine.decide(
            .init(
                plan: plan, planBlob: planBlob ?? blob, approvals: approvals,
                missingRoles: ApprovalRules.missingRoles(plan: plan, policy: nil, statuses: approvals),
                record: record, actual: actual, health: health, now: now))
    }

    func record(
        _ phase: String?, _ status: RolloutStatus = .progressing, blob: String? = nil,
        hoursAgo: Double = 1
    ) -> RolloutRecord {
        RolloutRecord(
            phase: phase, enteredAt: now.addingTimeInterval(-hoursAgo * 3600), status: status,
            planBlob: blob ?? self.blob)
    }

    func breach(_ environment: String = "production") -> [HealthResult] {
        [
            HealthResult(
                check: HealthCheck(name: "error-rate", query: "q", max: 0.02, onBreach: .rollback),
                result: .value(0.05), environment: environment)
        ]
    }

    // MARK: §5.3 rollback

    @Test func rollbackCommitsStatusBlobAndNotificationFirstThenDisablesTheMeasuredEnvironmentFirst() throws {
        let decision = decide(
            record: record("canary-10"), actual: ["staging": on(100), "production": on(10)],
            health: breach("production"))
        #expect(decision.status == .rolledBack)
        let first = try #require(decision.commitFirst)
        #expect(
            first.record
                == RolloutRecord(
                    phase: "canary-10", enteredAt: now.addingTimeInterval(-3600),
                    status: .rolledBack, planBlob: blob))
        #expect(first.events.map(\.reason) == ["rolled-back"])
        #expect(first.notifications.map(\.status) == [.rolledBack])
        // Production (where the breach was measured) first, although the plan reaches staging first.
        #expect(decision.steps.map(\.change.environment) == ["production", "staging"])
        #expect(decision.steps.allSatisfy { $0.change.to == .disabled && $0.change.reason == .rollback })
        #expect(decision.steps.first?.detail?.contains("error-rate = 0.05") == true)
        #expect(decision.commitAfter == nil)
    }

    @Test func rolledBackReappliesDisabledAndNeverRaisesUntilThePlanChanges() {
        let rolledBack = record("canary-10", .rolledBack)
        // A rollback that failed halfway: staging is still on.
        let half = decide(
            record: rolledBack, actual: ["staging": on(100), "production": .disabled],
            approvals: approved("canary-10", canary10Roles))
        #expect(half.status == .rolledBack)
        #expect(
            half.steps.map(\.change) == [
                Change(environment: "staging", from: on(100), to: .disabled, reason: .rollback)
            ])
        #expect(half.commitFirst == nil && half.commitAfter == nil)
        // Everything off, metrics healthy: nothing is raised.
        let off = decide(
            record: rolledBack, actual: ["staging": .disabled, "production": .disabled],
            approvals: approved("canary-10", canary10Roles))
        #expect(off.steps.isEmpty)
        #expect(off.status == .rolledBack)
        // A new plan.json starts again from phase 0.
        let edited = decide(
            record: rolledBack, actual: ["staging": .disabled, "production": .disabled], planBlob: "b2")
        #expect(edited.advancedTo == "staging")
    }

    // MARK: §5.6 overridden and drift

    @Test func exposureBelowTheDesiredStateIsAnOverrideNotifiedOnceAndNeverRaised() {
        let actual = ["staging": on(100), "production": .disabled]  // the runbook's kill switch on production
        let first = decide(record: record("canary-10"), actual: actual, approvals: approved("canary-10", canary10Roles))
        #expect(first.status == .overridden)
        #expect(first.steps.isEmpty)
        #expect(first.commitFirst?.record.status == .overridden)
        #expect(first.commitFirst?.notifications.map(\.status) == [.overridden])
        #expect(first.commitFirst?.events.map(\.reason) == ["overridden"])
        #expect(first.blockers.first?.detail.contains("production is disabled") == true)

        // The next run: still overridden, nothing raised, nothing notified again.
        let later = decide(
            record: record("canary-10", .overridden), actual: actual,
            approvals: approved("canary-10", canary10Roles))
        #expect(later.status == .overridden)
        #expect(later.steps.isEmpty && later.commitFirst == nil && later.commitAfter == nil)
        // Even when someone switches it back on by hand: raising is rolloutctl's to do only after a plan change.
        let back = decide(record: record("canary-10", .overridden), actual: ["staging": on(100), "production": on(10)])
        #expect(back.status == .overridden && back.steps.isEmpty)
    }

    @Test func anOverriddenRolloutStillLowersAndStillRollsBack() {
        let overridden = record("canary-10", .overridden)
        let above = decide(record: overridden, actual: ["staging": on(100), "production": on(40)])
        #expect(
            above.steps.map(\.change) == [Change(environment: "production", from: on(40), to: on(10), reason: .drift)])
        let rolledBack = decide(
            record: overridden, actual: ["staging": on(100), "production": .disabled],
            health: breach("production"))
        #expect(rolledBack.status == .rolledBack)
        #expect(rolledBack.commitFirst?.record.status == .rolledBack)
        #expect(rolledBack.steps.map(\.change.environment) == ["staging"])
    }

    @Test func aPlanEditResumesFromTheActualStateOnceItsGatesHold() {
        var edited = Self.plan
        edited.phases[1].coverage = 5
        let overridden = record("canary-10", .overridden)
        let actual = ["staging": on(100), "production": .disabled]
        let blocked = decide(plan: edited, record: overridden, actual: actual, planBlob: "b2")
        #expect(blocked.status == .blocked)
        #expect(blocked.steps.isEmpty)
        #expect(blocked.blockers.filter { $0.kind == .approval }.map(\.role) == canary10Roles)
        // The edit is not in force yet: the record keeps the old blob, so the next run is not an override.
        #expect(blocked.commitAfter?.record.planBlob == blob)
        #expect(blocked.commitAfter?.record.status == .blocked)
        let resumed = decide(
            plan: edited, record: overridden, actual: actual,
            approvals: approved("canary-10", canary10Roles), planBlob: "b2")
        #expect(
            resumed.steps.map(\.change) == [
                Change(environment: "production", from: .disabled, to: on(5), reason: .drift)
            ])
        #expect(resumed.commitAfter?.record.status != .overridden)
    }

    @Test func exposureAboveTheDesiredStateIsLoweredAsDrift() {
        let decision = decide(record: record("canary-10"), actual: ["staging": on(100), "production": on(60)])
        #expect(decision.status == .blocked)
        #expect(
            decision.steps.map(\.change) == [
                Change(environment: "production", from: on(60), to: on(10), reason: .drift)
            ])
        #expect(decision.commitFirst == nil)
    }

    // MARK: §5.2 [r2] approvals bind the whole plan

    @Test func enteringAPhaseNeedsTheGatesOfEveryEarlierPhaseForTheCurrentBlob() {
        let canary10 = record("canary-10", hoursAgo: 100)
        let decision = decide(record: canary10, actual: ["staging": on(100), "production": on(10)])
        #expect(decision.advancedTo == nil)
        #expect(
            decision.blockers.filter { $0.kind == .approval }.map { "\($0.phase!):\($0.role!)" }
                == canary10Roles.map { "canary-10:\($0)" })
        let advanced = decide(
            record: canary10, actual: ["staging": on(100), "production": on(10)],
            approvals: approved("canary-10", canary10Roles))
        #expect(advanced.advancedTo == "canary-50")
        #expect(advanced.steps.first?.approvals.count == 0)  // canary-50 itself needs no approval
    }

    @Test func aPlanEditRaisingTheCurrentPhaseHoldsAtTheActualStateWithOneBlockerPerMissingRole() {
        var raised = Self.plan
        raised.phases[1].coverage = 20
        let decision = decide(
            plan: raised, record: record("canary-10"),
            actual: ["staging": on(100), "production": on(10)], planBlob: "b2")
        #expect(decision.steps.isEmpty)
        let approvals = decision.blockers.filter { $0.kind == .approval }
        #expect(approvals.map(\.role) == canary10Roles)
        #expect(approvals.allSatisfy { $0.phase == "canary-10" })
    }

    // MARK: Steps and state commits

    @Test func anAdvanceNamesItsApprovalsAndCommitsTheNewPhaseAfterTheChanges() {
        let decision = decide(
            record: record("staging"), actual: ["staging": on(100)],
            approvals: approved("canary-10", canary10Roles))
        #expect(decision.steps.map(\.phase) == ["canary-10"])
        #expect(
            decision.steps.first?.approvals == [
                "engineering-lead=engineering-lead@x@c0ffee",
                "qa-lead=qa-lead@x@c0ffee", "sre=sre@x@c0ffee",
            ])
        #expect(decision.commitFirst == nil)
        #expect(decision.commitAfter?.record.phase == "canary-10")
        #expect(decision.commitAfter?.enteredPhase == true)
    }

    @Test func aSteadyRolloutCommitsNothing() {
        let decision = decide(
            record: record("canary-10", .blocked), actual: ["staging": on(100), "production": on(10)])
        #expect(decision.status == .blocked)
        #expect(decision.steps.isEmpty && decision.commitFirst == nil && decision.commitAfter == nil)
    }

    @Test func aHoldIsNotifiedOnceWithItsEvent() {
        let hold = [
            HealthResult(
                check: HealthCheck(name: "latency", query: "q", max: 0.2, onBreach: .hold),
                result: .value(0.5), environment: "production")
        ]
        let first = decide(
            record: record("canary-10"), actual: ["staging": on(100), "production": on(10)], health: hold)
        #expect(first.status == .holding)
        #expect(first.commitAfter?.notifications.map(\.status) == [.holding])
        #expect(first.commitAfter?.events.map(\.reason) == ["holding"])
        let again = decide(
            record: record("canary-10", .holding), actual: ["staging": on(100), "production": on(10)],
            health: hold)
        #expect(again.commitAfter == nil)
    }

    // MARK: Recovery and adoption

    @Test func recoveryEntersAnAdvanceOnlyWhenTheFlagShowsItsWholePhase() {
        let intent = OpenIntent(
            id: 7, time: now, phase: "canary-10", environment: "production", to: on(10),
            reason: "advance", planBlob: blob)
        let applied = Recovery.resolve(
            intents: [intent], plan: Self.plan, record: record("staging"),
            actual: ["staging": on(100), "production": on(10)])
        #expect(applied.results.map(\.applied) == [true])
        #expect(applied.record?.phase == "canary-10" && applied.record?.enteredAt == now && applied.enteredPhase)
        let notApplied = Recovery.resolve(
            intents: [intent], plan: Self.plan, record: record("staging"),
            actual: ["staging": on(100)])
        #expect(notApplied.results.map(\.applied) == [false])
        #expect(notApplied.record == nil)
        // Half a phase (staging was lowered meanwhile) is decided again, never taken for an override.
        let half = Recovery.resolve(
            intents: [intent], plan: Self.plan, record: record("staging"),
            actual: ["staging": .disabled, "production": on(10)])
        #expect(half.results.map(\.applied) == [true])
        #expect(half.record == nil)
    }

    @Test func adoptionStartsAtTheMatchingPhaseOrOverridden() {
        // Exposed exactly as canary-10: adopted there, bake from now.
        let matching = Adoption.record(
            plan: Self.plan, planBlob: blob, approvals: [],
            actual: ["staging": on(100), "production": on(10)], now: now)
        #expect(matching == RolloutRecord(phase: "canary-10", enteredAt: now, status: .progressing, planBlob: blob))
        // Rolled back before the state was lost: approvals past phase 0, nothing exposed.
        let rolledBack = Adoption.record(
            plan: Self.plan, planBlob: blob, approvals: approved("canary-10", canary10Roles),
            actual: ["staging": .disabled, "production": .disabled], now: now)
        #expect(rolledBack?.status == .overridden)
        #expect(rolledBack?.phase == "staging")
        // Exposed at a coverage no phase has.
        let odd = Adoption.record(
            plan: Self.plan, planBlob: blob, approvals: [],
            actual: ["staging": on(100), "production": on(30)], now: now)
        #expect(odd?.status == .overridden && odd?.phase == "canary-50")
        // Never started: a new rollout, no adoption needed.
        #expect(!Adoption.needsAdopt(plan: Self.plan, approvals: approved("staging", []), actual: [:]))
        #expect(Adoption.record(plan: Self.plan, planBlob: blob, approvals: [], actual: [:], now: now) == nil)
    }

    @Test func theOverriddenDecisionAfterAdoptionRaisesNothing() {
        let adopted = RolloutRecord(phase: "staging", enteredAt: now, status: .overridden, planBlob: blob)
        let decision = decide(
            record: adopted, actual: ["staging": .disabled, "production": .disabled],
            approvals: approved("canary-10", canary10Roles))
        #expect(decision.status == .overridden)
        #expect(decision.steps.isEmpty)
    }
}
