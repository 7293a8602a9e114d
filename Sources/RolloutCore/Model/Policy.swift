/// `rollouts/<rollout>/approvals/<phase>/<any>.json` (SPEC §4).
public struct ApprovalRecord: Equatable, Sendable {
    public var rollout: String
    public var phase: String
    public var role: String
    public var approver: String
    /// The blob id of the plan.json being approved.
    public var plan: String
    public var comment: String?

    public init(rollout: String, phase: String, role: String, approver: String, plan: String, comment: String? = nil) {
        self.rollout = rollout
        self.phase = phase
        self.role = role
        self.approver = approver
        self.plan = plan
        self.comment = comment
    }

    static let fields = ["apiVersion", "rollout", "phase", "role", "approver", "plan", "comment"]

    /// Decodes an approval file and checks that its `rollout`/`phase` agree with its path.
    public static func decode(_ json: JSONValue, sink: DiagnosticSink, pathRollout: String, pathPhase: String)
        -> ApprovalRecord?
    {
        guard let root = ObjectReader(json, sink: sink, name: "the approval", allowed: fields) else { return nil }
        let before = sink.diagnostics.count
        Names.checkAPIVersion(root)
        let rollout = root.string("rollout")
        if let (text, position) = rollout, text != pathRollout {
            sink.report("\"rollout\" is \"\(text)\" but the file is under rollouts/\(pathRollout)/", at: position)
        }
        let phase = root.string("phase")
        if let (text, position) = phase, text != pathPhase {
            sink.report("\"phase\" is \"\(text)\" but the file is under approvals/\(pathPhase)/", at: position)
        }
        let role = root.string("role")
        let approver = root.string("approver")
        if let (text, position) = approver, !text.contains("@") {
            sink.report("approver \"\(text)\" is not an email address", at: position)
        }
        let plan = root.string("plan")
        if let (text, position) = plan, !isObjectID(text) {
            sink.report(
                "\"plan\" must be the git blob id of plan.json (40 hex digits, `git hash-object plan.json`)",
                at: position)
        }
        let comment = root.string("comment", required: false)?.0
        guard sink.diagnostics.count == before, let rollout, let phase, let role, let approver, let plan else {
            return nil
        }
        return ApprovalRecord(
            rollout: rollout.0, phase: phase.0, role: role.0, approver: approver.0,
            plan: plan.0.lowercased(), comment: comment)
    }

    static func isObjectID(_ text: String) -> Bool {
        (text.utf8.count == 40 || text.utf8.count == 64) && text.allSatisfy(\.isHexDigit)
    }
}

/// `policies/approvers.json` (SPEC §4.2).
public struct ApproversPolicy: Equatable, Sendable {
    public enum Identity: String, Equatable, Sendable {
        case author
        case sshSignature = "ssh-signature"
    }

    public var protectedBranch: String
    public var identity: Identity
    public var forbidSelfApproval: Bool
    /// The roles that must approve a change of the policy (§4.3); a role listed twice needs two people.
    public var policyApprovals: [String]
    /// Environment → roles every phase raising exposure there needs, whatever its plan lists (§4.2).
    public var environmentApprovals: [String: [String]]
    /// Role → member emails.
    public var roles: [String: [String]]

    public init(
        protectedBranch: String = RepositoryLayout.defaultProtectedBranch, identity: Identity = .author,
        forbidSelfApproval: Bool = false, policyApprovals: [String] = [],
        environmentApprovals: [String: [String]] = [:], roles: [String: [String]]
    ) {
        self.protectedBranch = protectedBranch
        self.identity = identity
        self.forbidSelfApproval = forbidSelfApproval
        self.policyApprovals = policyApprovals
        self.environmentApprovals = environmentApprovals
        self.roles = roles
    }

    public func isMember(_ email: String, of role: String) -> Bool {
        roles[role]?.contains { $0.caseInsensitiveEquals(email) } ?? false
    }

    static let fields = [
        "apiVersion", "protectedBranch", "identity", "forbidSelfApproval", "policyApprovals",
        "environments", "roles",
    ]

