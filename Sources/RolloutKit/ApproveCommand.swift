import Foundation
import RolloutAdapters
import RolloutCore
import RolloutGit

/// `rolloutctl approve`: writes an approval file into the work tree, bound to the current plan.
public struct ApproveResult: Sendable {
    public var path: String
    public var planBlob: String
    public var record: ApprovalRecord
    public var warnings: [String]
    public var signed: Bool
    public var protectedBranch: String

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public static func run(
        repositoryPath: String, rollout: String, phase: String, role: String,
        approver: String?, comment: String?
    ) throws -> ApproveResult {
        let repository = try GitRepository(path: repositoryPath)
        guard let workdir = repository.workdir else {
            throw Failure(
                description: "\(repositoryPath) is a bare repository; run approve in a clone with a work tree")
        }
        guard Names.isValid(rollout) else {
            throw Failure(description: "rollout name \"\(rollout)\" does not match \(Names.patternDescription)")
        }
        let planPath = RepositoryLayout.planPath(rollout: rollout)
        guard let planData = FileManager.default.contents(atPath: workdir + planPath) else {
            throw Failure(description: "\(planPath) does not exist in \(workdir); check the rollout name")
        }
        let planBytes = [UInt8](planData)
        let planBlob = GitRepository.blobID(of: planBytes)
        var warnings: [String] = []

        // Check the phase and role against the work tree's plan and policy.
        let sink = DiagnosticSink(path: planPath)
        guard let json = try? JSONParser.parse(planBytes), let plan = Plan.decode(json, sink: sink) else {
            throw Failure(description: "\(planPath) is invalid; run `rolloutctl validate` first")
        }
        guard plan.phaseIndex(named: phase) != nil else {
            let names = plan.phases.map(\.name).joined(separator: ", ")
            throw Failure(description: "the plan has no phase \"\(phase)\" (phases: \(names))")
        }
        var policy: ApproversPolicy?
        if let data = FileManager.default.contents(atPath: workdir + RepositoryLayout.approvers),
            let json = try? JSONParser.parse([UInt8](data))
        {
            policy = ApproversPolicy.decode(json, sink: DiagnosticSink(path: RepositoryLayout.approvers))
        }
        let phaseIndex = plan.phaseIndex(named: phase) ?? 0
        let required = ApprovalRules.requiredRoles(plan: plan, phaseIndex: phaseIndex, policy: policy)
        if !required.contains(role) {
            let roles = required.isEmpty ? "none" : required.joined(separator: ", ")
            throw Failure(description: "phase \(phase) does not require role \"\(role)\" (it requires: \(roles))")
        }
        guard let email = approver ?? repository.configString("user.email"), !email.isEmpty else {
            throw Failure(description: "no approver: pass --approver EMAIL or set `git config user.email`")
        }
        if let policy, !policy.isMember(email, of: role) {
            warnings.append(
                "\(email) is not a member of role \"\(role)\" in \(RepositoryLayout.approvers); "
                    + "the approval will not count")
        }
        let branch = RepositoryLayout.protectedBranch(policy?.protectedBranch)
        if let tip = try? repository.resolveCommit(branch),
            let committed = try? repository.blobID(atPath: planPath, inCommit: tip),
            committed.description != planBlob
        {
            warnings.append(
                "\(RepositoryLayout.planFile) in the work tree differs from \(branch); "
                    + "this approval binds to the work tree's plan "
                    + "(\(planBlob.prefix(12))) and counts only once that plan is on \(branch)")
        }

        let record = ApprovalRecord(
            rollout: rollout, phase: phase, role: role, approver: email, plan: planBlob,
            comment: comment)
        let relative = RepositoryLayout.approvalPath(
            rollout: rollout, phase: phase,
            file: "\(role)-\(fileName(email)).json")
        let body =
            JSONOutput.members([
                ("apiVersion", .string(Names.apiVersion)), ("rollout", .string(rollout)), ("phase", .string(phase)),
                ("role", .string(role)), ("approver", .string(email)), ("plan", .string(planBlob)),
                ("comment", .string(comment)),
            ]).render() + "\n"
        try write(
            Data(body.utf8), workdir: workdir, relative: relative,
            same: [("approver", email), ("role", role), ("rollout", rollout), ("phase", phase)])
        return ApproveResult(
            path: relative, planBlob: planBlob, record: record, warnings: warnings,
            signed: policy?.identity == .sshSignature, protectedBranch: branch)
    }

