import Foundation
import Testing

@testable import RolloutCore

/// The phase state machine as pure code: plan, approvals, record, actual flag, health, time in;
/// a decision out.
@Suite struct PhaseMachineTests {
    static let plan: Plan = {
        let snapshot = loadSnapshot([planPath: validPlanJSON, "policies/approvers.json": approversJSON])
        return snapshot.rollout(named: "exp-001-autosave")!.plan!
    }()

    let now = Date(timeIntervalSince1970: 1_800_000_000)
    let blob = "b1"

    func approved(_ phase: String, _ roles: [String]) -> [ApprovalStatus] {
        roles.map {
            ApprovalStatus(
                path: "p/\($0)", phase: phase, role: $0, approver: "\($0)@x", commit: "c",
                counted: true, reason: nil)
        }
    }

    func decide(
        plan: Plan = PhaseMachineTests.plan, record: RolloutRecord?, actual: [String: FlagEnvironmentState],
        approvals: [ApprovalStatus] = [], health: [HealthResult] = [], planBlob: String? = nil,
        hoursLater: Double = 0
    ) -> Decision {
        PhaseMachine.decide(
            .init(
                plan: plan, planBlob: planBlob ?? blob, approvals: approvals,
                missingRoles: ApprovalRules.missingRoles(plan: plan, policy: nil, statuses: approvals),
                record: record, actual: actual, health: health,
                now: now.addingTimeInterval(hoursLater * 3600)))
    }

    func on(_ coverage: Double) -> FlagEnvironmentState { FlagEnvironmentState(enabled: true, coverage: coverage) }

    @Test func phaseZeroNeedsOnlyItsOwnApprovals() {
        let decision = decide(record: nil, actual: [:])
        #expect(decision.advancedTo == "staging")
        #expect(decision.changes == [Change(environment: "staging", from: nil, to: on(100), reason: .advance)])
    }

    @Test func oneAdvancePerRunEvenWhenEverythingIsReady() {
        let record = RolloutRecord(
            phase: "staging", enteredAt: now.addingTimeInterval(-100 * 3600), status: .progressing, planBlob: blob)
        let all =
            approved("canary-10", ["engineering-lead", "qa-lead", "sre"]) + approved("production", ["product-owner"])
        let decision = decide(record: record, actual: ["staging": on(100)], approvals: all)
        #expect(decision.advancedTo == "canary-10")
        #expect(decision.changes.map(\.to) == [on(10)])
    }

    @Test func bakeIsMeasuredFromTheRecordedEntry() {
        let record = RolloutRecord(phase: "canary-10", enteredAt: now, status: .progressing, planBlob: blob)
        let early = decide(
            record: record, actual: ["staging": on(100), "production": on(10)],
            approvals: approved("canary-10", ["engineering-lead", "qa-lead", "sre"]), hoursLater: 23.5)
        #expect(early.blockers.map(\.kind) == [.bake])
        #expect(early.blockers.first?.remainingSeconds == 1800)
        // Approvals bind the whole plan (SPEC §5.2 [r2]): canary-10's gate must still hold.
        let done = decide(
            record: record, actual: ["staging": on(100), "production": on(10)],
            approvals: approved("canary-10", ["engineering-lead", "qa-lead", "sre"]), hoursLater: 24)
        #expect(done.advancedTo == "canary-50")
    }

    @Test func driftIsCorrectedToTheCurrentPhase() {
        let record = RolloutRecord(phase: "canary-10", enteredAt: now, status: .progressing, planBlob: blob)
        let decision = decide(record: record, actual: ["staging": on(100), "production": on(30)])
        #expect(decision.changes == [Change(environment: "production", from: on(30), to: on(10), reason: .drift)])
        #expect(decision.status == .blocked)
    }

    @Test func lowerCoverageAppliesWithoutApprovals() {
        var lowered = Self.plan
        lowered.phases[1].coverage = 5
        let record = RolloutRecord(phase: "canary-10", enteredAt: now, status: .progressing, planBlob: blob)
        let decision = decide(
            plan: lowered, record: record, actual: ["staging": on(100), "production": on(10)],
            planBlob: "b2")
        #expect(decision.changes == [Change(environment: "production", from: on(10), to: on(5), reason: .lower)])
    }

