import Foundation
import Testing

@testable import RolloutCore

/// `onBreach: notify` (SPEC §3): decoding, one notification per breach episode, never a gate.
@Suite struct NotifyWatchTests {
    static let drop = HealthCheck(
        name: "form-submitted-drop", query: "q", min: 0.8, onBreach: .notify,
        onNoData: .ignore)
    static let rise = HealthCheck(
        name: "form-abandoned-rise", query: "q", max: 1.1, onBreach: .notify,
        onNoData: .ignore)
    static let gate = HealthCheck(name: "error-rate", query: "q", max: 0.02, onBreach: .rollback)
    static let checks = [drop, rise, gate]

    static func result(_ check: HealthCheck, _ value: Double?) -> HealthResult {
        HealthResult(
            check: check, result: value.map { .value($0) } ?? .noData(reason: "no data"),
            environment: "production")
    }

    struct Row: Sendable, CustomTestStringConvertible {
        var name: String
        var previous: Set<String>
        var results: [HealthResult]
        var episodes: [String]
        var breaching: Set<String>
        var testDescription: String { name }
    }

    static let rows: [Row] = [
        Row(
            name: "a first breach starts an episode", previous: [],
            results: [result(drop, 0.7), result(rise, 1.0), result(gate, 0.01)],
            episodes: ["form-submitted-drop"], breaching: ["form-submitted-drop"]),
        Row(
            name: "a breach that goes on is the same episode", previous: ["form-submitted-drop"],
            results: [result(drop, 0.6), result(rise, 1.0)], episodes: [], breaching: ["form-submitted-drop"]),
        Row(
            name: "a pass ends the episode", previous: ["form-submitted-drop"],
            results: [result(drop, 0.95), result(rise, 1.0)], episodes: [], breaching: []),
        Row(
            name: "no data neither ends nor starts one", previous: ["form-submitted-drop"],
            results: [result(drop, nil), result(rise, nil)], episodes: [], breaching: ["form-submitted-drop"]),
        Row(
            name: "health not evaluated (no results): nothing changes", previous: ["form-abandoned-rise"],
            results: [], episodes: [], breaching: ["form-abandoned-rise"]),
        Row(
            name: "two watches breach at once: two episodes", previous: [],
            results: [result(drop, 0.5), result(rise, 1.3)],
            episodes: ["form-submitted-drop", "form-abandoned-rise"],
            breaching: ["form-submitted-drop", "form-abandoned-rise"]),
        Row(
            name: "a gating check's breach is not a notify episode", previous: [],
            results: [result(gate, 0.5)], episodes: [], breaching: []),
        Row(
            name: "a check that is no longer a notify check is forgotten", previous: ["renamed-watch"],
            results: [result(drop, 0.9)], episodes: [], breaching: []),
    ]

    @Test(arguments: rows)
    func episodes(_ row: Row) {
        let outcome = NotifyWatch.step(previous: row.previous, checks: Self.checks, results: row.results)
        #expect(outcome.newEpisodes.map(\.check.name) == row.episodes)
        #expect(outcome.breaching == row.breaching)
    }

    @Test func breachRecoveryBreachNotifiesTwice() {
        var breaching: Set<String> = []
        var notified = 0
        for value in [0.7, 0.6, 0.9, 0.85, 0.5, 0.4] {
            let outcome = NotifyWatch.step(
                previous: breaching, checks: Self.checks,
                results: [Self.result(Self.drop, value)])
            notified += outcome.newEpisodes.count
            breaching = outcome.breaching
        }
        #expect(notified == 2)
    }

    @Test func aNotifyBreachNeverGates() {
        let plan = TimelineTests.plan
        let record = RolloutRecord(
            phase: "canary-10", enteredAt: TimelineTests.hours(-30), status: .progressing,
            planBlob: "b1")
        let on10 = FlagEnvironmentState(enabled: true, coverage: 10)
        let decision = PhaseMachine.decide(
            .init(
                plan: plan, planBlob: "b1", approvals: [],
                missingRoles: Array(repeating: [], count: plan.phases.count), record: record,
                actual: ["staging": FlagEnvironmentState(enabled: true, coverage: 100), "production": on10],
                health: [Self.result(Self.drop, 0.1), Self.result(Self.rise, 9), Self.result(Self.gate, 0.001)],
                now: TimelineTests.now))
        #expect(decision.advancedTo == "canary-50")
        #expect(decision.status == .progressing)
        #expect(decision.notification == nil)
    }

    @Test func notifyChecksDecodeWithIgnoreAsTheirNoDataDefault() throws {
        let gate = #"{ "name": "error-rate", "query": "q1", "max": 0.02, "onBreach": "rollback" }"#
        let plan = validPlanJSON.replacingOccurrences(
            of: gate,
            with: gate + #", { "name": "form-submitted-drop", "query": "q2", "min": 0.8, "onBreach": "notify" }"#)
        let snapshot = loadSnapshot([planPath: plan, "policies/approvers.json": approversJSON])
        #expect(snapshot.allDiagnostics.isEmpty)
        let checks = try #require(snapshot.rollout(named: "exp-001-autosave")?.plan?.health.checks)
        #expect(checks.map(\.onBreach) == [.rollback, .notify])
        #expect(checks.map(\.onNoData) == [.hold, .ignore])
    }

    @Test func aNotifyCheckThatWouldGateOnNoDataIsAnError() {
        let plan = validPlanJSON.replacingOccurrences(
            of: #""onBreach": "rollback" }"#,
            with: #""onBreach": "notify", "onNoData": "hold" }"#)
        let errors = planErrors(plan)
        #expect(errors.count == 1)
        #expect(errors.first?.hasPrefix("\(planPath):14:") == true)
        #expect(errors.first?.contains("a \"notify\" check never gates") == true)
    }

    @Test func dashboardPanelsDecodeAndTyposAreErrors() throws {
        let panelsJSON =
            #""dashboard": { "panels": ["#
            + #"{ "title": "Error rate by flag status", "query": "sum by (variant) (rate(x[5m]))", "unit": "ratio" },"#
            + #"{ "title": "Event counts", "query": "sum(increase(y[{{window}}]))" } ] },"#
        let withPanels = validPlanJSON.replacingOccurrences(
            of: #""rollback": {"#,
            with: panelsJSON + #" "rollback": {"#)
        let snapshot = loadSnapshot([planPath: withPanels, "policies/approvers.json": approversJSON])
        #expect(snapshot.allDiagnostics.isEmpty)
        let panels = try #require(snapshot.rollout(named: "exp-001-autosave")?.plan?.panels)
        #expect(
            panels == [
                DashboardPanel(
                    title: "Error rate by flag status", query: "sum by (variant) (rate(x[5m]))",
                    unit: "ratio"),
                DashboardPanel(title: "Event counts", query: "sum(increase(y[{{window}}]))"),
            ])

        let typo = withPanels.replacingOccurrences(of: "\"unit\": \"ratio\"", with: "\"units\": \"ratio\"")
        let errors = planErrors(typo)
        #expect(errors.count == 1)
        #expect(errors.first?.contains("units") == true)
    }
}
