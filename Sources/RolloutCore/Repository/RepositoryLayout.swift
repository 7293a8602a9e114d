/// Where everything lives in a rollout repository (SPEC §3, §4): the one home of every path and of the
/// protected-branch default. Readers, writers, the history walk and messages all ask here.
///
/// ```
/// policies/approvers.json                          the approvers policy
/// policies/allowed_signers                         keys for signed approvals
/// policies/health/<set>.json                       health sets
/// policies/approvals/<any>.json                    approvals of a policy change
/// rollouts/<name>/plan.json                        a rollout's plan
/// rollouts/<name>/approvals/<phase>/<any>.json     approvals of a phase
/// ```
public enum RepositoryLayout {
    /// The top-level folders rolloutctl reads; everything else in the repository is ignored.
    public static let rolloutsFolder = "rollouts"
    public static let policiesFolder = "policies"
    public static let folders = [rolloutsFolder, policiesFolder]

    /// `rollouts/`
    public static let rolloutsPrefix = rolloutsFolder + "/"
    /// `policies/`
    public static let policiesPrefix = policiesFolder + "/"
    /// `policies/approvers.json`
    public static let approvers = policiesPrefix + "approvers.json"
    /// `policies/allowed_signers`
    public static let allowedSigners = policiesPrefix + "allowed_signers"
    /// `policies/health/`: one file per health set.
    public static let healthSetsPrefix = policiesPrefix + "health/"
    /// `policies/approvals/`: approvals of a policy change; not part of the policy digest.
    public static let policyApprovalsPrefix = policiesPrefix + approvalsFolder + "/"

    /// A rollout folder's plan file name.
    public static let planFile = "plan.json"
    /// The folder under a rollout (and under `policies/`) that holds approvals.
    public static let approvalsFolder = "approvals"

    /// `rollouts/<name>`
    public static func rolloutFolder(_ name: String) -> String { rolloutsPrefix + name }
    /// `rollouts/<name>/plan.json`
    public static func planPath(rollout name: String) -> String { rolloutFolder(name) + "/" + planFile }
    /// `rollouts/<rollout>/approvals/<phase>/<file>`
    public static func approvalPath(rollout: String, phase: String, file: String) -> String {
        rolloutFolder(rollout) + "/" + approvalsFolder + "/" + phase + "/" + file
    }

    /// `rollouts/<name>/plan.json` (and no other depth or name).
    public static func isPlan(_ path: String) -> Bool {
        path.hasPrefix(rolloutsPrefix) && path.hasSuffix("/" + planFile)
    }

    /// The files the history walk follows: `rollouts/<name>/plan.json` and
    /// `rollouts/<name>/approvals/<phase>/<file>`.
    public static func isTracked(_ path: String) -> Bool {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard let first = parts.first, first == rolloutsFolder else { return false }
        if parts.count == 3 { return parts[2] == planFile }
        return parts.count == 5 && parts[2] == approvalsFolder
    }

    /// Whether a file counts toward the policy: under `policies/` but not `policies/approvals/` (SPEC §4.3).
    public static func isPolicyFile(_ path: String) -> Bool {
        path.hasPrefix(policiesPrefix) && !path.hasPrefix(policyApprovalsPrefix)
    }

    /// The branch read when `protectedBranch` is not set in `policies/approvers.json` (or cannot be read).
    public static let defaultProtectedBranch = "main"

    /// The protected branch: the configured one, else the default. The one place that decides it.
    public static func protectedBranch(_ configured: String?) -> String { configured ?? defaultProtectedBranch }

    /// Branches tried, in order, when HEAD names a branch with no commits (a bare repository whose HEAD
    /// says `master` while only `main` was pushed): the default first, then the older convention.
    public static let unbornHeadFallbacks = [defaultProtectedBranch, "master"]
}
