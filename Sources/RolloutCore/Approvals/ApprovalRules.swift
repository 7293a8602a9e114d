import Foundation

/// One approval file (of a rollout phase, or of a policy change) and whether it counts, with the
/// reason when it does not.
public struct ApprovalStatus: Equatable, Sendable {
    public var path: String
    /// The phase approved; empty for a policy approval.
    public var phase: String
    public var role: String?
    public var approver: String?
    /// The approval commit (rule 4), when it was found.
    public var commit: String?
    public var counted: Bool
    public var reason: String?
    /// In signature mode, the fingerprint of the key that signed the approval commit.
    public var key: String?

    public init(
        path: String, phase: String, role: String?, approver: String?, commit: String?, counted: Bool,
        reason: String?, key: String? = nil
    ) {
        self.path = path
        self.phase = phase
        self.role = role
        self.approver = approver
        self.commit = commit
        self.counted = counted
        self.reason = reason
        self.key = key
    }
}

/// The policy an approval is judged under: the policy in force (SPEC §4.3), not always the tip's.
public struct ApprovalAuthority: Sendable {
    public var policy: ApproversPolicy?
    public var signers: AllowedSigners?

    public init(policy: ApproversPolicy?, signers: AllowedSigners?) {
        self.policy = policy
        self.signers = signers
    }
}

/// The rules of SPEC §4.1 and §4.2: which approval files count for which phase.
public enum ApprovalRules {
    /// Evaluates every approval file of a rollout.
    /// - Parameters:
    ///   - authority: the policy in force.
    ///   - evidence: how each approval file reached the protected branch, by path.
    ///   - planHistory: where plan.json took its current content, and every commit that changed it.
    ///   - acceptedLine: the first-parent position and commit of the tip an operator accepted with
    ///     `init --adopt` after the history was rewritten (SPEC §4.0 rule 5): approvals merged at or before it
    ///     do not count for raising exposure.
    public static func evaluate(
        rollout: RolloutFiles, authority: ApprovalAuthority, evidence: [String: ApprovalEvidence],
        planHistory: ContentHistory?, acceptedLine: (index: Int, commit: String)? = nil
    ) -> [ApprovalStatus] {
        guard let plan = rollout.plan else {
            return rollout.approvals.map {
                ApprovalStatus(
                    path: $0.path, phase: $0.pathPhase, role: $0.record?.role, approver: $0.record?.approver,
                    commit: evidence[$0.path]?.approvalCommit?.id, counted: false,
                    reason: "the plan is invalid")
            }
        }
        let unverifiedMaker = authority.policy.flatMap {
            unverifiedMakerReason(planHistory?.makers ?? [], $0, authority, change: "plan change")
        }
        var statuses: [ApprovalStatus] = []
        for file in rollout.approvals {
            var status = ApprovalStatus(
                path: file.path, phase: file.pathPhase, role: file.record?.role,
                approver: file.record?.approver,
                commit: evidence[file.path]?.approvalCommit?.id, counted: false, reason: nil)
            (status.reason, status.key) = firstFailure(
                file: file, plan: plan, planBlob: rollout.planBlob, authority: authority,
                evidence: evidence[file.path], planHistory: planHistory, unverifiedMaker: unverifiedMaker)
            if status.reason == nil, let acceptedLine, let merged = evidence[file.path],
                merged.mergeIndex <= acceptedLine.index
            {
                status.reason =
                    "merged at \(merged.mergePoint.prefix(12)), not after \(acceptedLine.commit.prefix(12)), the tip "
                    + "an operator accepted with `rolloutctl init --adopt` after the history was rewritten; "
                    + "approve it again in a new pull request"
            }
            status.counted = status.reason == nil
            statuses.append(status)
        }
        for (index, phase) in plan.phases.enumerated() {
            assignRoles(
                slots: requiredRoles(plan: plan, phaseIndex: index, policy: authority.policy),
                what: "phase \"\(phase.name)\"", statuses: &statuses
            ) { $0.phase == phase.name }
        }
        let order = Dictionary(uniqueKeysWithValues: plan.phases.enumerated().map { ($0.element.name, $0.offset) })
        return statuses.sorted { (order[$0.phase] ?? .max, $0.path) < (order[$1.phase] ?? .max, $1.path) }
    }

