import Foundation
import Logging
import RolloutCore
import ServiceLifecycle

/// What one tick's reconcile came to.
public enum TickResult: Sendable {
    /// The run happened (its errors, if any, are in the report).
    case report(RunReport)
    /// Another reconcile holds the lock: nothing done this tick.
    case busy(String)
    /// The run could not happen (the repository or the state could not be read, …).
    case failed(String)

    /// True when the run happened without an error, or was not needed (another holds the lock: exit 0).
    public var succeeded: Bool {
        switch self {
        case .report(let report): return report.errorCount == 0
        case .busy: return true
        case .failed: return false
        }
    }
}

/// The service's clock, injected so that tests never sleep: the wall time of the log lines and
/// the tick's duration, and the wait between ticks.
public struct TickClock: Sendable {
    public var now: @Sendable () -> Date
    public var sleep: @Sendable (Duration) async throws -> Void

    public init(now: @escaping @Sendable () -> Date, sleep: @escaping @Sendable (Duration) async throws -> Void) {
        self.now = now
        self.sleep = sleep
    }

    public static let system = TickClock(now: { Date() }, sleep: { try await Task.sleep(for: $0) })
}

/// The tick loop of `reconcile --interval` and `serve --reconcile-interval` (one type for both):
/// one reconcile per tick, and per tick one summary line
/// (`tick 2026-02-01T10:00:00Z main@3f2a1c9: 2 changed, 5 blocked, 993 unchanged, 0 errors in 840 ms`)
/// plus one line per change, rollback, override and error (SPEC §6 [r3]); the whole plan only
/// with `verbose`. A rollback or an override is logged on the tick it appears, not on every tick
/// it lasts, so an idle tick logs one line. On SIGTERM/SIGINT the tick in flight finishes first.
public struct ReconcileTicker: Service {
    public var every: Duration
    public var verbose: Bool
    public var logger: Logger
    public var clock: TickClock
    /// One reconcile under the lock.
    public var tick: @Sendable () async -> TickResult
    /// Called after each tick with its result, start and duration in seconds (serve's metrics).
    public var after: @Sendable (TickResult, Date, Double) async -> Void

    public init(
        every: Duration, verbose: Bool, logger: Logger, clock: TickClock = .system,
        tick: @escaping @Sendable () async -> TickResult,
        after: @escaping @Sendable (TickResult, Date, Double) async -> Void = { _, _, _ in }
    ) {
        self.every = every
        self.verbose = verbose
        self.logger = logger
        self.clock = clock
        self.tick = tick
        self.after = after
    }

    public func run() async throws {
        try await loop()
    }

    /// The loop; `ticks` bounds it (for tests), else it runs until a graceful shutdown.
    public func loop(ticks: Int? = nil) async throws {
        logger.info("reconciling every \(Self.describe(every)); stop with SIGTERM or Ctrl-C")
        var memory = Memory()
        var count = 0
        while !Task.isShuttingDownGracefully {
            memory = await once(memory)
            count += 1
            if let ticks, count >= ticks { break }
            do {
                try await cancelWhenGracefulShutdown { try await clock.sleep(every) }
            } catch {
                break
            }
        }
        logger.info("reconcile service stopped")
    }

    /// What a tick remembers of the previous one: each rollout's status, so that a rollback or an
    /// override is logged when it appears.
    public struct Memory: Sendable {
        var statuses: [String: RolloutStatus] = [:]
        public init() {}
    }

    /// One tick: the reconcile and its log lines.
    public func once(_ memory: Memory) async -> Memory {
        let started = clock.now()
        let result = await tick()
        let seconds = max(0, clock.now().timeIntervalSince(started))
        let milliseconds = Int((seconds * 1000).rounded())
        var memory = memory
        let time = RFC3339.format(started)
        switch result {
        case .busy(let message):
            logger.info("tick \(time): skipped, \(message)", metadata: ["event": "tick", "skipped": "\(message)"])
        case .failed(let message):
            logger.error(
                "tick \(time): failed in \(milliseconds) ms: \(message)",
                metadata: ["event": "tick", "error": "\(message)", "durationMs": .stringConvertible(milliseconds)])
        case .report(let report):
            log(report, time: time, milliseconds: milliseconds, memory: &memory)
        }
        await after(result, started, seconds)
        return memory
    }

    private func log(_ report: RunReport, time: String, milliseconds: Int, memory: inout Memory) {
        let applied = report.rollouts.filter { $0.applied && !$0.changes.isEmpty }.count
        let changed = report.mode == .reconcile(dryRun: false) ? applied : report.changeCount
        let revision = String(report.revision.prefix(7))
        let ref = report.ref.hasPrefix("refs/heads/") ? String(report.ref.dropFirst("refs/heads/".count)) : report.ref
        let summary =
            "tick \(time) \(ref)@\(revision): \(changed) changed, \(report.blockedCount) blocked, "
            + "\(report.unchangedCount) unchanged, \(report.errorCount) errors in \(milliseconds) ms"
        logger.info(
            "\(summary)",
            metadata: [
                "event": "tick", "ref": "\(ref)", "revision": "\(report.revision)",
                "changed": .stringConvertible(changed), "blocked": .stringConvertible(report.blockedCount),
                "unchanged": .stringConvertible(report.unchangedCount),
                "errors": .stringConvertible(report.errorCount), "durationMs": .stringConvertible(milliseconds),
            ])
        let plain = Style(enabled: false)
        for error in report.runErrors {
            logger.error("\(error.description)", metadata: ["event": "error", "error": "\(error.description)"])
        }
        for error in report.policyErrors {
            logger.error("policy: \(error.description)", metadata: ["event": "error", "error": "\(error.description)"])
        }
        var statuses: [String: RolloutStatus] = [:]
        for rollout in report.rollouts {
            statuses[rollout.name] = rollout.status
            let flag = rollout.flag ?? rollout.name
            for change in rollout.changes {
                let line =
                    "\(rollout.name): " + change.human(flag: flag, phase: rollout.nextPhase, style: plain)
                    + (rollout.applied ? "" : " (not applied)")
                logger.notice(
                    "\(line)",
                    metadata: [
                        "event": "change", "rollout": "\(rollout.name)", "flag": "\(flag)",
                        "environment": "\(change.environment)", "reason": "\(change.reason.rawValue)",
                        "from": "\(FlagEnvironmentState.describe(change.from))",
                        "to": "\(FlagEnvironmentState.describe(change.to))",
                        "applied": .stringConvertible(rollout.applied),
                    ])
            }
            let before = memory.statuses[rollout.name]
            if rollout.status == .rolledBack || rollout.status == .overridden, before != rollout.status {
                let event = rollout.status == .rolledBack ? "rollback" : "override"
                let why = rollout.blockers.first?.detail ?? rollout.status.rawValue
                logger.warning(
                    "\(rollout.name): \(rollout.status.rawValue): \(why)",
                    metadata: ["event": "\(event)", "rollout": "\(rollout.name)", "flag": "\(flag)"])
            }
            for error in rollout.errors {
                logger.error(
                    "\(rollout.name): \(error.description)",
                    metadata: ["event": "error", "rollout": "\(rollout.name)", "error": "\(error.description)"])
            }
        }
        memory.statuses = statuses
        if verbose {
            for line in report.human(style: plain).split(separator: "\n", omittingEmptySubsequences: true) {
                logger.info("\(line)", metadata: ["event": "plan"])
            }
        }
    }

    static func describe(_ duration: Duration) -> String {
        "\(RolloutDuration(seconds: Int(duration.components.seconds)))"
    }
}