    /// The whole approver address as a safe file name, one name per address (SPEC §6 [r3]):
    /// ASCII letters, digits and `. _ + - @` as they are, every other byte as `%XX` (`%` too), so
    /// `dana@example.com` and `dana@sre.example.net` never share a file, and no name holds a `/`.
    public static func fileName(_ email: String) -> String {
        var name = ""
        for byte in email.utf8 {
            let safe =
                (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                || "._+-@".utf8.contains(byte)
            name += safe ? String(UnicodeScalar(byte)) : String(format: "%%%02X", byte)
        }
        return name
    }

    /// Writes an approval file inside the work tree (`rollouts/` or `policies/approvals/`, no folder
    /// on the way a symlink); an existing file is replaced only when its `same` fields are equal.
    static func write(_ data: Data, workdir: String, relative: String, same: [(String, String)]) throws {
        do {
            try WorkTreeFile.write(
                data, root: workdir, relative: relative,
                inside: [RepositoryLayout.rolloutsPrefix, RepositoryLayout.policyApprovalsPrefix]
            ) { existing in
                guard let json = try? JSONParser.parse([UInt8](existing)), case .object(let members) = json.kind
                else { return "it is not an approval file" }
                for (field, expected) in same {
                    guard case .string(let value)? = members.first(where: { $0.key == field })?.value.kind,
                        value == expected
                    else {
                        let held = members.first { $0.key == field }.flatMap { member -> String? in
                            if case .string(let value) = member.value.kind { return value }
                            return nil
                        }
                        return "it holds \(field) \(held.map { "\"\($0)\"" } ?? "none"), not \"\(expected)\" "
                            + "(an approval is replaced only by the same approver, role and phase)"
                    }
                }
                return nil
            }
        } catch let refusal as WorkTreeFile.Refusal {
            throw Failure(description: refusal.description)
        }
    }

    public func human(style: Style) -> String {
        var lines = warnings.map { style.yellow("warning: ") + $0 }
        lines.append(
            style.green("Wrote \(path)") + " (\(record.approver) approves \(record.rollout)/\(record.phase) as "
                + "\(record.role), plan \(planBlob.prefix(12))).")
        let commit =
            signed
            ? "git commit -S -m \"Approve \(record.rollout) \(record.phase) as \(record.role)\"   "
                + "# the policy requires an SSH signature (gpg.format=ssh)"
            : "git commit -m \"Approve \(record.rollout) \(record.phase) as \(record.role)\""
        lines += Self.nextSteps(
            branch: "approve/\(record.rollout)-\(record.phase)-\(record.role)", path: path,
            commit: commit, signed: signed, protectedBranch: protectedBranch)
        return lines.joined(separator: "\n")
    }

    /// The pull-request steps after writing an approval file (rollout phase or policy).
    static func nextSteps(
        branch: String, path: String, commit: String, signed: Bool,
        protectedBranch: String
    ) -> [String] {
        [
            "Next steps:", "  git switch -c \(branch)", "  git add \(path)", "  " + commit, "  git push -u origin HEAD",
            "  then open a pull request into \(protectedBranch) and merge it"
                + (signed ? " with a merge commit (a squash replaces your signature)." : "."),
        ]
    }
}

/// `rolloutctl approve --policy`: writes an approval of the policy change at HEAD, bound to its digest.
public struct PolicyApproveResult: Sendable {
    public var path: String
    public var record: PolicyApprovalRecord
    public var warnings: [String]
    public var signed: Bool
    public var protectedBranch: String

    public static func run(
        repositoryPath: String, role: String, approver: String?,
        comment: String?
    ) throws -> PolicyApproveResult {
        let repository = try GitRepository(path: repositoryPath)
        guard let workdir = repository.workdir else {
            throw ApproveResult.Failure(
                description: "\(repositoryPath) is a bare repository; run approve in a clone with a work tree")
        }
        let head = try repository.head()
        let headPolicy = try RepositoryReader.snapshot(repository: repository, commit: head).policySet
        let loaded = try RepositoryReader.load(repository: repository, ref: nil, cacheFile: nil)
        if loaded.policy.inForce?.digest == headPolicy.digest {
            throw ApproveResult.Failure(
                description: "the policy at HEAD (digest \(headPolicy.digest.prefix(12))…) is the "
                    + "policy in force on \(loaded.ref): there is no change to approve; "
                    + "check out the branch that changes \(RepositoryLayout.policiesPrefix)")
        }
        guard let email = approver ?? repository.configString("user.email"), !email.isEmpty else {
            throw ApproveResult.Failure(
                description: "no approver: pass --approver EMAIL or set `git config user.email`")
        }
        var warnings: [String] = []
        let inForce = loaded.policy.inForceSet?.approvers
        if let inForce {
            if !inForce.policyApprovals.contains(role) {
                warnings.append(
                    "role \"\(role)\" is not among the policyApprovals in force "
                        + "(\(inForce.policyApprovals.joined(separator: ", "))); the approval will not count")
            } else if !inForce.isMember(email, of: role) {
                warnings.append(
                    "\(email) is not a member of role \"\(role)\" in the policy in force; the approval will not count")
            }
        }
        let record = PolicyApprovalRecord(policy: headPolicy.digest, role: role, approver: email, comment: comment)
        let relative =
            RepositoryLayout.policyApprovalsPrefix
            + "\(role)-\(ApproveResult.fileName(email))-\(headPolicy.digest.prefix(8)).json"
        var object: [(String, JSONOutput?)] = [
            ("apiVersion", .string(Names.apiVersion)), ("policy", .string(record.policy)), ("role", .string(role)),
            ("approver", .string(email)),
        ]
        if let comment { object.append(("comment", .string(comment))) }
        try ApproveResult.write(
            Data((JSONOutput.members(object).render() + "\n").utf8), workdir: workdir, relative: relative,
            same: [("approver", email), ("role", role), ("policy", record.policy)])
        return PolicyApproveResult(
            path: relative, record: record, warnings: warnings,
            signed: inForce?.identity == .sshSignature, protectedBranch: loaded.ref)
    }

    public func human(style: Style) -> String {
        var lines = warnings.map { style.yellow("warning: ") + $0 }
        lines.append(
            style.green("Wrote \(path)") + " (\(record.approver) approves the policy with digest "
                + "\(record.policy.prefix(12))… as \(record.role)).")
        lines.append(
            "Check the digest:  git ls-tree -r HEAD -- \(RepositoryLayout.policiesFolder) "
                + "| grep -v $'\\t\(RepositoryLayout.policyApprovalsPrefix)' | sha256sum")
        lines += ApproveResult.nextSteps(
            branch: "approve/policy-\(record.policy.prefix(8))-\(record.role)", path: path,
            commit:
                "git commit \(signed ? "-S " : "")-m \"Approve policy \(record.policy.prefix(8)) as \(record.role)\"",
            signed: signed, protectedBranch: protectedBranch)
        return lines.joined(separator: "\n")
    }
}
