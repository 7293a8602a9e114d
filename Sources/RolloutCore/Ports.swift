import Foundation

// The small protocols the core needs from the outside world. Adapters implement them
// (`RolloutAdapters`); the core never does I/O itself.

/// The state of one flag in one environment, as the flag service reports it.
public struct FlagEnvironmentState: Equatable, Hashable, Sendable, Codable {
    public var enabled: Bool
    public var coverage: Double

    public init(enabled: Bool, coverage: Double) {
        self.enabled = enabled
        self.coverage = coverage
    }

    public static let disabled = FlagEnvironmentState(enabled: false, coverage: 0)

    /// How much traffic sees the flag: its coverage when enabled, else 0 (the one home of that rule).
    public var exposure: Double { enabled ? coverage : 0 }

    /// `enabled 50%`, `disabled`, or `absent` (the flag lacks the environment): the words of blockers,
    /// logs and `history`.
    public static func describe(_ state: FlagEnvironmentState?) -> String {
        guard let state else { return "absent" }
        return state.enabled ? "enabled \(formatNumber(state.coverage))%" : "disabled"
    }
}

/// One flag as read from a flag store: its version (the ETag) and its environments.
public struct FlagSnapshot: Equatable, Sendable {
    public var key: String
    public var version: String
    public var environments: [String: FlagEnvironmentState]
    /// What the store saw that exposes more users than `environments` says and that rolloutctl
    /// does not own (e.g. another enabled Unleash strategy): reported on every plan, never changed.
    public var warnings: [FlagWarning]
    /// What makes an environment one rolloutctl must not drive (e.g. a LaunchDarkly fallthrough it did
    /// not write): an error for every rollout whose plan names that environment, which is then neither
    /// decided nor written. Environments no plan names are the service's business.
    public var errors: [FlagWarning]

    public init(
        key: String, version: String, environments: [String: FlagEnvironmentState],
        warnings: [FlagWarning] = [], errors: [FlagWarning] = []
    ) {
        self.key = key
        self.version = version
        self.environments = environments
        self.warnings = warnings
        self.errors = errors
    }
}

/// A store's remark about one environment of a flag (see `FlagSnapshot.warnings` and `errors`).
public struct FlagWarning: Equatable, Hashable, Sendable {
    public var environment: String
    public var message: String

    public init(environment: String, message: String) {
        self.environment = environment
        self.message = message
    }
}

/// Why a flag changes: the rollout, phase and plan blob behind a patch, for a service that keeps
/// its own audit log (LaunchDarkly's comment). Stores that keep none ignore it.
public struct FlagChangeContext: Equatable, Sendable {
    public var rollout: String
    public var phase: String?
    public var planBlob: String
    /// `advance`, `rollback`, `drift`, … (the change's reason).
    public var reason: String

    public init(rollout: String, phase: String?, planBlob: String, reason: String) {
        self.rollout = rollout
        self.phase = phase
        self.planBlob = planBlob
        self.reason = reason
    }
}

/// The body of a PATCH: one environment, or every environment when `environment` is nil.
public struct FlagPatch: Equatable, Sendable {
    public var environment: String?
    public var enabled: Bool
    public var coverage: Double?
    /// Why (nil when nobody said: tests, the emergency switch-off).
    public var context: FlagChangeContext?

    public init(environment: String?, enabled: Bool, coverage: Double?, context: FlagChangeContext? = nil) {
        self.environment = environment
        self.enabled = enabled
        self.coverage = coverage
        self.context = context
    }
}

/// Why a flag store call failed. The messages never contain a token.
public enum FlagStoreError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The flag does not exist (HTTP 404). The reconciler never creates flags in a remote service.
    case notFound(flag: String)
    /// The version moved since it was read (HTTP 412).
    case versionConflict(flag: String)
    /// The service refused the credentials (HTTP 401/403). Never retried.
    case unauthorized(status: Int)
    /// Retries were exhausted (429, 5xx, connection errors, timeouts).
    case unavailable(String)
    /// The service answered something that is not the flag API.
    case invalidResponse(String)
    /// The flag is set up in a way rolloutctl does not own (e.g. a flagd targeting written by
    /// hand): it is reported, never overwritten. The message says what and where.
    case notManaged(String)

    public var description: String {
        switch self {
        case .notFound(let flag):
            return "flag \(flag) does not exist in the flag service; create it there first"
        case .versionConflict(let flag):
            return "flag \(flag) changed while it was being updated (412)"
        case .unauthorized(let status):
            return "the flag service refused the token (HTTP \(status)); check the variable named by --token-env"
        case .unavailable(let detail):
            return "the flag service is unavailable: \(detail)"
        case .invalidResponse(let detail):
            return "the flag service sent an invalid answer: \(detail)"
        case .notManaged(let detail):
            return detail
        }
    }
}

