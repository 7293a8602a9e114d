import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import RolloutAdapters
import RolloutCore
import RolloutKit
import ServiceLifecycle

/// `--state`: a SQLite path, or a PostgreSQL database (SPEC §10).
let stateHelp = ArgumentHelp("The state: a SQLite path (default: <repo>/.rolloutctl/state.sqlite) or "
    + "postgres://USER@HOST:PORT/DB (the password from PGPASSWORD).", valueName: "PATH|URL")

/// Options shared by `plan` and `reconcile`.
struct RunOptions: ParsableArguments {
    @OptionGroup var repository: RepositoryOptions

    @Option(name: .customLong("rollout"), help: "Only this rollout (repeatable).")
    var rollouts: [String] = []

    @Flag(name: .long, help: "Print one JSON document.")
    var json = false

    @Option(name: .long, help: "The time to decide at, RFC 3339 (default: now).")
    var now: String?

    @Option(name: .long, help: ArgumentHelp(
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

    @Option(name: .long, help: "Maps a rollback.notify name to a webhook: NAME=URL (repeatable).")
    var notifyURL: [String] = []

    @Flag(name: .long, help: "No colour (NO_COLOR is honoured too).")
    var noColor = false

    /// `--state`, or `.rolloutctl/state.sqlite` inside --repo (SPEC §5.10).
    var state: String {
        stateOption ?? RunSettings.defaultDirectory(repositoryPath: repository.repo) + "/state.sqlite"
    }

    /// The store when `--flags` names none: the embedded `.rolloutctl/flags.json` inside --repo.
    var defaultFlags: String {
        "file:" + RunSettings.defaultDirectory(repositoryPath: repository.repo) + "/flags.json"
    }

    func parsedNow() throws -> Date {
        guard let now else { return Date() }
        guard let date = RFC3339.parse(now) else {
            throw ValidationError("--now takes an RFC 3339 time such as 2026-11-28T09:00:00Z, got \"\(now)\"")
        }
        return date
    }
}

/// The adapters a run talks to, built from the options; `shutdown()` closes the HTTP client.
struct Wiring {
    var ports: RunPorts
    var client: HTTPClient?

    init(options: RunOptions, logger: Logger) throws {
        // Everything that can be refused is checked before the HTTP client is made: a client
        // dropped without shutdown() traps.
        let isHTTP = { (spec: String) in spec.hasPrefix("http://") || spec.hasPrefix("https://") }
        let flagSpecifications: [FlagStoreFactory.Specification]
        do {
            flagSpecifications = try FlagStoreFactory.parse(options.flags, defaultURL: options.defaultFlags)
        } catch {
            throw ValidationError("\(error)")
        }
        if let spec = options.metrics, !spec.hasPrefix("file:"), !isHTTP(spec) {
            throw ValidationError("--metrics takes http(s)://… or file:PATH, got \"\(spec)\"")
        }
        let urls = try WebhookNotifier.urls(arguments: options.notifyURL,
                                             environment: ProcessInfo.processInfo.environment)
        let needsHTTP = FlagStoreFactory.needsHTTP(flagSpecifications) || (options.metrics?.hasPrefix("http") ?? false)
            || !options.notifyURL.isEmpty
            || ProcessInfo.processInfo.environment.keys.contains { $0.hasPrefix("ROLLOUTCTL_NOTIFY_URL_") }
        let client = needsHTTP ? RolloutHTTPClient.make() : nil
        let token = ProcessInfo.processInfo.environment[options.tokenEnv]
        if token == nil, FlagStoreFactory.usesToken(flagSpecifications) {
            logger.warning(
                "\(options.tokenEnv) is not set: the flag service will refuse changes (set it, or pass --token-env)")
        }
        let flags = try FlagStoreFactory.make(flagSpecifications, token: token, client: client, logger: logger)
        var metrics: MetricsProvider?
        if let spec = options.metrics {
            if spec.hasPrefix("file:") {
                metrics = FileMetricsProvider(path: String(spec.dropFirst(5)))
            } else if spec.hasPrefix("http://") || spec.hasPrefix("https://") {
                metrics = PrometheusMetricsProvider(baseURL: spec, client: client!, logger: logger)
            } else {
                throw ValidationError("--metrics takes http(s)://… or file:PATH, got \"\(spec)\"")
            }
        }
        ports = RunPorts(flags: flags, metrics: metrics,
                         notifier: WebhookNotifier(urls: urls, client: client, logger: logger), logger: logger)
        self.client = client
    }

    /// The wiring of a command: a refused option stays a usage error; any other failure is printed
    /// and exits 1.
    static func forCommand(options: RunOptions, logger: Logger) throws -> Wiring {
        do {
            return try Wiring(options: options, logger: logger)
        } catch let error as ValidationError {
            throw error
        } catch {
            printError("rolloutctl: \(error)")
            throw ExitCode(1)
        }
    }

    func shutdown() async {
        try? await client?.shutdown()
    }
}

func makeLogger(level: Logger.Level) -> Logger {
    var logger = Logger(label: "rolloutctl") { StreamLogHandler.standardError(label: $0) }
    if let text = ProcessInfo.processInfo.environment["LOG_LEVEL"], let parsed = Logger.Level(rawValue: text) {
        logger.logLevel = parsed
    } else {
        logger.logLevel = level
    }
    return logger
}

struct Plan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what the next reconcile would change, and why; change nothing.")

    @OptionGroup var options: RunOptions

    @Flag(name: .long, help: "Exit 0 when there are no changes, 2 when changes are pending, 1 on error.")
    var detailedExitcode = false

    func run() async throws {
        let logger = makeLogger(level: .warning)
        // Options are checked before the HTTP client exists: an HTTPClient dropped without
        // shutdown() traps, which would hide the message behind a crash.
        let now = try options.parsedNow()
        let report: RunReport
        do {
            let wiring = try Wiring(options: options, logger: logger)
            let settings = RunSettings(repositoryPath: options.repository.repo, ref: options.repository.ref,
                                       rollouts: options.rollouts, now: now,
                                       statePath: options.state, mode: .plan, clockSupplied: options.now != nil)
            do {
                report = try await Reconciler(settings: settings, ports: wiring.ports).run()
            } catch {
                await wiring.shutdown()
                throw error
            }
            await wiring.shutdown()
        } catch let error as ValidationError {
            throw error
        } catch {
            printError("rolloutctl: \(error)")
            throw ExitCode(1)
        }
        print(options.json ? report.json() : report.human(style: .forStandardOutput(noColor: options.noColor)))
        if report.errorCount > 0 { throw ExitCode(1) }
        if detailedExitcode && report.changeCount > 0 { throw ExitCode(2) }
    }
}

struct Reconcile: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply one safe step per rollout (once, for cron), or every --interval as a service.")

