/// One file of a commit's tree, as the git adapter lists it.
public struct TreeFile: Equatable, Sendable {
    public enum Kind: Equatable, Sendable {
        case blob, symlink, submodule
    }

    public var path: String
    public var kind: Kind
    /// The git object id (a blob for files and symlinks, a commit for submodules).
    public var objectID: String
    public var size: Int
    /// The git file mode (0o100644, 0o100755, 0o120000, 0o160000), as `git ls-tree` prints it.
    public var mode: UInt32
    /// Set by the tree reader when a name on the path is not valid UTF-8 (`path` then holds U+FFFD in its
    /// place), or equals a sibling's name after Unicode NFC normalisation (SPEC §4.0 rule 4).
    public var nameProblem: String?

    public init(
        path: String, kind: Kind, objectID: String, size: Int, mode: UInt32? = nil, nameProblem: String? = nil
    ) {
        self.path = path
        self.nameProblem = nameProblem
        self.kind = kind
        self.objectID = objectID
        self.size = size
        switch kind {
        case .blob: self.mode = mode ?? 0o100644
        case .symlink: self.mode = 0o120000
        case .submodule: self.mode = 0o160000
        }
    }
}

/// An approval file found in the tree, decoded or not.
public struct ApprovalFile: Equatable, Sendable {
    public var path: String
    public var blobID: String
    /// The phase named by the file's folder.
    public var pathPhase: String
    /// Nil when the file could not be decoded; its diagnostics say why.
    public var record: ApprovalRecord?
    public var diagnostics: [Diagnostic]
}

/// Everything under `rollouts/<name>/`.
public struct RolloutFiles: Equatable, Sendable {
    public var name: String
    public var planPath: String { RepositoryLayout.planPath(rollout: name) }
    /// Nil when plan.json is missing or invalid.
    public var plan: Plan?
    public var planBlob: String?
    /// The checks that apply: the plan's own, or those of the health set it uses.
    public var checks: [HealthCheck]
    public var approvals: [ApprovalFile]
    /// Problems with the plan or the layout: any of them makes the rollout invalid.
    public var diagnostics: [Diagnostic]
    /// A file name in the folder is not UTF-8 or folds into another under NFC (SPEC §4.0 rule 4): its
    /// paths cannot be told apart as text, so the history walk does not follow them.
    public var hasNameProblem = false

    public var isValid: Bool { plan != nil && diagnostics.isEmpty }

    /// Every problem of this rollout, plan and approval files together, in file order.
    public var allDiagnostics: [Diagnostic] {
        (diagnostics + approvals.flatMap(\.diagnostics)).sorted()
    }
}

/// A policy approval file found in the tree, decoded or not (SPEC §4.3).
public struct PolicyApprovalFile: Equatable, Sendable {
    public var path: String
    public var blobID: String
    /// Nil when the file could not be decoded; its diagnostics say why.
    public var record: PolicyApprovalRecord?
    public var diagnostics: [Diagnostic]

    public init(path: String, blobID: String, record: PolicyApprovalRecord?, diagnostics: [Diagnostic]) {
        self.path = path
        self.blobID = blobID
        self.record = record
        self.diagnostics = diagnostics
    }
}

/// Everything under `policies/` except `policies/approvals/`: the policy, with its digest (SPEC §4.3).
public struct PolicySet: Sendable {
    /// sha256 of the `git ls-tree -r` lines of the policy's files.
    public var digest: String
    public var approvers: ApproversPolicy?
    public var allowedSigners: AllowedSigners?
    public var healthSets: [String: HealthSet]
    /// Problems in the policy's files.
    public var diagnostics: [Diagnostic]
}

/// A commit's rollout repository, decoded and validated (everything that needs no history).
public struct RepositorySnapshot: Sendable {
    /// The policy as the tip holds it (which is not always the policy in force, §4.3).
    public var policySet: PolicySet
    public var policyApprovals: [PolicyApprovalFile]
    public var rollouts: [RolloutFiles]
    /// Problems in `policies/` (the policy's files, policy approvals, and files that belong nowhere).
    public var policyDiagnostics: [Diagnostic]

    public var policy: ApproversPolicy? { policySet.approvers }
    public var allowedSigners: AllowedSigners? { policySet.allowedSigners }
    public var healthSets: [String: HealthSet] { policySet.healthSets }

    public var allDiagnostics: [Diagnostic] {
        policyDiagnostics.sorted() + rollouts.flatMap(\.allDiagnostics)
    }

    public func rollout(named name: String) -> RolloutFiles? {
        rollouts.first { $0.name == name }
    }
}
