import Foundation

/// What the git history says about the commit that introduced an approval file (SPEC §4.3).
public struct ApprovalEvidence: Equatable, Sendable {
    /// The approval commit (for a merge, the commit on the merged side).
    public var commit: String
    /// True when the approval reached the protected branch through a merge commit.
    public var viaMerge: Bool
    public var authorEmail: String
    public var committerEmail: String
    public var committerTime: Date
    /// The armored SSH signature and the bytes it covers, when the commit is signed.
    public var signature: String?
    public var signedData: [UInt8]?

    public init(commit: String, viaMerge: Bool, authorEmail: String, committerEmail: String, committerTime: Date,
                signature: String? = nil, signedData: [UInt8]? = nil) {
        self.commit = commit
        self.viaMerge = viaMerge
        self.authorEmail = authorEmail
        self.committerEmail = committerEmail
        self.committerTime = committerTime
        self.signature = signature
        self.signedData = signedData
    }
}

/// One approval file and whether it counts, with the reason when it does not.
public struct ApprovalStatus: Equatable, Sendable {
    public var path: String
    public var phase: String
    public var role: String?
    public var approver: String?
    public var commit: String?
    public var counted: Bool
    public var reason: String?
}

/// The rules of SPEC §4: which approval files count for which phase.
public enum ApprovalRules {
    /// Evaluates every approval file of a rollout.
    /// - Parameters:
    ///   - evidence: the approval commit of each approval file, by path (nil: not found in history).
    ///   - planChange: the commit that last changed plan.json (for `forbidSelfApproval`).
    public static func evaluate(
        rollout: RolloutFiles, policy: ApproversPolicy?, signers: AllowedSigners?,
        evidence: [String: ApprovalEvidence], planChange: ApprovalEvidence?
    ) -> [ApprovalStatus] {
        guard let plan = rollout.plan else {
            return rollout.approvals.map {
                ApprovalStatus(path: $0.path, phase: $0.pathPhase, role: $0.record?.role, approver: $0.record?.approver,
                               commit: evidence[$0.path]?.commit, counted: false, reason: "the plan is invalid")
            }
        }
        var statuses: [ApprovalStatus] = []
        for file in rollout.approvals {
            var status = ApprovalStatus(path: file.path, phase: file.pathPhase, role: file.record?.role,
                                        approver: file.record?.approver, commit: evidence[file.path]?.commit,
                                        counted: false, reason: nil)
            status.reason = firstFailure(file: file, plan: plan, planBlob: rollout.planBlob, policy: policy,
                                         signers: signers, evidence: evidence[file.path], planChange: planChange)
            status.counted = status.reason == nil
            statuses.append(status)
        }
        assignRoles(plan: plan, statuses: &statuses)
        let order = Dictionary(uniqueKeysWithValues: plan.phases.enumerated().map { ($0.element.name, $0.offset) })
        return statuses.sorted { (order[$0.phase] ?? .max, $0.path) < (order[$1.phase] ?? .max, $1.path) }
    }

    /// The roles of `phase` not yet filled by counted approvals (a role listed twice appears twice).
    public static func missingRoles(of phase: Plan.Phase, statuses: [ApprovalStatus]) -> [String] {
        var missing = phase.approvals
        for status in statuses where status.counted && status.phase == phase.name {
            if let role = status.role, let index = missing.firstIndex(of: role) { missing.remove(at: index) }
        }
        return missing
    }

    private static func firstFailure(
        file: ApprovalFile, plan: Plan, planBlob: String?, policy: ApproversPolicy?, signers: AllowedSigners?,
        evidence: ApprovalEvidence?, planChange: ApprovalEvidence?
    ) -> String? {
        guard let record = file.record else {
            return file.diagnostics.first.map { "invalid approval file: \($0.message)" } ?? "invalid approval file"
        }
        guard let phase = plan.phases.first(where: { $0.name == file.pathPhase }) else {
            return "the plan has no phase \"\(file.pathPhase)\""
        }
        guard record.plan == planBlob?.lowercased() else {
            return "stale: approves plan blob \(record.plan.prefix(12)), but plan.json is now \(planBlob?.prefix(12) ?? "missing"); "
                + "approve the current plan again"
        }
        guard let policy else { return "\(ApproversPolicy.path) is missing or invalid" }
        guard let evidence else { return "no approval commit found on the protected branch's first-parent history" }
        if let failure = identityFailure(record: record, policy: policy, signers: signers, evidence: evidence) {
            return failure
        }
        guard policy.roles[record.role] != nil else {
            return "role \"\(record.role)\" is not defined in \(ApproversPolicy.path)"
        }
        guard policy.isMember(record.approver, of: record.role) else {
            return "\(record.approver) is not a member of role \"\(record.role)\""
        }
        guard phase.approvals.contains(record.role) else {
            return "phase \"\(phase.name)\" does not require role \"\(record.role)\""
        }
        if policy.forbidSelfApproval, let planChange,
           let how = madePlanChange(record.approver, planChange, signers: signers) {
            return "self-approval: \(record.approver) \(how) the last change to plan.json (commit \(planChange.commit.prefix(12))), "
                + "and the policy forbids self-approval"
        }
        return nil
    }

