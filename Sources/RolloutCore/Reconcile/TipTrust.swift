import Foundation

/// SPEC §4.0 rules 1 and 5 [r3]: whether a reconcile may trust the tip it read. The first-parent line only
/// grows: a tip behind the one the state recorded raises nothing; a tip whose line does not pass through it
/// (a force-push, the branch moved to another line) or a policy in force naming another branch is not
/// trusted until an operator runs `rolloutctl init --adopt`. Untrusted, the run guards every recorded
/// rollout (§5.13) and raises nothing.
public enum TipTrust: Equatable, Sendable {
    case trusted
    /// An ancestor of the recorded tip on its first-parent line (a replica one sync late): exit 0.
    case behind(recorded: String, tip: String)
    /// The recorded tip is not on the tip's first-parent line: exit 1, notify once per new tip.
    case rewritten(recorded: String, tip: String)
    /// The policy in force names another branch than the one the state recorded.
    case otherBranch(recorded: String, inForce: String)
    /// `--fetch` failed: the tip is unknown (SPEC §5.13).
    case fetchFailed(String)
    /// The policy root of trust is not the one `init` recorded (SPEC §4.3).
    case policyRootChanged(String)

    /// How the tip's first-parent line relates to the recorded tip, as git reads it.
    public enum Relation: Equatable, Sendable {
        /// The recorded tip is on the tip's first-parent line (the same commit, or the branch grew).
        case grows
        /// The tip is on the recorded tip's first-parent line, before it.
        case behind
        /// Neither.
        case diverged
    }

    public static func judge(
        recordedTip: String?, tip: String, relation: Relation?, recordedBranch: String?, branchInForce: String?
    ) -> TipTrust {
        if let recordedBranch, let branchInForce, recordedBranch != branchInForce {
            return .otherBranch(recorded: recordedBranch, inForce: branchInForce)
        }
        guard let recordedTip, let relation else { return .trusted }
        switch relation {
        case .grows: return .trusted
        case .behind: return .behind(recorded: recordedTip, tip: tip)
        case .diverged: return .rewritten(recorded: recordedTip, tip: tip)
        }
    }

    /// The `state` blocker every guarded rollout gets, nil when trusted.
    public var blocker: String? {
        switch self {
        case .trusted:
            return nil
        case .behind(let recorded, let tip):
            return "the tip \(tip.prefix(12)) is behind \(recorded.prefix(12)), which an earlier run read "
                + "(a clone one sync late?): nothing is raised until it catches up"
        case .rewritten(let recorded, let tip):
            return "history rewritten: \(recorded.prefix(12)) is not on the first-parent line of \(tip.prefix(12)); "
                + "nothing is raised until an operator accepts the new line with `rolloutctl init --adopt`"
        case .otherBranch(let recorded, let inForce):
            return "the policy in force names branch \(inForce), but the state reads \(recorded); nothing is raised "
                + "until an operator runs `rolloutctl init --adopt`"
        case .fetchFailed(let message):
            return "\(message); the tip is not known, so nothing is raised in this run"
        case .policyRootChanged(let message):
            return "the policy root changed: \(message); nothing is raised until an operator acts"
        }
    }

    /// Whether the run fails (exit 1): everything but a late clone.
    public var isError: Bool {
        switch self {
        case .trusted, .behind: return false
        case .rewritten, .otherBranch, .fetchFailed, .policyRootChanged: return true
        }
    }

    /// Whether this run notifies the rewrite: once per new tip (`notified` is the last tip notified).
    public func notifies(notified: String?) -> Bool {
        guard case .rewritten(_, let tip) = self else { return false }
        return notified != tip
    }

    /// The state's keys for the recorded line.
    public static let branchKey = "line/branch"
    public static let tipKey = "line/tip"
    /// The last new tip a rewrite was notified for (once per new tip).
    public static let notifiedKey = "line/notified"
    /// The tip an operator accepted after a rewrite, and its first-parent position: approvals merged at or
    /// before it do not count for raising exposure.
    public static let acceptedTipKey = "line/acceptedTip"
    public static let acceptedIndexKey = "line/acceptedIndex"
    public static let keyPrefix = "line/"

    /// The accepted line as the approval rules take it.
    public static func acceptedLine(_ line: [String: String]) -> (index: Int, commit: String)? {
        guard let commit = line[acceptedTipKey], let index = line[acceptedIndexKey].flatMap({ Int($0) }) else {
            return nil
        }
        return (index, commit)
    }
}
