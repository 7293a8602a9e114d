import Foundation
import RolloutAdapters
import Testing

@testable import RolloutCore
@testable import RolloutKit
@testable import RolloutServe

/// The pieces of `serve` that need no process: chart geometry, the range answer, template escaping and
/// the gauges that follow the latest report.
@Suite struct ServeViewTests {
    static let start = Date(timeIntervalSince1970: 1_800_000_000)

    static func plan(description: String) -> Plan {
        Plan(
            apiVersion: "rolloutctl/v1", name: "exp-001-autosave", namePosition: .start, flag: "portal_form_autosave",
            description: description, state: .active,
            phases: [
                Plan.Phase(name: "staging", environment: "staging", coverage: 100),
                Plan.Phase(
                    name: "canary-10", environment: "production", coverage: 10,
                    bake: RolloutDuration(parsing: "24h"), approvals: ["sre"]),
            ],
            health: Plan.Health(checks: [], use: nil, usePosition: nil), rollback: Plan.Rollback())
    }

    static func report(status: RolloutStatus, phase: String?, description: String = "autosave") -> RunReport {
        var rollout = RolloutReport(
            name: "exp-001-autosave", flag: "portal_form_autosave", planBlob: "b1",
            status: status, currentPhase: phase, nextPhase: "canary-10")
        rollout.plan = plan(description: description)
        rollout.actual = ["staging": FlagEnvironmentState(enabled: true, coverage: 100)]
        rollout.blockers = [
            Blocker(
                kind: .approval, detail: "canary-10 needs an approval from role sre <now>",
                role: "sre", phase: "canary-10")
        ]
        rollout.timeline = [TimelineEntry(phase: "canary-10", earliestStart: start, waitingFor: ["approval:sre"])]
        return RunReport(ref: "main", revision: "abc", now: start, mode: .plan, rollouts: [rollout], policyErrors: [])
    }

    @Test func chartScalesSeriesIntoTheViewBox() {
        let series = [
            RangeSeries(
                labels: ["variant": "treatment"],
                points: [
                    RangePoint(time: Self.start, value: 0.01),
                    RangePoint(time: Self.start.addingTimeInterval(50), value: 0.03),
                    RangePoint(time: Self.start.addingTimeInterval(100), value: 0.02),
                ]),
            RangeSeries(labels: [:], points: [RangePoint(time: Self.start.addingTimeInterval(100), value: 0.0)]),
        ]
        let chart = Chart(series: series, start: Self.start, end: Self.start.addingTimeInterval(100))
        #expect(chart.pointCount == 4)
        #expect(chart.yMin == 0 && chart.yMax == 0.03)
        let first = chart.lines[0].points.split(separator: " ").map { $0.split(separator: ",").map { Double($0)! } }
        #expect(first[0][0] == Chart.left && first[2][0] == Chart.width - Chart.right)
        #expect(first[1][1] == Chart.top)  // the maximum is at the top
        #expect(chart.lines[1].points.hasSuffix(",\(Chart.height - Chart.bottom)"))  // zero at the bottom
        #expect(chart.lines.map(\.label) == ["variant=treatment", "series"])
        let flat = Chart(
            series: [RangeSeries(labels: [:], points: [RangePoint(time: Self.start, value: 5)])],
            start: Self.start, end: Self.start.addingTimeInterval(60))
        #expect(flat.yMin < 5 && flat.yMax > 5)
    }

    @Test func rangeAnswersAreReadOrExplained() throws {
        let matrix =
            #"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"variant":"control"},"#
            + #""values":[[1800000000,"0.5"],[1800000060,"NaN"],[1800000120,"0.25"]]}]}}"#
        let series = try PrometheusRangeClient.interpret(status: 200, body: Data(matrix.utf8)).get()
        #expect(
            series == [
                RangeSeries(
                    labels: ["variant": "control"],
                    points: [
                        RangePoint(time: Self.start, value: 0.5),
                        RangePoint(time: Self.start.addingTimeInterval(120), value: 0.25),
                    ])
            ])
        let error = #"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#
        #expect(throws: RangeQueryFailure(reason: "prometheus error bad_data: parse error at char 3")) {
            try PrometheusRangeClient.interpret(status: 400, body: Data(error.utf8)).get()
        }
        #expect(throws: RangeQueryFailure(reason: "prometheus answered HTTP 502")) {
            try PrometheusRangeClient.interpret(status: 502, body: Data("<html>".utf8)).get()
        }
    }

    @Test func templatesEscapeEveryText() {
        let hostile = #"<script>alert("x")</script> & <img src=x onerror=alert(1)>"#
        let report = Self.report(status: .blocked, phase: "staging", description: hostile)
        let page =
            Templates.library.render(
                Views.rollout(
                    report.rollouts[0], header: Views.header(report: report, now: Self.start, lastReconcile: nil),
                    entries: [], history: [], panels: [], now: Self.start), withTemplate: "rollout") ?? ""
        #expect(
            page.contains(
                "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(1)&gt;"))
        #expect(!page.contains("<script"))
        #expect(!page.contains("<img"))
        #expect(page.contains("role sre &lt;now&gt;"))
        #expect(page.contains("rolloutctl approve exp-001-autosave canary-10 --role sre"))
    }

    @Test func gaugesFollowTheLatestReport() {
        let metrics = ServeMetrics()
        metrics.update(from: Self.report(status: .blocked, phase: "staging"))
        let first = metrics.exposition()
        #expect(
            first.contains(
                #"rolloutctl_rollout_info{rollout="exp-001-autosave",flag="portal_form_autosave","#
                    + #"status="blocked",phase="staging"} 1.0"#))
        #expect(
            first.contains(
                #"rolloutctl_rollout_coverage{rollout="exp-001-autosave",environment="staging",kind="actual"} 100.0"#))
        #expect(first.contains(#"rolloutctl_approvals_missing{rollout="exp-001-autosave",phase="canary-10"} 1.0"#))
        #expect(first.contains(#"rolloutctl_reconcile_runs_total{result="ok"} 0"#))

        metrics.update(from: Self.report(status: .progressing, phase: "canary-10"))
        metrics.recordRun(ok: true, seconds: 0.2, at: Self.start)
        let second = metrics.exposition()
        #expect(!second.contains(#"status="blocked""#))
        #expect(second.contains(#"status="progressing",phase="canary-10"} 1.0"#))
        #expect(second.contains(#"rolloutctl_reconcile_runs_total{result="ok"} 1"#))
        #expect(second.contains("rolloutctl_reconcile_duration_seconds_count 1"))
        #expect(second.contains("rolloutctl_last_reconcile_timestamp_seconds 1800000000.0"))
    }
}
