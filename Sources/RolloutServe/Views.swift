import Foundation
import RolloutAdapters
import RolloutCore
import RolloutKit

/// Builds the template contexts from a run report, the state and the panels' series. Values only: every text
/// is given raw and escaped by the template layer.
enum Views {
    static func overview(
        report: RunReport, header: [String: Any], order: OverviewOrder = OverviewOrder()
    ) -> [String: Any] {
        var context = header
        context.merge(order.context(report.rollouts)) { _, new in new }
        context["title"] = "Control Tower"
        context["count"] = report.rollouts.count
        context["one"] = report.rollouts.count == 1
        context["summary"] =
            "\(report.changeCount) to change, \(report.blockedCount) blocked, "
            + "\(report.unchangedCount) unchanged, \(report.errorCount) with errors"
        context["policyErrors"] = report.policyErrors.map(\.description)
        context["rollouts"] = order.apply(report.rollouts).map { summary($0) }
        return context
    }

    static func header(report: RunReport?, now: Date, lastReconcile: Date?) -> [String: Any] {
        var context: [String: Any] = ["plannedAt": time(now)]
        if let report {
            context["revision"] = String(report.revision.prefix(12))
            context["ref"] = report.ref
        }
        if let lastReconcile { context["lastReconcile"] = time(lastReconcile) }
        return context
    }

    /// What the overview's card and the rollout page share.
    static func summary(_ rollout: RolloutReport) -> [String: Any] {
        let coverage = CoverageRow.rows(of: rollout).map { row -> [String: Any] in
            ["environment": row.environment, "desired": percent(row.desired), "actual": percent(row.actual)]
        }
        let blockers = rollout.blockers.map { blocker -> [String: Any] in
            var item: [String: Any] = [
                "kind": blocker.kind.rawValue, "label": label(blocker), "detail": blocker.detail,
            ]
            if let role = blocker.role { item["role"] = role }
            return item
        }
        let timeline = rollout.timeline.map { entry -> [String: Any] in
            [
                "phase": entry.phase, "earliest": entry.earliestStart.map { time($0) } ?? "blocked",
                "waiting": entry.waitingFor.isEmpty ? "nothing" : entry.waitingFor.joined(separator: ", "),
            ]
        }
        var context: [String: Any] = [
            "name": rollout.name, "flag": rollout.flag ?? "", "status": rollout.status.rawValue,
            "currentPhase": rollout.currentPhase ?? "none yet",
            "coverage": coverage, "hasCoverage": !coverage.isEmpty,
            "blockers": blockers, "hasBlockers": !blockers.isEmpty,
            "timeline": timeline, "hasTimeline": !timeline.isEmpty,
            "errors": rollout.errors.map(\.description),
        ]
        if let next = rollout.nextPhase, rollout.status != .completed { context["nextPhase"] = next }
        return context
    }

