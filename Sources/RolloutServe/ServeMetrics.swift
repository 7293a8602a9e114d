import CoreMetrics
import Foundation
import Prometheus
import RolloutCore
import RolloutKit

/// `/metrics` (SPEC §9): swift-metrics instruments on a private swift-prometheus registry (no global
/// bootstrap, so tests and other code keep their own metrics system).
///
/// The per-rollout gauges describe the latest plan-mode report: series of rollouts, phases or checks that
/// are gone are removed, so that an old status never lingers as a second `rolloutctl_rollout_info` series.
public final class ServeMetrics: @unchecked Sendable {
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    private let lock = NSLock()
    private var gauges: [String: CoreMetrics.Gauge] = [:]
    private let runsOK: CoreMetrics.Counter
    private let runsFailed: CoreMetrics.Counter
    private let duration: CoreMetrics.Timer
    private let lastRun: CoreMetrics.Gauge

    public init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(10), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
            .seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
        ]
        self.factory = factory
        // Both results exist from the start, so that rate() sees the first run.
        runsOK = CoreMetrics.Counter(
            label: "rolloutctl_reconcile_runs_total", dimensions: [("result", "ok")],
            factory: factory)
        runsFailed = CoreMetrics.Counter(
            label: "rolloutctl_reconcile_runs_total", dimensions: [("result", "error")],
            factory: factory)
        duration = CoreMetrics.Timer(label: "rolloutctl_reconcile_duration_seconds", dimensions: [], factory: factory)
        lastRun = CoreMetrics.Gauge(
            label: "rolloutctl_last_reconcile_timestamp_seconds", dimensions: [],
            factory: factory)
    }

    /// A reconcile run of `--reconcile-interval`: its result, its duration, its time.
    public func recordRun(ok: Bool, seconds: Double, at time: Date) {
        (ok ? runsOK : runsFailed).increment()
        duration.recordNanoseconds(Int64(seconds * 1_000_000_000))
        lastRun.record(time.timeIntervalSince1970)
    }

    /// Replaces the per-rollout gauges with those of `report`.
    public func update(from report: RunReport) {
        var values: [(String, [(String, String)], Double)] = []
        for rollout in report.rollouts {
            values.append(
                (
                    "rolloutctl_rollout_info",
                    [
                        ("rollout", rollout.name), ("flag", rollout.flag ?? ""),
                        ("status", rollout.status.rawValue),
                        ("phase", rollout.currentPhase ?? ""),
                    ], 1
                ))
            for row in CoverageRow.rows(of: rollout) {
                if let desired = row.desired {
                    values.append(
                        (
                            "rolloutctl_rollout_coverage",
                            [
                                ("rollout", rollout.name),
                                ("environment", row.environment), ("kind", "desired"),
                            ], desired
                        ))
                }
                if let actual = row.actual {
                    values.append(
                        (
                            "rolloutctl_rollout_coverage",
                            [
                                ("rollout", rollout.name),
                                ("environment", row.environment), ("kind", "actual"),
                            ], actual
                        ))
                }
            }
            for result in rollout.health {
                if let value = result.value {
                    values.append(
                        (
                            "rolloutctl_health_value", [("rollout", rollout.name), ("check", result.check.name)],
                            value
                        ))
                }
            }
            for entry in rollout.timeline {
                let missing = entry.waitingFor.filter { $0.hasPrefix("approval:") }.count
                values.append(
                    (
                        "rolloutctl_approvals_missing", [("rollout", rollout.name), ("phase", entry.phase)],
                        Double(missing)
                    ))
            }
        }
        lock.lock()
        defer { lock.unlock() }
        var kept: [String: CoreMetrics.Gauge] = [:]
        for (label, dimensions, value) in values {
            let key = label + "|" + dimensions.map { "\($0.0)=\($0.1)" }.joined(separator: "|")
            let gauge =
                gauges[key] ?? kept[key]
                ?? CoreMetrics.Gauge(label: label, dimensions: dimensions, factory: factory)
            gauge.record(value)
            kept[key] = gauge
        }
        for (key, gauge) in gauges where kept[key] == nil { gauge.destroy() }
        gauges = kept
    }

    /// What each family means: `# HELP` lines (SPEC §9 names).
    static let help: [String: String] = [
        "rolloutctl_rollout_info": "Each rollout's flag, status and current phase (value 1).",
        "rolloutctl_rollout_coverage":
            "Exposure in percent per environment: desired by the plan, actual at the flag service.",
        "rolloutctl_health_value": "The last value of each health check of the rollout's current phase.",
        "rolloutctl_approvals_missing": "Approvals still needed by each phase not yet entered.",
        "rolloutctl_reconcile_runs_total": "Reconcile runs of this server (--reconcile-interval) by result.",
        "rolloutctl_reconcile_duration_seconds": "Duration of the reconcile runs of this server.",
        "rolloutctl_last_reconcile_timestamp_seconds": "Unix time the last reconcile run of this server started.",
    ]

    /// The Prometheus text exposition. swift-metrics carries no help text, so the `# HELP` line of each family
    /// (which `promtool check metrics` requires) is written before its `# TYPE` line here.
    public func exposition() -> String {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        var out = ""
        for line in String(decoding: buffer, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("# TYPE "), let name = line.dropFirst(7).split(separator: " ").first,
                let text = Self.help[String(name)]
            {
                out += "# HELP \(name) \(text)\n"
            }
            out += line + "\n"
        }
        return out.hasSuffix("\n\n") ? String(out.dropLast()) : out
    }
}

/// One environment of a rollout: the coverage the plan wants after this run, and the flag's.
struct CoverageRow: Sendable {
    var environment: String
    /// Exposure in percent (0 when disabled); nil when the plan has not reached the environment.
    var desired: Double?
    var actual: Double?

    static func rows(of rollout: RolloutReport) -> [CoverageRow] {
        guard let plan = rollout.plan else { return [] }
        var desired: [String: FlagEnvironmentState] = [:]
        if let name = rollout.currentPhase, let index = plan.phaseIndex(named: name) {
            desired = plan.desiredState(atPhase: index)
        }
        // A change of this run says what the environment is driven to (advance, rollback, drift…).
        for change in rollout.changes { desired[change.environment] = change.to }
        return plan.environments.map { environment in
            CoverageRow(
                environment: environment,
                desired: desired[environment].map(\.exposure),
                actual: rollout.actual[environment].map { $0.enabled ? $0.coverage : 0 })
        }
    }
}
