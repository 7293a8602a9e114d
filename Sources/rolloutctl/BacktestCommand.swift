import ArgumentParser
import Foundation
import RolloutAdapters
import RolloutCore
import RolloutKit

#if canImport(Glibc)
    import Glibc
#endif

/// `rolloutctl backtest` (SPEC §6.2): how would these health checks have behaved over the past window?
struct BacktestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backtest",
        abstract: "Replay every health check of every plan over the past window with Prometheus' query_range.")

    @OptionGroup var repository: RepositoryOptions

    @Option(name: .customLong("rollout"), help: "Only this rollout (repeatable).")
    var rollouts: [String] = []

    @Option(name: .long, help: "Prometheus: http(s)://HOST:PORT.")
    var metrics: String

    @Option(name: .long, help: "How far back: a duration such as 30d, 36h.")
    var since: String = "30d"

    @Option(name: .long, help: "Seconds between evaluations: a duration such as 1m (default 1m).")
    var step: String?

    @Option(name: .long, help: "human, json or markdown.")
    var format: String?

    @Flag(name: .long, help: "Print one JSON document (the short form of --format json).")
    var json = false

    @Flag(name: .long, help: "Exit 2 when a rollback check would have fired, 0 when none would, 1 on error.")
    var detailedExitcode = false

    @Option(name: .long, help: "The end of the window, RFC 3339 (default: now).")
    var now: String?

    @Option(name: .customLong("state"), help: stateHelp)
    var stateOption: String?

    @Flag(name: .long, help: "No colour (NO_COLOR is honoured too).")
    var noColor = false

    @Option(name: .long, help: ArgumentHelp("Points per query_range request (at most 11000).", visibility: .hidden))
    var pointsPerRequest: Int = Backtest.maxPointsPerRequest

    @Option(name: .long, help: ArgumentHelp("Requests in flight at once.", visibility: .hidden))
    var concurrency: Int = 4

    enum Format: String { case human, json, markdown }

    func validate() throws {
        if json, let format, format != "json" {
            throw ValidationError("--json is the short form of --format json: it cannot go with --format \(format)")
        }
        if let format, Format(rawValue: format) == nil {
            throw ValidationError("--format takes human, json or markdown, got \"\(format)\"")
        }
        guard metrics.hasPrefix("http://") || metrics.hasPrefix("https://") else {
            throw ValidationError("--metrics takes Prometheus' address, http(s)://…, got \"\(metrics)\"")
        }
        guard let since = RolloutDuration(parsing: since), since.seconds > 0 else {
            throw ValidationError("--since takes a duration such as 30d or 36h, got \"\(since)\"")
        }
        if let step {
            guard let parsed = RolloutDuration(parsing: step), parsed.seconds > 0 else {
                throw ValidationError("--step takes a duration such as 1m or 30s, got \"\(step)\"")
            }
            if parsed.seconds > since.seconds {
                throw ValidationError("--step \(step) is longer than --since \(self.since)")
            }
        }
        if let now, RFC3339.parse(now) == nil {
            throw ValidationError("--now takes an RFC 3339 time such as 2026-11-28T09:00:00Z, got \"\(now)\"")
        }
        if pointsPerRequest < 1 || pointsPerRequest > Backtest.maxPointsPerRequest {
            throw ValidationError("--points-per-request takes 1 … \(Backtest.maxPointsPerRequest)")
        }
        if concurrency < 1 || concurrency > 64 { throw ValidationError("--concurrency takes 1 … 64") }
    }

    func run() async throws {
        let format = json ? Format.json : (format.flatMap(Format.init(rawValue:)) ?? .human)
        let settings = BacktestSettings(
            repositoryPath: repository.repo, ref: repository.ref, rollouts: rollouts,
            now: now.flatMap(RFC3339.parse) ?? Date(),
            since: RolloutDuration(parsing: since)?.seconds ?? BacktestSettings.defaultSince,
            step: step.flatMap { RolloutDuration(parsing: $0)?.seconds } ?? BacktestSettings.defaultStep,
            statePath: stateOption ?? RunSettings.defaultStatePath(repositoryPath: repository.repo))
        let logger = makeLogger(level: .warning)
        let client = RolloutHTTPClient.make()
        let backtest = PrometheusBacktestClient(
            range: PrometheusRangeClient(baseURL: metrics, client: client, timeout: .seconds(30), logger: logger),
            concurrency: concurrency, pointsPerRequest: pointsPerRequest)
        let showProgress = isatty(STDERR_FILENO) == 1
        var progress: (@Sendable (Int, Int) -> Void)?
        if showProgress {
            progress = { done, total in
                FileHandle.standardError.write(Data("\rbacktest: \(done)/\(total) query_range requests".utf8))
            }
        }
        let report: BacktestReport
        do {
            report = try await BacktestRunner.run(settings: settings, client: backtest, progress: progress)
        } catch {
            try? await client.shutdown()
            if showProgress { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
            printFailure(error)
            throw ExitCode(1)
        }
        try? await client.shutdown()
        if showProgress { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        switch format {
        case .human: print(report.human(style: .forStandardOutput(noColor: noColor)))
        case .json: print(report.json())
        case .markdown: print(report.markdown())
        }
        if report.errorCount > 0 { throw ExitCode(1) }
        if detailedExitcode && report.wouldRollBack { throw ExitCode(2) }
    }
}