    static func rollout(
        _ rollout: RolloutReport, header: [String: Any], entries: [(phase: String, enteredAt: Date)],
        history: [AuditEntry], panels: [PanelResult], now: Date
    ) -> [String: Any] {
        var context = summary(rollout)
        if let description = rollout.plan?.description { context["description"] = description }
        if let blob = rollout.planBlob { context["planBlob"] = String(blob.prefix(12)) }

        let projected = Dictionary(rollout.timeline.map { ($0.phase, $0) }, uniquingKeysWith: { a, _ in a })
        let plan = rollout.plan
        context["phases"] = (plan?.phases ?? []).map { phase -> [String: Any] in
            let entered = entries.last { $0.phase == phase.name }?.enteredAt
            var baked = "—"
            if let entered, let bake = phase.bake {
                let done = entered.addingTimeInterval(TimeInterval(bake.seconds))
                baked =
                    done <= now
                    ? "baked \(time(done))"
                    : "\(RolloutDuration.format(seconds: Int(done.timeIntervalSince(now).rounded(.up)))) left"
            }
            var projection = entered == nil ? "—" : "entered"
            if let entry = projected[phase.name] {
                projection =
                    (entry.earliestStart.map { "earliest \(time($0))" } ?? "blocked")
                    + (entry.waitingFor.isEmpty ? "" : " (\(entry.waitingFor.joined(separator: ", ")))")
            }
            return [
                "name": phase.name, "environment": phase.environment,
                "coverage": "\(formatNumber(phase.coverage))%",
                "bake": phase.bake.map { "\($0)" } ?? "—", "entered": entered.map { time($0) } ?? "—",
                "baked": baked, "projected": projection,
            ]
        }

        var commands: [String] = []
        if let next = rollout.timeline.first {
            for role in Set(next.waitingFor.filter { $0.hasPrefix("approval:") }).sorted() {
                let name = role.dropFirst("approval:".count)
                commands.append("rolloutctl approve \(rollout.name) \(next.phase) --role \(name)")
            }
        }
        context["approveCommands"] = commands
        context["hasApproveCommands"] = !commands.isEmpty

        let approvals = rollout.approvals.map { approval -> [String: Any] in
            [
                "phase": approval.phase, "role": approval.role ?? "?", "approver": approval.approver ?? "?",
                "commit": approval.commit.map { String($0.prefix(12)) } ?? "not committed", "counted": approval.counted,
                "reason": approval.reason ?? "",
            ]
        }
        context["approvals"] = approvals
        context["hasApprovals"] = !approvals.isEmpty

        let health = rollout.health.map { result -> [String: Any] in
            var item: [String: Any] = [
                "name": result.check.name, "value": result.value.map(formatNumber) ?? "no data",
                "threshold": result.check.thresholdDescription,
                "verdict": result.verdict.rawValue,
                "onBreach": result.check.onBreach.rawValue,
            ]
            if let reason = result.noDataReason { item["reason"] = reason }
            return item
        }
        context["health"] = health
        context["hasHealth"] = !health.isEmpty

        context["panels"] = panels.map { panel -> [String: Any] in
            var item: [String: Any] = ["title": panel.panel.title]
            if let unit = panel.panel.unit { item["unit"] = unit }
            switch panel.result {
            case .success(let chart) where chart.pointCount > 0:
                item["chart"] = chartContext(chart, title: panel.panel.title, unit: panel.panel.unit)
            case .success:
                item["failure"] = "no data in this time range"
            case .failure(let failure):
                item["failure"] = failure.reason
            }
            return item
        }
        context["hasPanels"] = !panels.isEmpty

        let rows = history.map { entry -> [String: Any] in
            var change = ""
            if entry.from != nil || entry.to != nil { change = "\(describe(entry.from)) → \(describe(entry.to))" }
            return [
                "time": time(entry.time), "kind": entry.kind.rawValue, "phase": entry.phase ?? "",
                "environment": entry.environment ?? "", "change": change, "reason": entry.reason,
                "result": entry.result ?? "", "detail": entry.detail ?? "",
            ]
        }
        context["history"] = rows
        context["hasHistory"] = !rows.isEmpty

        var page = header
        page["title"] = rollout.name
        page["rollout"] = context
        return page
    }

    static func chartContext(_ chart: Chart, title: String, unit: String?) -> [String: Any] {
        let bottomY = Chart.height - Chart.bottom
        return [
            "title": title, "width": Int(Chart.width), "height": Int(Chart.height), "pointCount": chart.pointCount,
            "left": Chart.left, "top": Chart.top, "bottomY": bottomY, "rightX": Chart.width - Chart.right,
            "topLabelY": Chart.top + 8, "timeY": Chart.height - 8,
            "yMax": Chart.axisValue(chart.yMax, unit: unit), "yMin": Chart.axisValue(chart.yMin, unit: unit),
            "start": time(chart.start), "end": time(chart.end),
            "lines": chart.lines.map { line -> [String: Any] in
                ["points": line.points, "count": line.count, "label": line.label, "colorIndex": line.colorIndex]
            },
        ]
    }

    static func label(_ blocker: Blocker) -> String {
        switch blocker.kind {
        case .approval: return "waiting for approval"
        case .bake: return "baking"
        case .health: return "health"
        case .state: return "state"
        case .error: return "error"
        }
    }

    static func percent(_ value: Double?) -> String {
        value.map { "\(formatNumber($0))%" } ?? "not reached"
    }

    static func describe(_ state: FlagEnvironmentState?) -> String {
        guard let state else { return "absent" }
        return state.enabled ? "\(formatNumber(state.coverage))%" : "off"
    }

    static func time(_ date: Date) -> String { RFC3339.minutes(date) }
}

/// A dashboard panel with its series, or the reason it has none.
struct PanelResult: Sendable {
    var panel: DashboardPanel
    var result: Result<Chart, RangeQueryFailure>
}
