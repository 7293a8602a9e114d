import Foundation
import RolloutCore

// The records of the state (SPEC §5.10), the same in both homes (`SQLiteStateStore`, `PostgresStateStore`), and the
// one way each home reads and writes an audit row (`AuditRow`) and expires the outbox (`OutboxMessage.expires`).

/// One row of the append-only audit log.
public struct AuditEntry: Equatable, Sendable {
    public enum Kind: String, Sendable {
        /// Written before a flag-API call.
        case intent
        /// The call's outcome, written after it (or by the next run, for an interrupted one).
        case result
        /// A decision without a flag call: a hold, a rollback already in force, a recovered state.
        case event
    }

    public var id: Int64?
    public var time: Date
    public var rollout: String
    public var phase: String?
    public var environment: String?
    public var from: FlagEnvironmentState?
    public var to: FlagEnvironmentState?
    public var reason: String
    public var revision: String?
    public var planBlob: String?
    /// The approvals that allowed the change: `role=approver@commit` items.
    public var approvals: [String]
    public var kind: Kind
    /// For a result: `applied`, `failed`, `conflict`, `interrupted-applied`, `interrupted-not-applied`.
    public var result: String?
    /// For a result: the intent it answers.
    public var intentID: Int64?
    public var detail: String?
    /// True when the run's clock was supplied with `--now` (SPEC §5.12), not read from the system.
    public var clockSupplied = false

    public init(
        time: Date, rollout: String, phase: String?, environment: String?, from: FlagEnvironmentState?,
        to: FlagEnvironmentState?, reason: String, revision: String?, planBlob: String?, approvals: [String],
        kind: Kind, result: String? = nil, intentID: Int64? = nil, detail: String? = nil,
        clockSupplied: Bool = false
    ) {
        self.time = time
        self.rollout = rollout
        self.phase = phase
        self.environment = environment
        self.from = from
        self.to = to
        self.reason = reason
        self.revision = revision
        self.planBlob = planBlob
        self.approvals = approvals
        self.kind = kind
        self.result = result
        self.intentID = intentID
        self.detail = detail
        self.clockSupplied = clockSupplied
    }
}

/// The installation a state database belongs to (SPEC §5.10): the repository, and the policy root.
public struct Installation: Equatable, Sendable {
    /// The root commit of the protected branch's first-parent line.
    public var repositoryRoot: String
    /// The policy in force when the installation was made (§4.3); nil until it is known.
    public var policyRootCommit: String?
    public var policyRootDigest: String?

    public init(repositoryRoot: String, policyRootCommit: String? = nil, policyRootDigest: String? = nil) {
        self.repositoryRoot = repositoryRoot
        self.policyRootCommit = policyRootCommit
        self.policyRootDigest = policyRootDigest
    }
}

/// A notification waiting in the outbox for one `rollback.notify` name.
public struct OutboxMessage: Equatable, Sendable {
    public var id: Int64?
    /// The event id, sent as `Idempotency-Key`: every target and every retry of an event carries it.
    public var key: String
    public var target: String
    public var rollout: String
    /// The JSON body to POST.
    public var body: String
    public var createdAt: Date
    public var attempts: Int

    public init(key: String, target: String, rollout: String, body: String, createdAt: Date, attempts: Int = 0) {
        self.key = key
        self.target = target
        self.rollout = rollout
        self.body = body
        self.createdAt = createdAt
        self.attempts = attempts
    }
}

/// A rollout's stored state, with when it was last written.
public struct StoredRollout: Equatable, Sendable {
    public var name: String
    public var flag: String?
    public var record: RolloutRecord
    public var updatedAt: Date
}

extension OutboxMessage {
    /// How long a notification is retried (SPEC §5.10: 24 hours).
    public static let retention: TimeInterval = 24 * 3600

    /// The outbox rule of both stores: a message not delivered within `maxAge` of being queued is given up.
    public func hasExpired(at now: Date, maxAge: TimeInterval = OutboxMessage.retention) -> Bool {
        now.timeIntervalSince(createdAt) > maxAge
    }
}

/// An audit entry as both stores keep it: the entry's fields as column values (states and approvals as JSON text),
/// read back the same way whichever database held them.
struct AuditRow {
    var id: Int64?
    var time: Double
    var rollout: String
    var phase: String?
    var environment: String?
    var fromState: String?
    var toState: String?
    var reason: String
    var revision: String?
    var planBlob: String?
    var approvals: String
    var kind: String
    var result: String?
    var intentID: Int64?
    var detail: String?
    var clockSupplied: Bool?

    init(
        id: Int64?, time: Double, rollout: String, phase: String?, environment: String?, fromState: String?,
        toState: String?, reason: String, revision: String?, planBlob: String?, approvals: String, kind: String,
        result: String?, intentID: Int64?, detail: String?, clockSupplied: Bool?
    ) {
        self.id = id
        self.time = time
        self.rollout = rollout
        self.phase = phase
        self.environment = environment
        self.fromState = fromState
        self.toState = toState
        self.reason = reason
        self.revision = revision
        self.planBlob = planBlob
        self.approvals = approvals
        self.kind = kind
        self.result = result
        self.intentID = intentID
        self.detail = detail
        self.clockSupplied = clockSupplied
    }

    /// The row that stores `entry`.
    init(_ entry: AuditEntry) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        func text<T: Encodable>(_ value: T?) -> String? {
            value.flatMap { try? encoder.encode($0) }.map { String(decoding: $0, as: UTF8.self) }
        }
        self.init(
            id: entry.id, time: entry.time.timeIntervalSince1970, rollout: entry.rollout, phase: entry.phase,
            environment: entry.environment, fromState: text(entry.from), toState: text(entry.to), reason: entry.reason,
            revision: entry.revision, planBlob: entry.planBlob, approvals: text(entry.approvals) ?? "[]",
            kind: entry.kind.rawValue, result: entry.result, intentID: entry.intentID, detail: entry.detail,
            clockSupplied: entry.clockSupplied)
    }

    /// The entry this row stores. A row is a record of what happened, so a value that cannot be read does not stop
    /// the reading: a state or approval list that is not JSON reads as absent, and a kind this build does not know
    /// reads as `event` — a record that claims no flag call, never an intent that recovery would act on, nor a
    /// result that would close one (the intents a run recovers are those `openIntent` lists, whatever their kind).
    var entry: AuditEntry {
        let decoder = JSONDecoder()
        func state(_ text: String?) -> FlagEnvironmentState? {
            text.flatMap { try? decoder.decode(FlagEnvironmentState.self, from: Data($0.utf8)) }
        }
        var entry = AuditEntry(
            time: Date(timeIntervalSince1970: time), rollout: rollout, phase: phase, environment: environment,
            from: state(fromState), to: state(toState), reason: reason, revision: revision, planBlob: planBlob,
            approvals: (try? decoder.decode([String].self, from: Data(approvals.utf8))) ?? [],
            kind: AuditEntry.Kind(rawValue: kind) ?? .event, result: result, intentID: intentID, detail: detail)
        entry.id = id
        entry.clockSupplied = clockSupplied ?? false
        return entry
    }
}
