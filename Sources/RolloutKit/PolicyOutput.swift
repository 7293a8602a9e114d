import Foundation
import RolloutCore
import RolloutGit

/// How `validate`, `plan` and `reconcile` show the policy in force and a pending proposal (SPEC §4.3).
extension PolicyState {
    /// `policies at 3f2a1c9 (digest 8c1e…) not in force: needs approval from engineering-lead, sre`.
    public var pendingSentence: String? {
        guard let pending else { return nil }
        let roles = pending.missing.isEmpty ? "its approvals" : pending.missing.joined(separator: ", ")
        return
            "policies at \(pending.point.commit.prefix(7)) (digest \(pending.point.digest.prefix(8))…) not in force: "
            + "needs approval from \(roles)"
    }

    /// `"policy": {"inForce": {"commit", "digest"}, "pending": {…} | null}` of `plan --json`.
    public var json: JSONOutput {
        .object([
            ("inForce", inForce.map(\.json) ?? .null),
            ("root", root.map(\.json) ?? .null),
            (
                "pending",
                pending.map { pending in
                    .object([
                        ("commit", .string(pending.point.commit)),
                        ("digest", .string(pending.point.digest)),
                        ("missing", .array(pending.missing.map { .string($0) })),
                        ("approvals", .array(pending.approvals.map(\.json))),
                    ])
                } ?? .null
            ),
        ])
    }

    /// Lines for human output: what is in force, and what waits for whom, with every approval's reason.
    public func humanLines(style: Style, showInForce: Bool = false) -> [String] {
        var lines: [String] = []
        if let inForce {
            guard showInForce else { return pendingLines(style: style) }
            lines.append(
                style.dim("Policy in force: \(inForce.commit.prefix(12)) (digest \(inForce.digest.prefix(16))…)"))
        } else {
            lines.append(
                style.yellow("warning: ") + "no policy in force: no commit of this branch holds "
                    + "\(RepositoryLayout.approvers), so no approval counts")
        }
        return lines + pendingLines(style: style)
    }

    private func pendingLines(style: Style) -> [String] {
        var lines: [String] = []
        if let sentence = pendingSentence, let pending {
            lines.append(
                style.yellow("warning: ") + sentence + "; until then the policy in force governs every rollout")
            for approval in pending.approvals {
                let who = "\(approval.role ?? "?")=\(approval.approver ?? "?")"
                if approval.counted {
                    lines.append(
                        "    \(style.green("✓")) \(who) (\(approval.path), commit "
                            + "\((approval.commit ?? "").prefix(12)))"
                    )
                } else {
                    lines.append("    \(style.red("✗")) \(who) (\(approval.path)): \(approval.reason ?? "not counted")")
                }
            }
        }
        return lines
    }
}

extension PolicyPoint {
    var json: JSONOutput {
        .object([("commit", .string(commit)), ("digest", .string(digest))])
    }
}
