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
            let service = ReconcileService(
                command: self, wiring: wiring, every: every, lockWait: lockWait, logger: logger)
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
        let code = await once(wiring: wiring, lockWait: lockWait, logger: logger)
        await wiring.shutdown()
        if code != 0 { throw ExitCode(code) }
    }

    /// One reconcile under the installation's lock (`RunLock`); returns the exit code.
    /// The clock is read once the lock is held, so a wait for the lock never makes `now` stale.
    func once(wiring: Wiring, lockWait: Int, logger: Logger) async -> Int32 {
        let lock: RunLock
        do {
            switch try RunLock.acquire(statePath: options.state, wait: .seconds(lockWait), dryRun: dryRun) {
            case .held(let held): lock = held
            case .busy(let message):
                printError("rolloutctl: \(message)")
                return 0
            }
        } catch {
            printError("rolloutctl: \(error)")
            return 1
        }
        defer { lock.unlock() }
        return await reconcileLocked(ports: lock.guarding(wiring.ports), state: lock.state)
    }

    /// One reconcile once the lock is held; returns the exit code.
    func reconcileLocked(ports: RunPorts, state: (any StateStorage)?) async -> Int32 {
        var settings = RunSettings(
            repositoryPath: options.repository.repo, ref: options.repository.ref,
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
