import Foundation
import RolloutAdapters
import RolloutCore
import RolloutKit

/// The dashboard panels of a rollout's page (SPEC §9): each panel's `query_range` series, drawn by `Chart`.
extension StatusServer {
    /// Each panel's series over the rollout's life (from its first phase entry, at least the last day).
    func panels(
        for rollout: RolloutReport, entries: [(phase: String, enteredAt: Date)]?,
        now: Date
    ) async -> [PanelResult] {
        guard let plan = rollout.plan, !plan.panels.isEmpty else { return [] }
        let oneDay = now.addingTimeInterval(-86_400)
        let start = min(entries?.first?.enteredAt ?? oneDay, oneDay)
        let span = max(60, now.timeIntervalSince(start))
        let step = max(60, Int((span / 240).rounded(.up)))
        let window = RolloutDuration(seconds: max(step, 300))
        let phase =
            rollout.currentPhase.flatMap { plan.phaseIndex(named: $0) }.map { plan.phases[$0] }
            ?? plan.phases.first
        guard let range = configuration.range else {
            return plan.panels.map {
                PanelResult(
                    panel: $0,
                    result: .failure(
                        RangeQueryFailure(reason: "no Prometheus configured (pass --metrics http…)")))
            }
        }
        return await withTaskGroup(of: (Int, PanelResult).self) { group in
            for (index, panel) in plan.panels.enumerated() {
                let query = QueryText.substitute(
                    panel.query, flag: plan.flag, environment: phase?.environment ?? "", phase: phase?.name ?? "",
                    window: window)
                group.addTask {
                    let result = await range.queryRange(query, start: start, end: now, step: step)
                    let chart = result.map { Chart(series: $0, start: start, end: now) }
                    return (index, PanelResult(panel: panel, result: chart))
                }
            }
            var results: [(Int, PanelResult)] = []
            for await result in group { results.append(result) }
            return results.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }
}
