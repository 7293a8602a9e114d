import Foundation
import RolloutCore
import RolloutGit
import RolloutAdapters

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

    public static func run(repositoryPath: String, rollout: String, phase: String, role: String,
                           approver: String?, comment: String?) throws -> ApproveResult {
        let repository = try GitRepository(path: repositoryPath)
        guard let workdir = repository.workdir else {
            throw Failure(description: "\(repositoryPath) is a bare repository; run approve in a clone with a work tree")
        }
        guard Names.isValid(rollout) else {
            throw Failure(description: "rollout name \"\(rollout)\" does not match \(Names.patternDescription)")
        }
        let planPath = workdir + "rollouts/\(rollout)/plan.json"
        guard let planData = FileManager.default.contents(atPath: planPath) else {
            throw Failure(description: "rollouts/\(rollout)/plan.json does not exist in \(workdir); check the rollout name")
        }
        let planBytes = [UInt8](planData)
        let planBlob = GitRepository.blobID(of: planBytes)
        var warnings: [String] = []

        // Check the phase and role against the work tree's plan and policy.
        let sink = DiagnosticSink(path: "rollouts/\(rollout)/plan.json")
        guard let json = try? JSONParser.parse(planBytes), let plan = Plan.decode(json, sink: sink) else {
            throw Failure(description: "rollouts/\(rollout)/plan.json is invalid; run `rolloutctl validate` first")
        }
        guard let target = plan.phases.first(where: { $0.name == phase }) else {
            let names = plan.phases.map(\.name).joined(separator: ", ")
            throw Failure(description: "the plan has no phase \"\(phase)\" (phases: \(names))")
        }
        if !target.approvals.contains(role) {
            let roles = target.approvals.isEmpty ? "none" : target.approvals.joined(separator: ", ")
            throw Failure(description: "phase \(phase) does not require role \"\(role)\" (it requires: \(roles))")
        }
        guard let email = approver ?? repository.configString("user.email"), !email.isEmpty else {
            throw Failure(description: "no approver: pass --approver EMAIL or set `git config user.email`")
        }
        var policy: ApproversPolicy?
        if let data = FileManager.default.contents(atPath: workdir + ApproversPolicy.path),
           let json = try? JSONParser.parse([UInt8](data)) {
            policy = ApproversPolicy.decode(json, sink: DiagnosticSink(path: ApproversPolicy.path))
        }
        if let policy, !policy.isMember(email, of: role) {
            warnings.append("\(email) is not a member of role \"\(role)\" in \(ApproversPolicy.path); the approval will not count")
        }
        let branch = policy?.protectedBranch ?? "main"
        if let tip = try? repository.resolveCommit(branch),
           let committed = try? repository.blobID(atPath: "rollouts/\(rollout)/plan.json", inCommit: tip),
           committed.description != planBlob {
            warnings.append("plan.json in the work tree differs from \(branch); this approval binds to the work tree's plan "
                + "(\(planBlob.prefix(12))) and counts only once that plan is on \(branch)")
        }

        let record = ApprovalRecord(rollout: rollout, phase: phase, role: role, approver: email, plan: planBlob,
                                    comment: comment)
        let localPart = email.split(separator: "@").first.map(String.init) ?? email
        let slug = localPart.lowercased().map { $0.isLetter || $0.isNumber ? $0 : "-" }
        let relative = "rollouts/\(rollout)/approvals/\(phase)/\(role)-\(String(slug)).json"
        var object: [(String, String)] = [
            ("apiVersion", Names.apiVersion), ("rollout", rollout), ("phase", phase), ("role", role),
            ("approver", email), ("plan", planBlob),
        ]
        if let comment { object.append(("comment", comment)) }
        let body = "{\n" + object.map { "  \(JSONOutput.quote($0.0)): \(JSONOutput.quote($0.1))" }.joined(separator: ",\n") + "\n}\n"
        let full = workdir + relative
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try AtomicFile.write(Data(body.utf8), to: full)
        return ApproveResult(path: relative, planBlob: planBlob, record: record, warnings: warnings,
                             signed: policy?.identity == .sshSignature, protectedBranch: branch)
    }

    public func human(style: Style) -> String {
        var lines = warnings.map { style.yellow("warning: ") + $0 }
        lines.append(style.green("Wrote \(path)") + " (\(record.approver) approves \(record.rollout)/\(record.phase) as "
            + "\(record.role), plan \(planBlob.prefix(12))).")
        lines.append("Next steps:")
        lines.append("  git switch -c approve/\(record.rollout)-\(record.phase)-\(record.role)")
        lines.append("  git add \(path)")
        if signed {
            lines.append("  git commit -S -m \"Approve \(record.rollout) \(record.phase) as \(record.role)\"   "
                + "# the policy requires an SSH signature (gpg.format=ssh)")
        } else {
            lines.append("  git commit -m \"Approve \(record.rollout) \(record.phase) as \(record.role)\"")
        }
        lines.append("  git push -u origin HEAD")
        lines.append("  then open a pull request into \(protectedBranch) and merge it"
            + (signed ? " with a merge commit (a squash replaces your signature)." : "."))
        return lines.joined(separator: "\n")
    }
}