    /// Whether `person` made the plan change: as its author or committer, or, whatever those
    /// say, as the holder of the key that validly signed it (an author email is not proof, so a
    /// plan committed under someone else's name but signed with your key is still yours).
    private static func madePlanChange(_ person: String, _ change: ApprovalEvidence, signers: AllowedSigners?) -> String? {
        if change.authorEmail.caseInsensitiveEquals(person) { return "authored" }
        if change.committerEmail.caseInsensitiveEquals(person) { return "committed" }
        guard let signature = change.signature, let signedData = change.signedData, let signers,
              case .valid(let key) = SSHSignatureVerifier.verify(armored: signature, message: signedData, namespace: "git"),
              signers.check(principal: person, key: key, namespace: "git", at: change.committerTime) == .allowed
        else { return nil }
        return "signed"
    }

    private static func identityFailure(
        record: ApprovalRecord, policy: ApproversPolicy, signers: AllowedSigners?, evidence: ApprovalEvidence
    ) -> String? {
        let commit = String(evidence.commit.prefix(12))
        switch policy.identity {
        case .author:
            guard evidence.authorEmail.caseInsensitiveEquals(record.approver) else {
                return "approval commit \(commit) was authored by \(evidence.authorEmail), not by the approver \(record.approver)"
            }
            return nil
        case .sshSignature:
            let squashNote = evidence.viaMerge ? "" :
                " (a squash or rebase by a hosting service replaces the approver's signed commit; merge with a merge commit, or sign the squash commit)"
            guard let signature = evidence.signature, let signedData = evidence.signedData else {
                return "approval commit \(commit) is not signed; the policy requires an SSH signature by \(record.approver)\(squashNote)"
            }
            switch SSHSignatureVerifier.verify(armored: signature, message: signedData, namespace: "git") {
            case .invalid(let why):
                return "approval commit \(commit) has a bad signature: \(why)\(squashNote)"
            case .unsupported(let why):
                return "approval commit \(commit) has an unsupported signature: \(why)"
            case .valid(let key):
                guard let signers else {
                    return "approval commit \(commit) is signed, but policies/allowed_signers is missing or invalid"
                }
                switch signers.check(principal: record.approver, key: key, namespace: "git", at: evidence.committerTime) {
                case .allowed:
                    return nil
                case .denied(let why):
                    return "approval commit \(commit): \(why)\(squashNote)"
                }
            }
        }
    }

    /// One person fills at most one role of one phase, and a role listed twice needs two
    /// different people: a maximum matching of approvals to role slots, per phase.
    private static func assignRoles(plan: Plan, statuses: inout [ApprovalStatus]) {
        for phase in plan.phases {
            let candidates = statuses.indices.filter { statuses[$0].counted && statuses[$0].phase == phase.name }
            guard !candidates.isEmpty else { continue }
            let slots = phase.approvals
            // Left side: people; right side: role slots. A person can take a slot when one of their
            // approvals is for that role. Augmenting paths give the largest assignment.
            var people: [String: [Int]] = [:]  // person → their candidate approvals
            for candidate in candidates {
                people[statuses[candidate].approver?.lowercased() ?? "", default: []].append(candidate)
            }
            var slotOwner: [String?] = Array(repeating: nil, count: slots.count)  // slot → person
            func tryAssign(_ person: String, _ visited: inout Set<Int>) -> Bool {
                let roles = Set(people[person, default: []].compactMap { statuses[$0].role })
                for (slot, role) in slots.enumerated() where roles.contains(role) && !visited.contains(slot) {
                    visited.insert(slot)
                    if slotOwner[slot] == nil || tryAssign(slotOwner[slot]!, &visited) {
                        slotOwner[slot] = person
                        return true
                    }
                }
                return false
            }
            for person in people.keys.sorted() {
                var visited = Set<Int>()
                _ = tryAssign(person, &visited)
            }
            var personTaken: [String: Int] = [:]  // person → the approval that fills their slot
            for (slot, owner) in slotOwner.enumerated() {
                guard let owner else { continue }
                personTaken[owner] = people[owner]?.first { statuses[$0].role == slots[slot] }
            }
            let assigned = Set(personTaken.values)
            for candidate in candidates where !assigned.contains(candidate) {
                let person = statuses[candidate].approver ?? "?"
                let role = statuses[candidate].role ?? "?"
                statuses[candidate].counted = false
                if let other = personTaken[person.lowercased()], let otherRole = statuses[other].role {
                    statuses[candidate].reason = otherRole == role
                        ? "\(person) already approved role \"\(role)\" for this phase; a role listed twice needs two different approvers"
                        : "\(person) already fills role \"\(otherRole)\" for this phase; one person fills at most one role"
                } else {
                    statuses[candidate].reason = "role \"\(role)\" of phase \"\(phase.name)\" is already filled"
                }
            }
        }
    }
}