    /// The roles phase `phaseIndex` needs (§4.2): the plan's `approvals` together with the policy's
    /// floor for an environment where the phase raises exposure. A role in both lists needs one
    /// person; a role listed twice in one list needs two.
    public static func requiredRoles(plan: Plan, phaseIndex: Int, policy: ApproversPolicy?) -> [String] {
        let phase = plan.phases[phaseIndex]
        guard let floor = policy?.environmentApprovals[phase.environment], !floor.isEmpty else {
            return phase.approvals
        }
        let before = phaseIndex > 0 ? plan.desiredState(atPhase: phaseIndex - 1)[phase.environment] : nil
        let after = plan.desiredState(atPhase: phaseIndex)[phase.environment]
        guard (after ?? .disabled).exposure > (before ?? .disabled).exposure else { return phase.approvals }
        var roles = phase.approvals
        for role in Set(floor) {
            let missing = floor.filter { $0 == role }.count - roles.filter { $0 == role }.count
            if missing > 0 { roles += Array(repeating: role, count: missing) }
        }
        return roles
    }

    /// For each phase of the plan, the roles it still needs: its required roles not filled by a
    /// counted approval of the current plan.
    public static func missingRoles(plan: Plan, policy: ApproversPolicy?, statuses: [ApprovalStatus]) -> [[String]] {
        plan.phases.indices.map { index in
            var missing = requiredRoles(plan: plan, phaseIndex: index, policy: policy)
            for status in statuses where status.counted && status.phase == plan.phases[index].name {
                if let role = status.role, let at = missing.firstIndex(of: role) { missing.remove(at: at) }
            }
            return missing
        }
    }

    private static func firstFailure(
        file: ApprovalFile, plan: Plan, planBlob: String?, authority: ApprovalAuthority, evidence: ApprovalEvidence?,
        planHistory: ContentHistory?, unverifiedMaker: String?
    ) -> (String?, key: String?) {
        guard let record = file.record else {
            return (
                file.diagnostics.first.map { "invalid approval file: \($0.message)" } ?? "invalid approval file", nil
            )
        }
        guard let phaseIndex = plan.phaseIndex(named: file.pathPhase) else {
            return ("the plan has no phase \"\(file.pathPhase)\"", nil)
        }
        guard record.plan == planBlob?.lowercased() else {
            return (
                "stale: approves plan blob \(record.plan.prefix(12)), but plan.json is now "
                    + "\(planBlob?.prefix(12) ?? "missing"); approve the current plan again", nil
            )
        }
        guard let policy = authority.policy else {
            return ("\(RepositoryLayout.approvers) in force is missing or invalid", nil)
        }
        guard requiredRoles(plan: plan, phaseIndex: phaseIndex, policy: policy).contains(record.role) else {
            return ("phase \"\(file.pathPhase)\" does not require role \"\(record.role)\"", nil)
        }
        let (failure, key) = commitFailure(
            approver: record.approver, role: record.role, authority: authority, evidence: evidence,
            since: planHistory.map { ($0.changeIndex, $0.changeCommit) },
            sinceWhat: "the plan took its current content")
        if let failure { return (failure, key) }
        if policy.forbidSelfApproval {
            if let unverifiedMaker { return (unverifiedMaker, key) }
            if let how = madeBy(record.approver, key: key, makers: planHistory?.makers ?? [], authority: authority) {
                return ("self-approval: \(record.approver) \(how) plan.json, and the policy forbids self-approval", key)
            }
        }
        return (nil, key)
    }

    /// Rules 3 to 6 for one approval: merged after the content it approves, approval commit found,
    /// made by the approver, approver a member of the role. Returns the reason it fails, and the
    /// fingerprint of the key that signed it in signature mode.
    static func commitFailure(
        approver: String, role: String, authority: ApprovalAuthority, evidence: ApprovalEvidence?,
        since: (index: Int, commit: String)?, sinceWhat: String
    ) -> (String?, key: String?) {
        guard let policy = authority.policy else {
            return ("\(RepositoryLayout.approvers) in force is missing or invalid", nil)
        }
        guard let evidence else {
            return ("no approval commit found on the protected branch's first-parent history", nil)
        }
        if let since, evidence.mergeIndex < since.index {
            return (
                "merged before \(sinceWhat): merged at \(evidence.mergePoint.prefix(12)), but the content changed "
                    + "at \(since.commit.prefix(12)); approve it again in a new pull request", nil
            )
        }
        guard let commit = evidence.approvalCommit else {
            return (
                "approval commit not found on the merged side of merge \(evidence.mergePoint.prefix(12)): "
                    + "exactly one commit of the pull request must add this file", nil
            )
        }
        let (identity, key) = identityFailure(
            approver: approver, policy: policy, signers: authority.signers,
            commit: commit, viaMerge: evidence.viaMerge)
        if let identity { return (identity, key?.signingKey.fingerprint) }
        guard policy.roles[role] != nil else {
            return (
                "role \"\(role)\" is not defined in the \(RepositoryLayout.approvers) in force",
                key?.signingKey.fingerprint
            )
        }
        guard policy.isMember(approver, of: role) else {
            return (
                "\(approver) is not a member of role \"\(role)\" in the policy in force", key?.signingKey.fingerprint
            )
        }
        return (nil, key?.signingKey.fingerprint)
    }