    @OptionGroup var options: RunOptions

    @Flag(name: .long, help: "Decide and print, but apply nothing and write no state.")
    var dryRun = false

    @Option(name: .long, help: "Run as a service, reconciling every DURATION (e.g. 1m) until SIGTERM/SIGINT.")
    var interval: String?

    @Option(name: .long, help: "Fetch the protected branch from this remote (name, URL or path) before reading.")
    var fetch: String?

    @Option(name: .long, help: "How long to wait for another reconcile's lock before giving up (exit 0).")
    var lockTimeout: String = "0s"

    func run() async throws {
        // One-shot runs print their changes; a service also logs each applied change (LOG_LEVEL overrides).
        let logger = makeLogger(level: interval == nil ? .notice : .info)
        guard let lockWait = parseDuration(lockTimeout) else {
            throw ValidationError("--lock-timeout takes a duration such as 0s, 30s or 5m")
        }
        // Every option is checked before the HTTP client exists: an HTTPClient dropped
        // without shutdown() traps, which would hide the message behind a crash.
        _ = try options.parsedNow()  // a bad --now is reported before anything starts
        var every: Int?
        if let interval {
            guard let seconds = parseDuration(interval), seconds > 0 else {
                throw ValidationError("--interval takes a duration such as 30s or 1m")
            }
            if options.now != nil { throw ValidationError("--now cannot be combined with --interval") }
            every = seconds
        }
        let wiring = try Wiring.forCommand(options: options, logger: logger)
        if let every {
            let service = ReconcileService(command: self, wiring: wiring, every: every, lockWait: lockWait, logger: logger)
            let group = ServiceGroup(configuration: .init(
                services: [.init(service: service)],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            do {
                try await group.run()
            } catch {
                logger.error("reconcile service stopped: \(error)")
            }
            await wiring.shutdown()
            return
        }
        let code = await once(wiring: wiring, lockWait: lockWait, logger: logger)
        await wiring.shutdown()
        if code != 0 { throw ExitCode(code) }
    }

    /// One reconcile under the lock; returns the exit code.
    /// The clock is read once the lock is held, so a wait for the lock never makes `now` stale.
    func once(wiring: Wiring, lockWait: Int, logger: Logger) async -> Int32 {
        if StateLocation.isPostgres(options.state) {
            return await oncePostgres(wiring: wiring, lockWait: lockWait)
        }
        // `reconcile` never creates the state (SPEC §5.10); `--dry-run` writes nothing and needs none.
        guard dryRun || FileManager.default.fileExists(atPath: options.state) else {
            printError("rolloutctl: \(StateStoreError.missing(path: options.state))")
            return 1
        }
        let lockPath = options.state + ".lock"
        let lock: FileLock
        do {
            guard let acquired = try FileLock.acquire(path: lockPath, timeout: .seconds(lockWait)) else {
                printError("rolloutctl: another reconcile holds the lock \(lockPath); nothing done this time "
                    + "(wait with --lock-timeout)")
                return 0
            }
            lock = acquired
        } catch {
            printError("rolloutctl: cannot take the lock \(lockPath): \(error)")
            return 1
        }
        defer { lock.release() }
        return await reconcileLocked(wiring: wiring, ports: wiring.ports, state: nil)
    }

    /// [issue 12] A PostgreSQL state (SPEC §10): the run holds the installation's session advisory lock on the
    /// session it writes with, and checks that session before every flag call.
    func oncePostgres(wiring: Wiring, lockWait: Int) async -> Int32 {
        if dryRun {
            return await reconcileLocked(wiring: wiring, ports: wiring.ports, state: nil)
        }
        let store: PostgresStateStore
        do {
            guard case .postgres(let location) = try StateLocation(parsing: options.state) else { return 1 }
            store = try PostgresStateStore.open(location)
            guard try store.lockInstallation(timeout: .seconds(lockWait)) else {
                printError("rolloutctl: another reconcile holds the lock of \(store.path); nothing done this time "
                    + "(wait with --lock-timeout)")
                store.close()
                return 0
            }
        } catch {
            printError("rolloutctl: \(error)")
            return 1
        }
        defer { store.close() }
        var ports = wiring.ports
        ports.flags = SessionGuardedFlagStore(inner: ports.flags, lock: store)
        return await reconcileLocked(wiring: wiring, ports: ports, state: store)
    }

    /// One reconcile once the lock is held; returns the exit code.
    func reconcileLocked(wiring: Wiring, ports: RunPorts, state: (any StateStorage)?) async -> Int32 {
        var settings = RunSettings(repositoryPath: options.repository.repo, ref: options.repository.ref,
                                   rollouts: options.rollouts, now: (try? options.parsedNow()) ?? Date(),
                                   statePath: options.state,
                                   mode: .reconcile(dryRun: dryRun), fetchRemote: fetch,
                                   clockSupplied: options.now != nil)
        settings.openedState = state
        do {
            let report = try await Reconciler(settings: settings, ports: ports).run()
            print(options.json ? report.json() : report.human(style: .forStandardOutput(noColor: options.noColor)))
            fflush(nil)  // flush every stream: a service's log readers see each tick as it happens
            return report.errorCount > 0 ? 1 : 0
        } catch {
            printError("rolloutctl: \(error)")
            return 1
        }
    }
}

/// `reconcile --interval`: one step per tick; on SIGTERM/SIGINT the step in flight finishes first.
struct ReconcileService: Service {
    let command: Reconcile
    let wiring: Wiring
    let every: Int
    let lockWait: Int
    let logger: Logger

    func run() async throws {
        logger.info("reconciling every \(RolloutDuration(seconds: every)); stop with SIGTERM or Ctrl-C")
        while !Task.isShuttingDownGracefully {
            _ = await command.once(wiring: wiring, lockWait: lockWait, logger: logger)
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(every)) }
            } catch {
                break
            }
        }
        logger.info("reconcile service stopped")
    }
}

