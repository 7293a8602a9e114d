import ArgumentParser
import Foundation
import Logging
import RolloutAdapters
import RolloutCore
import RolloutKit
import ServiceLifecycle

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

    @Flag(name: .long, help: "With --interval: log the whole plan on every tick, not only the summary and changes.")
    var verbose = false

    @Option(name: .long, help: "With --interval: text (one line per event) or json (one object per line).")
    var logFormat: String?

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
        let format = try ServiceLogOptions.format(
            logFormat, verbose: verbose, service: every != nil, json: options.json)
        if let every {
            // A service logs (SPEC §6 [r3]): the adapters' own lines only from notice up, in the same format.
            let wiring = try Wiring.forCommand(options: options, logger: serviceLogger(format, level: .notice))
            let command = self
            let service = ReconcileTicker(
                every: .seconds(every), verbose: verbose, logger: serviceLogger(format, level: .info),
                tick: { await command.tick(wiring: wiring, lockWait: lockWait) })
            let group = ServiceGroup(
                configuration: .init(
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
        let wiring = try Wiring.forCommand(options: options, logger: logger)
        let code = await once(wiring: wiring, lockWait: lockWait, logger: logger)
        await wiring.shutdown()
        if code != 0 { throw ExitCode(code) }
    }

    /// One reconcile under the installation's lock (`RunLock`), printed as a report; returns the exit code.
    func once(wiring: Wiring, lockWait: Int, logger: Logger) async -> Int32 {
        switch await tick(wiring: wiring, lockWait: lockWait) {
        case .busy(let message):
            printFailure(message)
            return 0
        case .failed(let message):
            printFailure(message)
            return 1
        case .report(let report):
            print(options.json ? report.json() : report.human(style: .forStandardOutput(noColor: options.noColor)))
            fflush(nil)
            return report.errorCount > 0 ? 1 : 0
        }
    }

    /// One reconcile under the installation's lock (`RunLock`), the unit of `once` and of a service's tick.
    /// The clock is read once the lock is held, so a wait for the lock never makes `now` stale.
    func tick(wiring: Wiring, lockWait: Int) async -> TickResult {
        let lock: RunLock
        do {
            switch try RunLock.acquire(statePath: options.state, wait: .seconds(lockWait), dryRun: dryRun) {
            case .held(let held): lock = held
            case .busy(let message): return .busy(message)
            }
        } catch {
            return .failed("\(error)")
        }
        defer { lock.unlock() }
        var settings = RunSettings(
            repositoryPath: options.repository.repo, ref: options.repository.ref,
            rollouts: options.rollouts, now: (try? options.parsedNow()) ?? Date(),
            statePath: options.state,
            mode: .reconcile(dryRun: dryRun), fetchRemote: fetch,
            clockSupplied: options.now != nil)
        settings.openedState = lock.state
        do {
            return .report(try await Reconciler(settings: settings, ports: lock.guarding(wiring.ports)).run())
        } catch {
            return .failed("\(error)")
        }
    }
}

/// `--log-format` and `--verbose`: checked the same way for `reconcile --interval` and `serve`.
enum ServiceLogOptions {
    static func format(
        _ text: String?, verbose: Bool, service: Bool, json: Bool, option: String = "--interval"
    ) throws -> ServiceLogFormat {
        if !service, text != nil || verbose {
            throw ValidationError("--log-format and --verbose go with \(option): without it there is no service to log")
        }
        if service, json {
            throw ValidationError(
                "--interval writes logs, not a report: it refuses --json (use --log-format json)")
        }
        guard let text else { return .text }
        guard let format = ServiceLogFormat(rawValue: text) else {
            throw ValidationError("--log-format takes text or json, got \"\(text)\"")
        }
        return format
    }
}

/// A logger that writes the service's lines on standard output in `format` (LOG_LEVEL overrides `level`).
func serviceLogger(_ format: ServiceLogFormat, level: Logger.Level) -> Logger {
    var logger = Logger(label: "rolloutctl") { _ in ServiceLogHandler(format: format) }
    if let text = ProcessInfo.processInfo.environment["LOG_LEVEL"], let parsed = Logger.Level(rawValue: text) {
        logger.logLevel = parsed
    } else {
        logger.logLevel = level
    }
    return logger
}
