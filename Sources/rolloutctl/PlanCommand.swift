import ArgumentParser
import Foundation
import Logging
import RolloutAdapters
import RolloutCore
import RolloutKit

/// `--format` of `plan` and `validate` (SPEC §6 [r3]); `--json` is the short form of `--format json`.
enum OutputFormat: String, CaseIterable, ExpressibleByArgument {
    case human, json, markdown, github

    /// The format asked for; `--json` with another `--format` is an error.
    static func resolve(format: OutputFormat?, json: Bool, allowed: [OutputFormat], command: String) throws
        -> OutputFormat
    {
        if json, let format, format != .json {
            throw ValidationError(
                "--json is the short form of --format json; it cannot be given with --format \(format)")
        }
        let chosen = format ?? (json ? .json : .human)
        guard allowed.contains(chosen) else {
            throw ValidationError(
                "\(command) --format takes \(allowed.map(\.rawValue).joined(separator: ", ")), not \(chosen.rawValue)")
        }
        return chosen
    }
}

struct Plan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what the next reconcile would change, and why; change nothing.",
        discussion: "With --base, what merging --ref (a pull request's head) into --base would change (SPEC §6.1).")

    @OptionGroup var options: RunOptions

    @Flag(name: .long, help: "Exit 0 when there are no changes, 2 when changes are pending, 1 on error.")
    var detailedExitcode = false

    @Option(
        name: .long,
        help: "The base branch a pull request merges into; --ref is then its own head commit (merged in memory).")
    var base: String?

    @Option(name: .long, help: "human, json or markdown (markdown: with --base, a pull-request comment).")
    var format: OutputFormat?

    @Option(
        name: .long,
        help: "With --base and --metrics http(s)://…: how far back the changed checks are backtested (default 30d).")
    var backtestSince: String?

    @Option(name: .long, help: "With --base and --metrics http(s)://…: the backtest's step (default 1m).")
    var backtestStep: String?

    func validate() throws {
        let chosen = try OutputFormat.resolve(
            format: format, json: options.json, allowed: [.human, .json, .markdown], command: "plan")
        if base != nil, options.repository.ref == nil {
            throw ValidationError(
                "--base needs --ref: the pull request's own head commit (in GitHub Actions "
                    + "github.event.pull_request.head.sha), never the hosting service's test-merge commit")
        }
        if chosen == .markdown, base == nil {
            throw ValidationError("plan --format markdown is the pull-request comment: give --base and --ref")
        }
        if backtestSince != nil || backtestStep != nil {
            guard base != nil, let metrics = options.metrics,
                metrics.hasPrefix("http://") || metrics.hasPrefix("https://")
            else {
                throw ValidationError(
                    "--backtest-since and --backtest-step backtest a pull request's changed checks: "
                        + "give --base, --ref and --metrics http(s)://…")
            }
        }
        let since = try Self.duration(backtestSince, option: "--backtest-since", example: "30d")
        let step = try Self.duration(backtestStep, option: "--backtest-step", example: "1m")
        if let since, let step, step > since {
            throw ValidationError(
                "--backtest-step \(backtestStep ?? "") is longer than --backtest-since \(backtestSince ?? "")")
        }
    }

    static func duration(_ text: String?, option: String, example: String) throws -> Int? {
        guard let text else { return nil }
        guard let parsed = RolloutDuration(parsing: text), parsed.seconds > 0 else {
            throw ValidationError("\(option) takes a duration such as \(example), got \"\(text)\"")
        }
        return parsed.seconds
    }

    /// `plan --base … --metrics http…` backtests the checks the branch changes (SPEC §6.2) with the run's
    /// HTTP client; without Prometheus (no --metrics, or file:) nothing changes.
    func pullRequestBacktest(wiring: Wiring, logger: Logger) throws -> PullRequestBacktest? {
        guard let spec = options.metrics, spec.hasPrefix("http://") || spec.hasPrefix("https://"),
            let client = wiring.client
        else { return nil }
        let range = PrometheusRangeClient(baseURL: spec, client: client, timeout: .seconds(30), logger: logger)
        return PullRequestBacktest(
            client: PrometheusBacktestClient(range: range),
            since: try Self.duration(backtestSince, option: "--backtest-since", example: "30d")
                ?? BacktestSettings.defaultSince,
            step: try Self.duration(backtestStep, option: "--backtest-step", example: "1m")
                ?? BacktestSettings.defaultStep)
    }

    func run() async throws {
        let logger = makeLogger(level: .warning)
        let chosen = try OutputFormat.resolve(
            format: format, json: options.json, allowed: [.human, .json, .markdown], command: "plan")
        // Options are checked before the HTTP client exists: an HTTPClient dropped without
        // shutdown() traps, which would hide the message behind a crash.
        let now = try options.parsedNow()
        let wiring = try Wiring.forCommand(options: options, logger: logger)
        var settings = RunSettings(
            repositoryPath: options.repository.repo, ref: options.repository.ref,
            rollouts: options.rollouts, now: now,
            statePath: options.state, mode: .plan, clockSupplied: options.now != nil)
        let style = Style.forStandardOutput(noColor: options.noColor)
        if let base {
            let report: PullRequestReport
            do {
                report = try await PullRequestPlan(
                    settings: settings, ports: wiring.ports, base: base, head: options.repository.ref ?? "",
                    backtest: try pullRequestBacktest(wiring: wiring, logger: logger)
                ).run()
            } catch {
                await wiring.shutdown()
                printFailure(error)
                throw ExitCode(1)
            }
            await wiring.shutdown()
            switch chosen {
            case .json: print(report.json())
            case .markdown: print(report.markdown())
            default: print(report.human(style: style))
            }
            if report.errorCount > 0 { throw ExitCode(1) }
            if detailedExitcode && report.changeCount > 0 { throw ExitCode(2) }
            return
        }
        let report: RunReport
        do {
            // Opened here to say when it can only be read (SPEC §6 [r3]); plan never writes it anyway.
            settings.openedState = try StateStorageFactory.openReadOnly(options.state)
            noteReadOnly(settings.openedState)
            report = try await Reconciler(settings: settings, ports: wiring.ports).run()
        } catch {
            await wiring.shutdown()
            printFailure(error)
            throw ExitCode(1)
        }
        await wiring.shutdown()
        print(chosen == .json ? report.json() : report.human(style: style))
        if report.errorCount > 0 { throw ExitCode(1) }
        if detailedExitcode && report.changeCount > 0 { throw ExitCode(2) }
    }
}
