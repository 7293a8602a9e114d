import Foundation
import RolloutCore
import RolloutKit

/// The backtests `serve` shows on a rollout's page, each made once per rollout, plan blob and step of the
/// window and then kept for `maxAge` (a 30-day backtest is dozens of range requests; a page is read often).
actor BacktestCache {
    private let produce: @Sendable (_ rollout: String, _ now: Date) async -> Result<BacktestReport, BacktestUnavailable>
    private let maxAge: TimeInterval
    private var kept: [String: (report: Result<BacktestReport, BacktestUnavailable>, at: Date)] = [:]

    init(
        maxAge: TimeInterval = 600,
        produce: @escaping @Sendable (String, Date) async -> Result<BacktestReport, BacktestUnavailable>
    ) {
        self.maxAge = maxAge
        self.produce = produce
    }

    func report(rollout: String, planBlob: String?, now: Date) async -> Result<BacktestReport, BacktestUnavailable> {
        let key = rollout + "@" + (planBlob ?? "")
        if let entry = kept[key], Date().timeIntervalSince(entry.at) < maxAge { return entry.report }
        let report = await produce(rollout, now)
        kept[key] = (report, Date())
        return report
    }
}

/// Why a rollout's page has no backtest (no Prometheus, the repository could not be read).
public struct BacktestUnavailable: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension Views {
    /// The page's `backtests` (one chart per check and group of phases with the same figures), or the reason
    /// there are none.
    static func backtests(_ result: Result<BacktestReport, BacktestUnavailable>, rollout: String) -> [String: Any] {
        let report: BacktestReport
        switch result {
        case .failure(let failure): return ["backtestFailure": failure.description]
        case .success(let made): report = made
        }
        guard let entry = report.rollouts.first(where: { $0.name == rollout }) else {
            return ["backtestFailure": "the backtest has no rollout named \(rollout)"]
        }
        if !entry.errors.isEmpty { return ["backtestFailure": entry.errors.joined(separator: "; ")] }
        var charts: [[String: Any]] = []
        for (check, groups) in BacktestReport.groups(entry.rows) {
            for group in groups {
                let chart = BacktestChart(row: group.row, window: report.window)
                let bottomY = BacktestChart.height - BacktestChart.bottom
                let plotHeight = BacktestChart.plotHeight
                charts.append([
                    "check": check.name, "phases": group.phases.joined(separator: ", "),
                    "environment": group.row.environment, "threshold": check.thresholdDescription,
                    "onBreach": check.onBreach.rawValue, "verdict": report.verdict(group.row),
                    "episodeCount": group.row.figures.episodes.count, "rollbacks": group.row.figures.rollbacks,
                    "width": Int(BacktestChart.width), "height": Int(BacktestChart.height),
                    "left": BacktestChart.left, "top": BacktestChart.top, "bottomY": bottomY,
                    "rightX": BacktestChart.width - BacktestChart.right, "topLabelY": BacktestChart.top + 8,
                    "timeY": BacktestChart.height - 6, "yMax": Chart.axisValue(chart.yMax, unit: nil),
                    "yMin": Chart.axisValue(chart.yMin, unit: nil), "start": time(report.window.start),
                    "end": time(report.window.end), "pointCount": chart.pointCount,
                    "lines": chart.lines.map { ["points": $0] },
                    "thresholds": chart.thresholds.map { threshold -> [String: Any] in
                        [
                            "y": Chart.coordinate(threshold.y), "label": threshold.label,
                            "labelY": Chart.coordinate(threshold.y - 3),
                        ]
                    },
                    "episodes": chart.episodes.map { band -> [String: Any] in
                        [
                            "x": Chart.coordinate(band.x), "width": Chart.coordinate(band.width),
                            "y": BacktestChart.top, "height": plotHeight,
                        ]
                    },
                    "failures": group.row.failed.map {
                        "\(time($0.start)) → \(time($0.end)): \($0.reason)"
                    },
                ])
            }
        }
        return [
            "hasBacktests": !charts.isEmpty, "backtests": charts, "backtestSince": report.sinceText,
            "backtestSummary": report.summaryLine,
        ]
    }
}
