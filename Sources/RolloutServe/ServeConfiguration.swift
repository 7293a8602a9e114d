import Foundation
import Logging
import RolloutAdapters
import RolloutCore
import RolloutKit

/// How `rolloutctl serve` reads and what it runs (SPEC §9).
public struct ServeConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// A plan-mode run, as `rolloutctl plan` makes it.
    public var plan: @Sendable () async throws -> RunReport
    /// One reconcile under the lock (`--reconcile-interval`).
    public var reconcile: (@Sendable () async -> TickResult)?
    /// Seconds between reconciles; nil: the server never reconciles.
    public var reconcileEvery: Int?
    /// A report younger than this is served again instead of planning anew.
    public var maxReportAge: TimeInterval
    public var statePath: String
    /// Where the panels' series come from (`--metrics http…`); nil: panels say there is no source.
    public var range: PrometheusRangeClient?
    /// [issue 24] The backtest of one rollout's checks (SPEC §6.2) for its page, as `rolloutctl backtest` makes
    /// it; nil: the page says there is no source.
    public var backtest:
        (@Sendable (_ rollout: String, _ now: Date) async -> Result<BacktestReport, BacktestUnavailable>)?
    public var logger: Logger
    /// Where the reconcile ticks log (SPEC §6 [r3]), and whether each tick logs the whole plan.
    public var tickLogger: Logger
    public var verbose: Bool

    public init(
        host: String, port: Int, plan: @escaping @Sendable () async throws -> RunReport,
        reconcile: (@Sendable () async -> TickResult)?, reconcileEvery: Int?, maxReportAge: TimeInterval,
        statePath: String, range: PrometheusRangeClient?, logger: Logger, tickLogger: Logger? = nil,
        verbose: Bool = false
    ) {
        self.tickLogger = tickLogger ?? logger
        self.verbose = verbose
        self.host = host
        self.port = port
        self.plan = plan
        self.reconcile = reconcile
        self.reconcileEvery = reconcileEvery
        self.maxReportAge = maxReportAge
        self.statePath = statePath
        self.range = range
        self.logger = logger
    }
}