func parseDuration(_ text: String) -> Int? {
    if text == "0" { return 0 }
    return RolloutDuration(parsing: text)?.seconds
}

/// Options of the commands that read the state database.
struct StateViewOptions: ParsableArguments {
    @Option(name: .long, help: "Only this rollout.")
    var rollout: String?

    @Flag(name: .long, help: "Print one JSON document.")
    var json = false

    @Option(name: .customLong("state"), help: stateHelp)
    var stateOption: String?

    @Option(name: .long, help: "The git repository whose .rolloutctl/ holds the state.")
    var repo: String = "."

    @Flag(name: .long, help: "No colour (NO_COLOR is honoured too).")
    var noColor = false

    var style: Style { .forStandardOutput(noColor: noColor) }

    var state: String { stateOption ?? RunSettings.defaultDirectory(repositoryPath: repo) + "/state.sqlite" }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show each rollout's recorded phase and status.")

    @OptionGroup var options: StateViewOptions

    func run() throws {
        try withStateStore(options.state) { store in
            try StateViews.status(store: store, rollout: options.rollout, json: options.json, style: options.style)
        }
    }
}

struct History: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the audit log: every intent, result and event.")

    @OptionGroup var options: StateViewOptions

    @Option(name: .long, help: "Show at most N entries (newest).")
    var limit: Int = 50

    func run() throws {
        try withStateStore(options.state) { store in
            try StateViews.history(store: store, rollout: options.rollout, limit: limit, json: options.json,
                                   style: options.style)
        }
    }
}

