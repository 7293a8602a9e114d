import Foundation
import Logging
import RolloutAdapters
import RolloutCore
import RolloutKit
import RolloutServe

/// `serve`'s backtests (SPEC §6.2, §9): `rolloutctl backtest`'s own run for one rollout, with its defaults
/// (30 days at 1m), so the page shows the numbers the command prints.
enum ServeBacktest {
    static func make(options: RunOptions, wiring: Wiring, logger: Logger)
        -> (@Sendable (String, Date) async -> Result<BacktestReport, BacktestUnavailable>)?
    {
        guard let baseURL = wiring.metricsSource?.prometheusURL, let client = wiring.client else { return nil }
        let backtest = PrometheusBacktestClient(
            range: PrometheusRangeClient(baseURL: baseURL, client: client, timeout: .seconds(30), logger: logger))
        let repository = options.repository.repo
        let ref = options.repository.ref
        let state = options.state
        return { rollout, now in
            do {
                let settings = BacktestSettings(
                    repositoryPath: repository, ref: ref, rollouts: [rollout], now: now, statePath: state)
                return .success(try await BacktestRunner.run(settings: settings, client: backtest))
            } catch {
                return .failure(BacktestUnavailable("\(error)"))
            }
        }
    }
}