    public static func decode(_ json: JSONValue, sink: DiagnosticSink) -> ApproversPolicy? {
        guard let root = ObjectReader(json, sink: sink, name: "the approvers policy", allowed: fields) else {
            return nil
        }
        let before = sink.diagnostics.count
        Names.checkAPIVersion(root)
        let branch = root.string("protectedBranch", required: false)
        if let (text, position) = branch, text.isEmpty || text.contains(" ") || text.hasPrefix("-") {
            sink.report("protectedBranch \"\(text)\" is not a branch name", at: position)
        }
        let identity =
            root.choice("identity", ["author", "ssh-signature"]).flatMap { Identity(rawValue: $0.0) } ?? .author
        let forbid = root.bool("forbidSelfApproval") ?? false
        var roles: [String: [String]] = [:]
        if let field = root["roles"] {
            if case .object(let members) = field.kind {
                for member in members {
                    if !Names.isValid(member.key) {
                        sink.report(
                            "role name \"\(member.key)\" does not match \(Names.patternDescription)",
                            at: member.keyPosition)
                    }
                    guard case .array(let emails) = member.value.kind else {
                        sink.report(
                            "role \"\(member.key)\" must list member emails in an array, found "
                                + "\(member.value.typeName)",
                            at: member.value)
                        continue
                    }
                    var list: [String] = []
                    for email in emails {
                        guard case .string(let text) = email.kind, text.contains("@") else {
                            sink.report("members of role \"\(member.key)\" must be email strings", at: email)
                            continue
                        }
                        list.append(text)
                    }
                    roles[member.key] = list
                }
            } else {
                sink.report("\"roles\" must be an object of role → member emails, found \(field.typeName)", at: field)
            }
        } else {
            sink.report("the approvers policy is missing the required field \"roles\"", at: json)
        }
        func knownRoles(_ list: [(String, SourcePosition)], _ what: String) -> [String] {
            for (role, position) in list where roles[role] == nil && !roles.isEmpty {
                sink.report("\(what) names role \"\(role)\", which \"roles\" does not define", at: position)
            }
            return list.map(\.0)
        }
        var policyApprovals: [String] = []
        if root["policyApprovals"] == nil {
            sink.report(
                "the approvers policy is missing the required field \"policyApprovals\": the roles that must "
                    + "approve a change of policies/ (SPEC §4.3), for example [\"engineering-lead\", \"sre\"]", at: json
            )
        } else if let list = root.strings("policyApprovals") {
            if list.isEmpty, let field = root["policyApprovals"] {
                sink.report(
                    "\"policyApprovals\" must name at least one role: an empty list would let any change of "
                        + "\(RepositoryLayout.policiesPrefix) come into force unapproved", at: field)
            }
            policyApprovals = knownRoles(list, "policyApprovals")
        }
        var environments: [String: [String]] = [:]
        if let field = root["environments"] {
            if case .object(let members) = field.kind {
                for member in members {
                    guard
                        let rule = ObjectReader(
                            member.value, sink: sink, name: "environment \"\(member.key)\"",
                            allowed: ["approvals"])
                    else { continue }
                    if let list = rule.strings("approvals") {
                        environments[member.key] = knownRoles(list, "environments.\(member.key).approvals")
                    }
                }
            } else {
                sink.report(
                    "\"environments\" must be an object of environment → {\"approvals\": [roles]}, "
                        + "found \(field.typeName)", at: field)
            }
        }
        guard sink.diagnostics.count == before else { return nil }
        return ApproversPolicy(
            protectedBranch: RepositoryLayout.protectedBranch(branch?.0), identity: identity,
            forbidSelfApproval: forbid, policyApprovals: policyApprovals,
            environmentApprovals: environments, roles: roles)
    }
}

/// `policies/approvals/<any>.json`: an approval of a policy change, bound to its digest (SPEC §4.3).
public struct PolicyApprovalRecord: Equatable, Sendable {
    /// The policy digest approved (`git ls-tree -r <commit> -- policies | grep -v $'\tpolicies/approvals/' | sha256sum`).
    public var policy: String
    public var role: String
    public var approver: String
    public var comment: String?

    public init(policy: String, role: String, approver: String, comment: String? = nil) {
        self.policy = policy
        self.role = role
        self.approver = approver
        self.comment = comment
    }

    static let fields = ["apiVersion", "policy", "role", "approver", "comment"]

    public static func decode(_ json: JSONValue, sink: DiagnosticSink) -> PolicyApprovalRecord? {
        guard let root = ObjectReader(json, sink: sink, name: "the policy approval", allowed: fields) else {
            return nil
        }
        let before = sink.diagnostics.count
        Names.checkAPIVersion(root)
        let policy = root.string("policy")
        if let (text, position) = policy, !(text.utf8.count == 64 && text.allSatisfy(\.isHexDigit)) {
            sink.report(
                "\"policy\" must be the policy digest (64 hex digits, as `rolloutctl validate` prints it)",
                at: position)
        }
        let role = root.string("role")
        let approver = root.string("approver")
        if let (text, position) = approver, !text.contains("@") {
            sink.report("approver \"\(text)\" is not an email address", at: position)
        }
        let comment = root.string("comment", required: false)?.0
        guard sink.diagnostics.count == before, let policy, let role, let approver else { return nil }
        return PolicyApprovalRecord(policy: policy.0.lowercased(), role: role.0, approver: approver.0, comment: comment)
    }
}

/// `policies/health/<name>.json`: a reusable set of checks for `health.use`.
public struct HealthSet: Equatable, Sendable {
    public var checks: [HealthCheck]

    public static func decode(_ json: JSONValue, sink: DiagnosticSink) -> HealthSet? {
        guard
            let root = ObjectReader(
                json, sink: sink, name: "the health set", allowed: ["apiVersion", "description", "checks"])
        else { return nil }
        let before = sink.diagnostics.count
        Names.checkAPIVersion(root)
        _ = root.string("description", required: false)
        let checks = root.array("checks").map { Plan.decodeChecks($0, sink: sink) } ?? []
        guard sink.diagnostics.count == before else { return nil }
        return HealthSet(checks: checks)
    }
}

extension String {
    func caseInsensitiveEquals(_ other: String) -> Bool {
        lowercased() == other.lowercased()
    }
}