/// Opens an existing state database read-only and prints what `render` makes of it; exit 1 with a hint otherwise.
func withStateStore(_ path: String, _ render: (any StateStorage) throws -> String) throws {
    do {
        guard let store = try StateStores.openReadOnly(path) else {
            printError("rolloutctl: no state database at \(path); run `rolloutctl init` for a new installation "
                + "(or pass --state)")
            throw ExitCode(1)
        }
        print(try render(store))
    } catch let error as ExitCode {
        throw error
    } catch {
        printError("rolloutctl: \(error)")
        throw ExitCode(1)
    }
}

struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create the state of a new installation (reconcile never creates one).")

    @OptionGroup var repository: RepositoryOptions

    @Option(name: .customLong("state"), help: stateHelp)
    var stateOption: String?

    @Option(name: .customLong("flags"), help: ArgumentHelp(
        "Flag store, as plan's --flags (repeatable ENV=URL; default: file:<repo>/.rolloutctl/flags.json).",
        valueName: "[ENV=]URL"))
    var flagsOption: [String] = []

    @Option(name: .long, help: "The environment variable holding the flag API token.")
    var tokenEnv: String = "ADMIN_TOKEN"

    @Flag(name: .long, help: "Adopt an installation whose flags are already exposed (each rollout starts at the phase its flag matches, or overridden).")
    var adopt = false

    @Option(name: .long, help: "The time adopted phases are entered at, RFC 3339 (for drills and tests).")
    var now: String?

    @Option(name: .long, help: ArgumentHelp(
        "Make this first-parent commit's policy the root of trust (with --adopt on an existing installation).",
        valueName: "COMMIT"))
    var policyRoot: String?

    func run() async throws {
        let logger = makeLogger(level: .notice)
        var arguments: [String] = ["--repo", repository.repo, "--token-env", tokenEnv]
        if let ref = repository.ref { arguments += ["--ref", ref] }
        if let stateOption { arguments += ["--state", stateOption] }
        for flag in flagsOption { arguments += ["--flags", flag] }
        if let now { arguments += ["--now", now] }
        var options = try RunOptions.parse(arguments)
        options.notifyURL = []
        let time = try options.parsedNow()
        let wiring = try Wiring(options: options, logger: logger)
        do {
            let report = try await Initializer.run(
                Initializer.Settings(repositoryPath: repository.repo, ref: repository.ref, statePath: options.state,
                                     adopt: adopt, now: time, policyRoot: policyRoot),
                flags: wiring.ports.flags, logger: logger)
            await wiring.shutdown()
            print(report.human())
        } catch {
            await wiring.shutdown()
            printError("rolloutctl: \(error)")
            throw ExitCode(1)
        }
    }
}