/// Where flag coverage is read and written.
public protocol FlagStore: Sendable {
    /// Reads one flag. Throws `FlagStoreError.notFound` when it does not exist.
    func read(flag: String) async throws -> FlagSnapshot
    /// Applies a patch if the flag is still at `version`; returns the updated flag.
    /// Throws `FlagStoreError.versionConflict` when the version moved.
    func apply(flag: String, patch: FlagPatch, ifMatch version: String) async throws -> FlagSnapshot
    /// Makes every change applied since the last flush durable; write-through stores do nothing.
    func flush() async throws
    /// True when `apply` only stages a change that `flush()` writes (the embedded file store).
    var stagesWrites: Bool { get }
    /// What this store cannot do for a plan (e.g. a fractional coverage in an Unleash environment),
    /// as errors at the plan's positions; `path` is the plan's path in the repository.
    func planProblems(_ plan: Plan, path: String) -> [Diagnostic]
}

extension FlagStore {
    public func flush() async throws {}
    public var stagesWrites: Bool { false }
    public func planProblems(_ plan: Plan, path: String) -> [Diagnostic] { [] }
}

/// One health query to evaluate, with its placeholders already substituted.
public struct MetricQuery: Equatable, Sendable {
    /// The check's name (the key a `file:` provider looks up).
    public var check: String
    /// The provider-specific query text, `{{flag}}` etc. substituted.
    public var query: String
    /// The reconcile's clock: the instant to evaluate at.
    public var time: Date

    public init(check: String, query: String, time: Date) {
        self.check = check
        self.query = query
        self.time = time
    }
}

/// What a metrics provider answered. Every failure to measure is `.noData` with its reason.
public enum MetricResult: Equatable, Sendable {
    case value(Double)
    case noData(reason: String)
}

/// Where health-check values come from.
public protocol MetricsProvider: Sendable {
    func evaluate(_ query: MetricQuery) async -> MetricResult
}

/// A rollback, hold or override to tell people about: the JSON body of a webhook POST.
public struct NotificationEvent: Sendable {
    /// The event id, also sent as `Idempotency-Key`.
    public var id: String
    public var rollout: String
    public var flag: String
    public var status: String
    public var phase: String?
    public var message: String
    public var revision: String
    public var time: Date
    /// Check name, value (nil for no data), no-data reason.
    public var checks: [(String, Double?, String?)]

    public init(
        id: String, rollout: String, flag: String, status: String, phase: String?, message: String,
        revision: String, time: Date, checks: [(String, Double?, String?)]
    ) {
        self.id = id
        self.rollout = rollout
        self.flag = flag
        self.status = status
        self.phase = phase
        self.message = message
        self.revision = revision
        self.time = time
        self.checks = checks
    }

    /// The webhook body (keys in this order; `phase` and a check's `value`/`noData` left out when nil).
    public var json: JSONOutput {
        .members([
            ("id", .string(id)), ("rollout", .string(rollout)), ("flag", .string(flag)), ("status", .string(status)),
            ("phase", .string(phase)), ("message", .string(message)), ("revision", .string(revision)),
            ("time", .string(RFC3339.format(time))),
            (
                "checks",
                .array(
                    checks.map { name, value, reason in
                        .members([
                            ("name", .string(name)), ("value", value.map { .number($0) }), ("noData", .string(reason)),
                        ])
                    })
            ),
        ])
    }
}

/// Delivers one queued notification (the outbox's message: its event id, sent as `Idempotency-Key`,
/// the `rollback.notify` name it goes to, and the JSON body); answers nil when delivered, or why not.
public protocol Notifier: Sendable {
    func deliver(key: String, target: String, body: String) async -> String?
}