    /// Rule 7 in signature mode: a change made while signature mode was in force must carry a valid
    /// signature by a listed key, or its maker cannot be known, and no approval of it counts.
    static func unverifiedMakerReason(
        _ makers: [MakerCommit], _ policy: ApproversPolicy,
        _ authority: ApprovalAuthority, change: String
    ) -> String? {
        guard policy.forbidSelfApproval, policy.identity == .sshSignature else { return nil }
        for maker in makers where maker.madeInSignatureMode {
            guard let key = signingKey(maker.commit), isListed(key, commit: maker.commit, authority.signers) else {
                let why =
                    maker.commit.signature == nil
                    ? "is not signed" : "is not signed by a key \(RepositoryLayout.allowedSigners) lists"
                return "\(change) \(maker.commit.id.prefix(12)) \(why): its maker cannot be verified"
            }
        }
        return nil
    }

    /// Whether `person` (whose approval was signed by `key`, in signature mode) made one of `makers`:
    /// as its author or committer, or as the holder of the key that validly signed it.
    static func madeBy(_ person: String, key: String?, makers: [MakerCommit], authority: ApprovalAuthority) -> String? {
        for maker in makers {
            let commit = maker.commit
            let short = commit.id.prefix(12)
            if commit.authorEmail.caseInsensitiveEquals(person) { return "authored \(short), which changed" }
            if commit.committerEmail.caseInsensitiveEquals(person) { return "committed \(short), which changed" }
            guard let signer = signingKey(commit) else { continue }
            if signer.signingKey.fingerprint == key { return "signed \(short), which changed" }
            if let signers = authority.signers,
                signers.check(principal: person, key: signer, namespace: "git", at: commit.committerTime) == .allowed
            {
                return "signed \(short), which changed"
            }
        }
        return nil
    }

    private static func signingKey(_ commit: CommitIdentity) -> SSHPublicKey? {
        guard let signature = commit.signature, let data = commit.signedData,
            case .valid(let key) = SSHSignatureVerifier.verify(armored: signature, message: data, namespace: "git")
        else { return nil }
        return key
    }

    /// Whether allowed_signers lets `key` sign for anyone: the commit's author or committer, or a
    /// principal some line names.
    private static func isListed(_ key: SSHPublicKey, commit: CommitIdentity, _ signers: AllowedSigners?) -> Bool {
        guard let signers else { return false }
        let names = [commit.authorEmail, commit.committerEmail] + signers.entries.flatMap(\.principals)
        return names.contains {
            signers.check(principal: $0, key: key, namespace: "git", at: commit.committerTime) == .allowed
        }
    }

