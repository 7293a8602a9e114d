import Foundation

/// What one evaluation of one health check asks of the gate (SPEC §3, §5 rules 3 and 4): the one home of
/// that rule. `PhaseMachine` acts on it for the current phase; `Backtest` replays it step by step.
extension HealthResult {
    /// `.ignore` for a pass, a `notify` check's breach (it never gates) or no data the check ignores;
    /// `.hold` or `.rollback` for a breach of a `hold` or `rollback` check, and for no data by `onNoData`.
    /// Whether a `rollback` rolls back is the plan's `rollback.automatic` (`rollsBack(automatic:)`).
    public var gateAction: HealthCheck.NoDataAction {
        switch verdict {
        case .pass: return .ignore
        // A notify check never gates (SPEC §3): its breach counts as a pass here; NotifyWatch announces it.
        case .breach where check.onBreach == .notify: return .ignore
        case .breach: return check.onBreach == .rollback ? .rollback : .hold
        case .noData: return check.onNoData
        }
    }

    /// True when this result is in breach for the episode rules (SPEC §6.2): a value outside the threshold,
    /// or no data where the check's `onNoData` holds or rolls back.
    public var inBreach: Bool {
        switch verdict {
        case .pass: return false
        case .breach: return true
        case .noData: return check.onNoData != .ignore
        }
    }
}

/// The query text of a health check or a panel with SPEC §8's placeholders substituted: the one home of
/// `{{flag}}`, `{{environment}}`, `{{phase}}` and `{{window}}` (the reconciler, `serve`'s panels and the
/// backtest all call it).
public enum QueryText {
    public static func substitute(
        _ query: String, flag: String, environment: String, phase: String, window: RolloutDuration
    ) -> String {
        query
            .replacingOccurrences(of: "{{flag}}", with: flag)
            .replacingOccurrences(of: "{{environment}}", with: environment)
            .replacingOccurrences(of: "{{phase}}", with: phase)
            .replacingOccurrences(of: "{{window}}", with: window.prometheus)
    }
}

/// The queries a phase's health checks ask at `now` (SPEC §3, §8): each check's text with its placeholders
/// filled, `{{window}}` the time since the phase was entered (at least one second).
public enum HealthQueries {
    public static func at(
        _ now: Date, checks: [HealthCheck], flag: String, environment: String, phase: String, since: Date
    ) -> [MetricQuery] {
        let window = RolloutDuration(seconds: max(1, elapsedSeconds(from: since, to: now)))
        return checks.map {
            MetricQuery(
                check: $0.name,
                query: QueryText.substitute(
                    $0.query, flag: flag, environment: environment, phase: phase, window: window),
                time: now)
        }
    }
}
