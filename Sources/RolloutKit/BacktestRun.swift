import Foundation
import RolloutAdapters
import RolloutCore
import RolloutGit

/// What `rolloutctl backtest` is asked (SPEC §6.2).
public struct BacktestSettings: Sendable {
    public var repositoryPath: String
    public var ref: String?
    public var rollouts: [String]
    public var now: Date
    /// How far back, in seconds (`--since`, default 30d).
    public var since: Int
    /// Seconds between steps (`--step`, default 1m).
    public var step: Int
    /// The state whose recorded policy root decides the policy in force (read only, when it exists).
    public var statePath: String

    public init(
        repositoryPath: String = ".", ref: String? = nil, rollouts: [String] = [], now: Date = Date(),
        since: Int = 30 * 86_400, step: Int = 60, statePath: String
    ) {
        self.repositoryPath = repositoryPath
        self.ref = ref
        self.rollouts = rollouts
        self.now = now
        self.since = since
        self.step = step
        self.statePath = statePath
    }

    /// The step when `--step` is not given: 1m (SPEC §6.2: the query's resolution or 1m).
    public static let defaultStep = 60
    public static let defaultSince = 30 * 86_400
}

/// One check of one rollout in one phase, replayed.
public struct BacktestRow: Sendable {
    public var check: HealthCheck
    public var phase: String
    public var environment: String
    /// `{{window}}`: the phase's bake, or 1h.
    public var window: RolloutDuration
    /// The query as sent, placeholders substituted.
    public var query: String
    public var figures: Backtest.Figures
    /// Parts of the window whose request failed (their steps are no data).
    public var failed: [Backtest.FailedRange]
    /// Each step's result, for the chart of `serve`.
    public var results: [MetricResult]
}

/// One rollout's backtest: its rows, or why it has none.
public struct BacktestRollout: Sendable {
    public var name: String
    public var flag: String?
    public var automatic: Bool
    public var rows: [BacktestRow]
    public var errors: [String]
}

/// The whole backtest: what `--json`, the human screen, `--format markdown` and `serve` show.
public struct BacktestReport: Sendable {
    public var revision: String
    public var ref: String
    public var now: Date
    public var since: Int
    public var window: Backtest.Window
    public var requests: Int
    public var rollouts: [BacktestRollout]

    /// True when a `rollback` check would have fired (`--detailed-exitcode` exits 2).
    public var wouldRollBack: Bool { rollouts.contains { $0.rows.contains { $0.figures.rollbacks > 0 } } }
    public var errorCount: Int { rollouts.reduce(0) { $0 + $1.errors.count } }
}

/// Runs a backtest: the repository as `plan` reads it (`RepositoryReader.load`, the policy in force's
/// health sets applied), every check of every selected plan in every phase that exposes users
/// (coverage above 0, as the reconciler evaluates health), one range fetch per distinct query.
public enum BacktestRunner {
    public static func run(
        settings: BacktestSettings, client: PrometheusBacktestClient,
        progress: (@Sendable (_ done: Int, _ total: Int) -> Void)? = nil
    ) async throws -> BacktestReport {
        let repository = try GitRepository(path: settings.repositoryPath)
        let state = try StateStorageFactory.openReadOnly(settings.statePath)
        let policyRoot = try state?.installation()?.policyRootCommit
        let loaded = try RepositoryReader.load(
            repository: repository, ref: settings.ref, cacheFile: nil, policyRoot: policyRoot)
        let window = Backtest.Window.ending(at: settings.now, since: settings.since, step: settings.step)
        let selected = loaded.snapshot.rollouts.filter {
            settings.rollouts.isEmpty || settings.rollouts.contains($0.name)
        }
        var rollouts: [BacktestRollout] = []
        for name in settings.rollouts where !selected.contains(where: { $0.name == name }) {
            rollouts.append(
                BacktestRollout(name: name, flag: nil, automatic: true, rows: [], errors: ["no rollout named \(name)"]))
        }
        for files in selected {
            guard let plan = files.plan, files.isValid else {
                let errors = files.allDiagnostics.map(\.description)
                rollouts.append(
                    BacktestRollout(
                        name: files.name, flag: files.plan?.flag, automatic: true, rows: [],
                        errors: errors.isEmpty ? ["\(files.planPath): the plan is invalid"] : errors))
                continue
            }
            rollouts.append(pending(name: files.name, plan: plan, checks: files.checks))
        }
        let requests = await replay(&rollouts, window: window, client: client, progress: progress)
        return BacktestReport(
            revision: loaded.revision, ref: loaded.ref, now: settings.now, since: settings.since, window: window,
            requests: requests, rollouts: rollouts.sorted { $0.name < $1.name })
    }

    /// The rows of `checks` of one plan, not yet replayed: each check in each phase that exposes users
    /// (coverage above 0, as the reconciler evaluates health), its query with the placeholders of that phase
    /// substituted (`{{window}}` the phase's bake, or 1h).
    public static func pending(name: String, plan: Plan, checks: [HealthCheck]) -> BacktestRollout {
        var rows: [BacktestRow] = []
        for check in checks {
            for phase in plan.phases where phase.coverage > 0 {
                let phaseWindow = phase.bake ?? RolloutDuration(seconds: 3600)
                let query = QueryText.substitute(
                    check.query, flag: plan.flag, environment: phase.environment, phase: phase.name,
                    window: phaseWindow)
                rows.append(
                    BacktestRow(
                        check: check, phase: phase.name, environment: phase.environment, window: phaseWindow,
                        query: query,
                        figures: Backtest.Figures(
                            samples: 0, noData: 0, breachSteps: 0, heldSteps: 0, episodes: [], notifications: 0),
                        failed: [], results: []))
            }
        }
        return BacktestRollout(name: name, flag: plan.flag, automatic: plan.rollback.automatic, rows: rows, errors: [])
    }

    /// Replays every row of `rollouts` over `window`: one range fetch per distinct query across all of them
    /// (`PrometheusBacktestClient`), each row's steps judged by `Backtest.evaluate`. Returns the number of
    /// requests made. `backtest` and `plan --base … --metrics` (SPEC §6.2) both replay through here.
    public static func replay(
        _ rollouts: inout [BacktestRollout], window: Backtest.Window, client: PrometheusBacktestClient,
        progress: (@Sendable (_ done: Int, _ total: Int) -> Void)? = nil
    ) async -> Int {
        let queries = rollouts.flatMap { $0.rows.map(\.query) }
        let fetched = await client.fetch(queries: queries, window: window, progress: progress)
        var evaluated: [String: ([MetricResult], [Backtest.FailedRange])] = [:]
        for (query, answers) in fetched.answers {
            let joined = Backtest.results(window: window, answers: answers)
            evaluated[query] = (joined.results, joined.failed)
        }
        for r in rollouts.indices {
            let automatic = rollouts[r].automatic
            for i in rollouts[r].rows.indices {
                let row = rollouts[r].rows[i]
                let (results, failed) =
                    evaluated[row.query]
                    ?? ([MetricResult](repeating: .noData(reason: "not fetched"), count: window.count), [])
                rollouts[r].rows[i].results = results
                rollouts[r].rows[i].failed = failed
                rollouts[r].rows[i].figures = Backtest.evaluate(
                    check: row.check, environment: row.environment, automatic: automatic, window: window,
                    results: results)
            }
        }
        return fetched.requests
    }
}
