import Foundation
import RolloutAdapters
import RolloutCore
import RolloutGit

/// `rolloutctl validate`: every problem of every file, each at its `path:line:column`.
public struct ValidateReport: Sendable {
    public var ref: String
    public var revision: String
    public var diagnostics: [Diagnostic]
    public var rolloutCount: Int
    public var approvalCount: Int
    /// The digest of the tip's policy, to check by hand with the `git ls-tree … | sha256sum` line of SPEC §4.3.
    public var policyDigest: String
    /// The policy in force and the proposal waiting for approvals.
    public var policy: PolicyState
    /// Problems that do not make the repository invalid (a policy that can never be amended).
    public var warnings: [Diagnostic]

    public var isValid: Bool { diagnostics.isEmpty }

    /// - Parameter policyRoot: the root of trust an operator set (`--policy-root COMMIT`, SPEC §4.3); nil: the
    ///   one the installation's state recorded, when the repository's default state exists, else the first
    ///   commit holding the policy.
    public static func run(
        repositoryPath: String, ref: String?, policyRoot: String? = nil, now: Date = Date()
    ) throws -> ValidateReport {
        let repository = try GitRepository(path: repositoryPath)
        var root: String?
        if let policyRoot {
            root = try repository.resolveCommit(policyRoot).description
        } else if let state = try? StateStorageFactory.openReadOnly(
            RunSettings.defaultStatePath(repositoryPath: repositoryPath))
        {
            root = try? state.installation()?.policyRootCommit
        }
        let loaded = try RepositoryReader.load(repository: repository, ref: ref, cacheFile: nil, policyRoot: root)
        // SPEC §4.3 [r3]: `validate` judges the tip as it will be once everything in it is in force (its plans
        // under the tip's own policy); what is invalid only under the policy in force is a warning.
        let snapshot: RepositorySnapshot
        var warnings: [Diagnostic]
        if let inForce = loaded.policy.inForceSet, inForce.digest != loaded.snapshot.policySet.digest,
            let tip = ObjectID(hex: loaded.revision)
        {
            snapshot = try RepositoryReader.snapshot(repository: repository, commit: tip)
            warnings = PolicyWarnings.unamendable(snapshot.policySet, at: now)
            warnings += PolicyWarnings.unamendable(inForce, at: now).map {
                Diagnostic(
                    path: $0.path, line: $0.line, column: $0.column, message: "(the policy in force) " + $0.message)
            }
            let underTip = Set(snapshot.allDiagnostics)
            let pending = loaded.policy.pending.map { " (\($0.point.commit.prefix(7)))" } ?? ""
            warnings += loaded.snapshot.rollouts.flatMap(\.allDiagnostics).filter { !underTip.contains($0) }.map {
                Diagnostic(
                    path: $0.path, line: $0.line, column: $0.column,
                    message: $0.message
                        + " under the policy in force; valid once the pending policy\(pending) is in force")
            }
        } else {
            snapshot = loaded.snapshot
            warnings = PolicyWarnings.unamendable(snapshot.policySet, at: now)
        }
        return ValidateReport(
            ref: loaded.ref, revision: loaded.revision, diagnostics: snapshot.allDiagnostics,
            rolloutCount: snapshot.rollouts.count,
            approvalCount: snapshot.rollouts.reduce(0) { $0 + $1.approvals.count },
            policyDigest: snapshot.policySet.digest, policy: loaded.policy, warnings: warnings)
    }
}
