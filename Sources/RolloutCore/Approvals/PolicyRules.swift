import Foundation

/// A change of the policy that is not in force yet (SPEC §4.3).
public struct PolicyProposal: Equatable, Sendable {
    /// The first-parent commit that proposed it, and its position on the first-parent line.
    public var commit: String
    public var index: Int
    /// The digest of the proposed policy.
    public var digest: String

    public init(commit: String, index: Int, digest: String) {
        self.commit = commit
        self.index = index
        self.digest = digest
    }
}

/// The rules of SPEC §4.3 for approvals of a policy change. Each approval is checked by the rules
/// of §4.1 under the policy in force before the proposal: merged at or after the proposal, its
/// approval commit found, made by the approver, the approver a member of a `policyApprovals` role,
/// not a maker of the policy change, one person (and one key) per role.
public enum PolicyRules {
    public static func evaluate(
        approvals: [PolicyApprovalFile], evidence: [String: ApprovalEvidence], proposal: PolicyProposal,
        makers: [MakerCommit], authority: ApprovalAuthority
    ) -> [ApprovalStatus] {
        let policy = authority.policy
        let unverifiedMaker = policy.flatMap {
            ApprovalRules.unverifiedMakerReason(makers, $0, authority, change: "policy change")
        }
        var statuses: [ApprovalStatus] = approvals.map { file in
            var status = ApprovalStatus(
                path: file.path, phase: "", role: file.record?.role,
                approver: file.record?.approver,
                commit: evidence[file.path]?.approvalCommit?.id, counted: false, reason: nil)
            (status.reason, status.key) = failure(
                file: file, evidence: evidence[file.path], proposal: proposal,
                makers: makers, authority: authority, unverifiedMaker: unverifiedMaker)
            status.counted = status.reason == nil
            return status
        }
        ApprovalRules.assignRoles(slots: policy?.policyApprovals ?? [], what: "the policy change", statuses: &statuses)
        {
            _ in true
        }
        return statuses.sorted { $0.path < $1.path }
    }

    /// The `policyApprovals` roles of the policy in force not filled by a counted approval. When the
    /// policy in force cannot be read, nothing can fill them: the way out is `init --policy-root`.
    public static func missingRoles(authority: ApprovalAuthority, statuses: [ApprovalStatus]) -> [String] {
        guard let policy = authority.policy else { return ["(the policy in force is invalid)"] }
        var missing = policy.policyApprovals
        for status in statuses where status.counted {
            if let role = status.role, let at = missing.firstIndex(of: role) { missing.remove(at: at) }
        }
        return missing
    }

    private static func failure(
        file: PolicyApprovalFile, evidence: ApprovalEvidence?, proposal: PolicyProposal, makers: [MakerCommit],
        authority: ApprovalAuthority, unverifiedMaker: String?
    ) -> (String?, key: String?) {
        guard let record = file.record else {
            return (
                file.diagnostics.first.map { "invalid policy approval: \($0.message)" } ?? "invalid policy approval",
                nil
            )
        }
        guard record.policy == proposal.digest else {
            return (
                "approves policy digest \(record.policy.prefix(12)), but the proposed policy is "
                    + "\(proposal.digest.prefix(12)); approve the current proposal again", nil
            )
        }
        guard let policy = authority.policy else {
            return ("\(RepositoryLayout.approvers) in force is missing or invalid", nil)
        }
        guard policy.policyApprovals.contains(record.role) else {
            let roles = policy.policyApprovals.joined(separator: ", ")
            return ("role \"\(record.role)\" does not approve policy changes (policyApprovals in force: \(roles))", nil)
        }
        let (reason, key) = ApprovalRules.commitFailure(
            approver: record.approver, role: record.role, authority: authority, evidence: evidence,
            since: (proposal.index, proposal.commit), sinceWhat: "the policy change was proposed")
        if let reason { return (reason, key) }
        if policy.forbidSelfApproval {
            if let unverifiedMaker { return (unverifiedMaker, key) }
            if let how = ApprovalRules.madeBy(record.approver, key: key, makers: makers, authority: authority) {
                return (
                    "self-approval: \(record.approver) \(how) the policy, and the policy forbids self-approval", key
                )
            }
        }
        return (nil, key)
    }
}

/// Policies that are valid but cannot work as meant, reported by `validate` as warnings.
public enum PolicyWarnings {
    /// In signature mode, a `policyApprovals` role none of whose members has a key in allowed_signers
    /// can never approve: the policy can never be amended through a pull request (SPEC §4.3).
    public static func unamendable(_ set: PolicySet, at date: Date) -> [Diagnostic] {
        guard let policy = set.approvers, policy.identity == .sshSignature else { return [] }
        var stuck: [String] = []
        for role in Set(policy.policyApprovals).sorted() {
            let members = policy.roles[role] ?? []
            let signs = members.contains { member in
                set.allowedSigners?.entries.contains {
                    set.allowedSigners?.check(principal: member, key: $0.key, namespace: "git", at: date) == .allowed
                } ?? false
            }
            if !signs { stuck.append(role) }
        }
        guard !stuck.isEmpty else { return [] }
        return [
            Diagnostic(
                path: RepositoryLayout.approvers,
                message:
                    "this policy can never be amended: in signature mode no member of policyApprovals role"
                    + (stuck.count == 1 ? " " : "s ") + stuck.map { "\"\($0)\"" }.joined(separator: ", ")
                    + " has a key in \(RepositoryLayout.allowedSigners); add one, or an operator makes a "
                    + "commit's policy "
                    + "the root of trust with `rolloutctl init --policy-root COMMIT --adopt`")
        ]
    }
}
