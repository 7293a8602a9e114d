import ArgumentParser
import Foundation
import RolloutAdapters
import RolloutCore
import RolloutKit

/// Options shared by `plan` and `reconcile`.
struct RunOptions: ParsableArguments {
    @OptionGroup var repository: RepositoryOptions

    @Option(name: .customLong("rollout"), help: "Only this rollout (repeatable).")
    var rollouts: [String] = []

    @Flag(name: .long, help: "Print one JSON document.")
    var json = false

    @Option(name: .long, help: "The time to decide at, RFC 3339 (default: now).")
    var now: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Flag store: file:PATH, http(s)://…, flagd:PATH or unleash+http(s)://HOST/api?project=P; "
                + "ENV=URL (repeatable) for one environment, a plain URL for the rest.",
            valueName: "[ENV=]URL"))
    var flags: [String] = []

    @Option(name: .long, help: "Health metrics: http(s)://… (Prometheus) or file:PATH (check name → number).")
    var metrics: String?

    @Option(name: .customLong("state"), help: stateHelp)
    var stateOption: String?

    @Option(name: .long, help: "The environment variable holding the flag API token.")
    var tokenEnv: String = "ADMIN_TOKEN"

    @Option(
        name: .long,
        help: "Calls in flight to one flag service at once; a 429 from it pauses them all.")
    var flagCalls: Int = ServiceGate.defaultLimit

    @Option(name: .long, help: "Maps a rollback.notify name to a webhook: NAME=URL (repeatable).")
    var notifyURL: [String] = []

    @Flag(name: .long, help: "No colour (NO_COLOR is honoured too).")
    var noColor = false

    /// `--state`, or `.rolloutctl/state.sqlite` inside --repo (SPEC §5.10).
    var state: String { stateOption ?? RunSettings.defaultStatePath(repositoryPath: repository.repo) }

    /// The store when `--flags` names none: the embedded `.rolloutctl/flags.json` inside --repo.
    var defaultFlags: String {
        "file:" + RunSettings.defaultDirectory(repositoryPath: repository.repo) + "/flags.json"
    }

    /// `--metrics`, read once (nil: no health source).
    func metricsSource() throws -> MetricsSource? {
        try metrics.map(MetricsSource.init(parsing:))
    }

    func parsedNow() throws -> Date {
        guard let now else { return Date() }
        guard let date = RFC3339.parse(now) else {
            throw ValidationError("--now takes an RFC 3339 time such as 2026-11-28T09:00:00Z, got \"\(now)\"")
        }
        return date
    }
}

/// Where `--metrics` reads health values: Prometheus at an http(s) address, or a file of check values.
enum MetricsSource: Equatable {
    case prometheus(baseURL: String)
    case file(path: String)

    init(parsing spec: String) throws {
        if spec.hasPrefix("file:") {
            self = .file(path: String(spec.dropFirst(5)))
        } else if spec.hasPrefix("http://") || spec.hasPrefix("https://") {
            self = .prometheus(baseURL: spec)
        } else {
            throw ValidationError("--metrics takes http(s)://… or file:PATH, got \"\(spec)\"")
        }
    }

    /// Prometheus' address, for the range queries of `serve`'s panels and backtests; nil for a file.
    var prometheusURL: String? {
        if case .prometheus(let baseURL) = self { return baseURL }
        return nil
    }
}
