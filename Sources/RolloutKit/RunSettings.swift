import Foundation
import Logging
import RolloutAdapters
import RolloutCore
import RolloutGit

/// What a run is for: a preview (`plan`), or applying (`reconcile`, possibly `--dry-run`).
public enum RunMode: Sendable, Equatable {
    case plan
    case reconcile(dryRun: Bool)

    var applies: Bool { self == .reconcile(dryRun: false) }
}

/// Everything one run needs, resolved from the command line.
public struct RunSettings: Sendable {
    public var repositoryPath: String
    public var ref: String?
    public var rollouts: [String]
    public var now: Date
    public var statePath: String
    public var mode: RunMode
    public var fetchRemote: String?
    /// True when `now` was supplied (`--now`) rather than read from the clock (SPEC §5.12).
    public var clockSupplied: Bool
    /// How many rollouts are reconciled at once (flag and metrics calls).
    public var concurrency: Int
    /// [issue 12] A state the command already opened (PostgreSQL: the session holding the run's lock);
    /// nil: the run opens `statePath` itself.
    public var openedState: (any StateStorage)?
    /// [issue 23] A repository handle the command already opened (`plan --base`: the one whose object database
    /// holds the in-memory merge); nil: the run opens `repositoryPath` itself.
    public var openedRepository: GitRepository?
    /// False when the tip exists only in memory: the history cache is read, never rewritten for it.
    public var writesScanCache = true

    public init(
        repositoryPath: String = ".", ref: String? = nil, rollouts: [String] = [], now: Date = Date(),
        statePath: String = ".rolloutctl/state.sqlite", mode: RunMode = .plan, fetchRemote: String? = nil,
        clockSupplied: Bool = false, concurrency: Int = 8
    ) {
        self.repositoryPath = repositoryPath
        self.ref = ref
        self.rollouts = rollouts
        self.now = now
        self.statePath = statePath
        self.mode = mode
        self.fetchRemote = fetchRemote
        self.clockSupplied = clockSupplied
        self.concurrency = concurrency
    }

    /// The default `.rolloutctl/` of a repository (SPEC §5.10): inside `--repo` (the work tree's top,
    /// or a bare repository's own directory), never relative to the working directory.
    public static func defaultDirectory(repositoryPath: String) -> String {
        let home =
            (try? GitRepository(path: repositoryPath))?.home
            ?? URL(fileURLWithPath: repositoryPath).standardizedFileURL.path
        return URL(fileURLWithPath: home).appendingPathComponent(".rolloutctl").path
    }

    /// The state database when `--state` is not given: `state.sqlite` in `defaultDirectory`.
    public static func defaultStatePath(repositoryPath: String) -> String {
        defaultDirectory(repositoryPath: repositoryPath) + "/state.sqlite"
    }

    /// The history walk's cache (HistoryCache's binary format) lives beside the state database.
    var scanCachePath: String {
        if StateLocation.isPostgres(statePath) {  // [issue 12] no state folder: the repository's .rolloutctl/
            return Self.defaultDirectory(repositoryPath: repositoryPath) + "/history-walk.cache"
        }
        return URL(fileURLWithPath: statePath).deletingLastPathComponent().appendingPathComponent("history-walk.cache")
            .path
    }
}

/// The outside world of a run: flag store, metrics, notifications, logs.
public struct RunPorts: Sendable {
    public var flags: FlagStore
    public var metrics: MetricsProvider?
    public var notifier: Notifier
    public var logger: Logger

    public init(flags: FlagStore, metrics: MetricsProvider?, notifier: Notifier, logger: Logger) {
        self.flags = flags
        self.metrics = metrics
        self.notifier = notifier
        self.logger = logger
    }
}