    private static func identityFailure(
        approver: String, policy: ApproversPolicy, signers: AllowedSigners?, commit identity: CommitIdentity,
        viaMerge: Bool
    ) -> (String?, SSHPublicKey?) {
        let commit = String(identity.id.prefix(12))
        switch policy.identity {
        case .author:
            guard identity.authorEmail.caseInsensitiveEquals(approver) else {
                return (
                    "approval commit \(commit) was authored by \(identity.authorEmail), not by the approver "
                        + "\(approver)",
                    nil
                )
            }
            return (nil, nil)
        case .sshSignature:
            let squashNote =
                viaMerge
                ? ""
                : " (a squash or rebase by a hosting service replaces the approver's signed commit; merge with a merge "
                    + "commit, or sign the squash commit)"
            guard let signature = identity.signature, let signedData = identity.signedData else {
                return (
                    "approval commit \(commit) is not signed; the policy requires an SSH signature by "
                        + "\(approver)\(squashNote)", nil
                )
            }
            switch SSHSignatureVerifier.verify(armored: signature, message: signedData, namespace: "git") {
            case .invalid(let why):
                return ("approval commit \(commit) has a bad signature: \(why)\(squashNote)", nil)
            case .unsupported(let why):
                return ("approval commit \(commit) has an unsupported signature: \(why)", nil)
            case .valid(let key):
                guard let signers else {
                    return (
                        "approval commit \(commit) is signed, but \(RepositoryLayout.allowedSigners) "
                            + "is missing or invalid", key
                    )
                }
                switch signers.check(principal: approver, key: key, namespace: "git", at: identity.committerTime) {
                case .allowed:
                    return (nil, key)
                case .denied(let why):
                    return ("approval commit \(commit): \(why)\(squashNote)", key)
                }
            }
        }
    }

    /// One person fills at most one role of one phase (and, in signature mode, one key does too),
    /// and a role listed twice needs two different people: a maximum matching of approvals to role
    /// slots. Approvals that get no slot stop counting, with the reason.
    static func assignRoles(
        slots: [String], what: String, statuses: inout [ApprovalStatus],
        where belongs: (ApprovalStatus) -> Bool
    ) {
        let candidates = statuses.indices.filter { statuses[$0].counted && belongs(statuses[$0]) }
        guard !candidates.isEmpty else { return }
        // Identities: approvals that share an approver or a signing key are one identity.
        var parent = Dictionary(uniqueKeysWithValues: candidates.map { ($0, $0) })
        func find(_ x: Int) -> Int {
            var x = x
            while let p = parent[x], p != x { x = p }
            return x
        }
        var byName: [String: Int] = [:]
        var byKey: [String: Int] = [:]
        for candidate in candidates {
            let name = statuses[candidate].approver?.lowercased() ?? ""
            if let other = byName[name] { parent[find(candidate)] = find(other) } else { byName[name] = candidate }
            if let key = statuses[candidate].key {
                if let other = byKey[key] { parent[find(candidate)] = find(other) } else { byKey[key] = candidate }
            }
        }
        var groups: [Int: [Int]] = [:]
        for candidate in candidates { groups[find(candidate), default: []].append(candidate) }
        let people = groups.keys.sorted()
        var slotOwner: [Int?] = Array(repeating: nil, count: slots.count)
        func tryAssign(_ person: Int, _ visited: inout Set<Int>) -> Bool {
            let roles = Set(groups[person, default: []].compactMap { statuses[$0].role })
            for (slot, role) in slots.enumerated() where roles.contains(role) && !visited.contains(slot) {
                visited.insert(slot)
                if let owner = slotOwner[slot] {
                    guard tryAssign(owner, &visited) else { continue }
                }
                slotOwner[slot] = person
                return true
            }
            return false
        }
        for person in people {
            var visited = Set<Int>()
            _ = tryAssign(person, &visited)
        }
        var taken: [Int: Int] = [:]  // identity → the approval that fills its slot
        for (slot, owner) in slotOwner.enumerated() {
            guard let owner else { continue }
            taken[owner] = groups[owner]?.first { statuses[$0].role == slots[slot] }
        }
        let assigned = Set(taken.values)
        for candidate in candidates where !assigned.contains(candidate) {
            let person = statuses[candidate].approver ?? "?"
            let role = statuses[candidate].role ?? "?"
            statuses[candidate].counted = false
            guard let winner = taken[find(candidate)], let otherRole = statuses[winner].role else {
                statuses[candidate].reason = "role \"\(role)\" of \(what) is already filled"
                continue
            }
            let samePerson = statuses[winner].approver?.lowercased() == person.lowercased()
            if !samePerson, let key = statuses[candidate].key, key == statuses[winner].key {
                statuses[candidate].reason =
                    "key \(key) already fills role \(otherRole) of \(what) "
                    + "(approved by \(statuses[winner].approver ?? "?")); one key fills at most one role"
            } else if otherRole == role {
                statuses[candidate].reason =
                    "\(person) already approved role \"\(role)\" for \(what); a role listed "
                    + "twice needs two different approvers"
            } else {
                statuses[candidate].reason =
                    "\(person) already fills role \"\(otherRole)\" for \(what); one person "
                    + "fills at most one role"
            }
        }
    }
}
