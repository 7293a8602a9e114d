import Foundation

/// The rules of a run as a whole that are not one rollout's phase (SPEC §4.3, §5 rules 7, 8, 12).
public enum RunRules {
    /// SPEC §5 rule 12 [r2]: time never runs backwards. The refusal when `--now` is earlier than the latest
    /// reconcile the state recorded; nil when the run may go on.
    public static func clockRefusal(now: Date, clockSupplied: Bool, latestRun: Date?) -> String? {
        guard clockSupplied, let latestRun, now < latestRun else { return nil }
        return "--now \(RFC3339.format(now)) is earlier than the latest reconcile recorded in the state "
            + "(\(RFC3339.format(latestRun))); time never runs backwards"
    }

    /// SPEC §5 rule 7: a plan that is invalid, or that the flag store cannot carry out, holds its rollout alone.
    public static let invalidPlan = Blocker(
        kind: .error, detail: "the plan is invalid; nothing is raised until it is fixed (run `rolloutctl validate`)")

    /// SPEC §5 rule 8: a rollout removed from the repository is left as it is and reported as orphaned.
    public static func orphaned(_ name: String) -> Blocker {
        Blocker(
            kind: .state,
            detail: "\(RepositoryLayout.rolloutFolder(name)) was removed from the repository; "
                + "its flag is left as it is (rolloutctl never prunes)")
    }

    /// SPEC §5 rules 8 and 13 [r3]: whether a recorded rollout whose plan cannot be trusted is still watched by
    /// its guard: until it completed, was aborted or rolled back, and (for an orphan) unless a plan that is
    /// present drives its flag.
    public static func isGuarded(status: RolloutStatus, flag: String?, drivenFlags: Set<String> = []) -> Bool {
        let finished: Set<RolloutStatus> = [.completed, .aborted, .rolledBack]
        return !finished.contains(status) && !(flag.map(drivenFlags.contains) ?? false)
    }

    /// SPEC §4.3: what the policy root found at the pinned commit means for the state.
    public enum PolicyRootVerdict: Equatable, Sendable {
        /// As recorded (or nothing to compare yet).
        case same
        /// No policy existed when `init` ran: the first one found is the root, pinned from now on.
        case pin(commit: String, digest: String)
        /// The pinned commit now holds another policy: the tip is not trusted.
        case changed(String)
    }

    public static func policyRoot(
        recordedCommit: String?, recordedDigest: String?, found: (commit: String, digest: String)?, statePath: String
    ) -> PolicyRootVerdict {
        if let recordedDigest, let found, recordedDigest != found.digest {
            return .changed(
                "\(statePath) records policy \(recordedDigest.prefix(12)) at \(recordedCommit?.prefix(12) ?? "?"), "
                    + "but that commit now holds \(found.digest.prefix(12))")
        }
        if recordedCommit == nil, let found { return .pin(commit: found.commit, digest: found.digest) }
        return .same
    }

    /// SPEC §7.1: the environments of this plan the flag store says rolloutctl must not drive, as the rollout's
    /// errors; when there is one, nothing is decided or written for the rollout.
    public static func refusals(_ flag: FlagSnapshot, plan: Plan) -> [String] {
        let environments = Set(plan.phases.map(\.environment))
        return flag.errors.filter { environments.contains($0.environment) }
            .map { "\(plan.flag)[\($0.environment)]: \($0.message)" }
    }

    /// What the flag store saw in this plan's environments that exposes more users than it reports.
    public static func warnings(_ flag: FlagSnapshot, plan: Plan) -> [String] {
        let environments = Set(plan.phases.map(\.environment))
        return flag.warnings.filter { environments.contains($0.environment) }
            .map { "\(plan.flag)[\($0.environment)]: \($0.message)" }
    }
}