    @Test func raisingTheCurrentPhaseNeedsItsApprovalsAgain() {
        var raised = Self.plan
        raised.phases[1].coverage = 20
        let record = RolloutRecord(phase: "canary-10", enteredAt: now, status: .progressing, planBlob: blob)
        let blocked = decide(
            plan: raised, record: record, actual: ["staging": on(100), "production": on(10)], planBlob: "b2")
        #expect(blocked.changes.isEmpty)
        #expect(Set(blocked.blockers.compactMap(\.role)).isSuperset(of: ["engineering-lead", "qa-lead", "sre"]))
        let approvedAgain = decide(
            plan: raised, record: record, actual: ["staging": on(100), "production": on(10)],
            approvals: approved("canary-10", ["engineering-lead", "qa-lead", "sre"]), planBlob: "b2")
        #expect(approvedAgain.changes.map(\.to) == [on(20)])
    }

    @Test func abortedDisablesEveryReachedEnvironment() {
        var aborted = Self.plan
        aborted.state = .aborted
        let record = RolloutRecord(phase: "canary-10", enteredAt: now, status: .progressing, planBlob: blob)
        let decision = decide(
            plan: aborted, record: record, actual: ["staging": on(100), "production": on(10), "qa": on(100)])
        #expect(decision.status == .aborted)
        #expect(Set(decision.changes.map(\.environment)) == ["staging", "production"])
        #expect(decision.changes.allSatisfy { $0.reason == .abort && $0.to == .disabled })
    }

    @Test func pausedDoesNotAdvanceButRollbackStillApplies() {
        var paused = Self.plan
        paused.state = .paused
        let record = RolloutRecord(phase: "staging", enteredAt: now, status: .progressing, planBlob: blob)
        let held = decide(
            plan: paused, record: record, actual: ["staging": on(100)],
            approvals: approved("canary-10", ["engineering-lead", "qa-lead", "sre"]))
        #expect(held.status == .paused)
        #expect(held.changes.isEmpty)
        let check = HealthCheck(name: "error-rate", query: "q", max: 0.02, onBreach: .rollback)
        let breach = decide(
            plan: paused, record: record, actual: ["staging": on(100)],
            health: [HealthResult(check: check, result: .value(0.05), environment: "staging")])
        #expect(breach.status == .rolledBack)
        #expect(breach.changes.map(\.to) == [.disabled])
    }

    @Test func rollbackWithoutAutomaticHolds() {
        var manual = Self.plan
        manual.rollback.automatic = false
        let record = RolloutRecord(phase: "staging", enteredAt: now, status: .progressing, planBlob: blob)
        let check = HealthCheck(name: "error-rate", query: "q", max: 0.02, onBreach: .rollback)
        let decision = decide(
            plan: manual, record: record, actual: ["staging": on(100)],
            health: [HealthResult(check: check, result: .value(0.05), environment: "staging")])
        #expect(decision.status == .holding)
        #expect(decision.changes.isEmpty)
        #expect(decision.notification != nil)
    }

    @Test func noDataHoldsRollsBackOrIsIgnoredAsConfigured() {
        let record = RolloutRecord(phase: "staging", enteredAt: now, status: .progressing, planBlob: blob)
        for (action, status) in [
            (HealthCheck.NoDataAction.hold, RolloutStatus.holding), (.rollback, .rolledBack),
            (.ignore, .progressing),
        ] {
            let check = HealthCheck(name: "e", query: "q", max: 1, onBreach: .hold, onNoData: action)
            let decision = decide(
                record: record, actual: ["staging": on(100)],
                approvals: approved("canary-10", ["engineering-lead", "qa-lead", "sre"]),
                health: [HealthResult(check: check, result: .noData(reason: "no data"), environment: "staging")])
            #expect(decision.status == status)
        }
    }

    @Test func lostStateInfersThePhaseAndRestartsTheBake() {
        let decision = decide(record: nil, actual: ["staging": on(100), "production": on(10)], hoursLater: 0)
        #expect(decision.currentPhase == "canary-10")
        #expect(decision.record.enteredAt == now)
        #expect(decision.blockers.contains { $0.kind == .bake && $0.remainingSeconds == 86400 })
        #expect(decision.changes.isEmpty)
    }

    @Test func disabledMeansOffWithCoverageZero() {
        #expect(PhaseMachine.matches(FlagEnvironmentState(enabled: false, coverage: 0), .disabled))
        #expect(!PhaseMachine.matches(FlagEnvironmentState(enabled: false, coverage: 10), .disabled))
        #expect(!PhaseMachine.matches(nil, on(10)))
    }
}
