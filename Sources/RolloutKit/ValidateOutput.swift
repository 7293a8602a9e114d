import Foundation
import RolloutCore

/// `validate`'s outputs: the human screen, `--json`, `--format github` and `--format markdown` (SPEC §6.1 [r3]).
extension ValidateReport {
    public func human(style: Style) -> String {
        var lines = diagnostics.map { diagnostic in
            "\(style.bold("\(diagnostic.path):\(diagnostic.line):\(diagnostic.column):")) "
                + "\(style.red("error:")) \(diagnostic.message)"
        }
        lines += warnings.map {
            "\(style.bold("\($0.path):\($0.line):\($0.column):")) \(style.yellow("warning:")) \($0.message)"
        }
        lines.append("Policy digest at \(ref): \(policyDigest)")
        lines += policy.humanLines(style: style)
        let at = "\(ref) @ \(revision.prefix(12))"
        let counted =
            "\(rolloutCount) rollout\(rolloutCount == 1 ? "" : "s"), \(approvalCount) approval "
            + "file\(approvalCount == 1 ? "" : "s")"
        if isValid {
            lines.append(style.green("Valid:") + " \(counted), policies checked (\(at)).")
        } else {
            let files = Set(diagnostics.map(\.path)).count
            lines.append(
                style.red("Invalid:") + " \(diagnostics.count) error\(diagnostics.count == 1 ? "" : "s") in "
                    + "\(files) file\(files == 1 ? "" : "s") (\(counted); \(at)).")
        }
        return lines.joined(separator: "\n")
    }

    public func json() -> String {
        JSONOutput.object([
            ("formatVersion", .string("1.0")),
            ("ref", .string(ref)),
            ("revision", .string(revision)),
            ("valid", .bool(isValid)),
            ("errors", .array(diagnostics.map(\.json))),
            ("warnings", .array(warnings.map(\.json))),
            ("policyDigest", .string(policyDigest)),
            ("policy", policy.json),
            (
                "summary",
                .object([
                    ("rollouts", .int(rolloutCount)), ("approvals", .int(approvalCount)),
                    ("errors", .int(diagnostics.count)),
                ])
            ),
        ]).render()
    }

    /// The closing sentence, without colour: `Valid: 3 rollouts, …` or `Invalid: 2 errors in 1 file (…)`.
    var summary: String {
        let at = "\(ref) @ \(revision.prefix(12))"
        let counted =
            "\(rolloutCount) rollout\(rolloutCount == 1 ? "" : "s"), \(approvalCount) approval "
            + "file\(approvalCount == 1 ? "" : "s")"
        if isValid { return "Valid: \(counted), policies checked (\(at))." }
        let files = Set(diagnostics.map(\.path)).count
        return "Invalid: \(diagnostics.count) error\(diagnostics.count == 1 ? "" : "s") in "
            + "\(files) file\(files == 1 ? "" : "s") (\(counted); \(at))."
    }

    /// One GitHub Actions workflow command per line: `::error file=PATH,line=L,col=C::MESSAGE` for each error,
    /// `::warning …` for each warning, `::notice::` for the pending policy and the summary.
    public func github() -> String {
        var lines = diagnostics.map { WorkflowCommand.line("error", $0) }
        lines += warnings.map { WorkflowCommand.line("warning", $0) }
        if let pending = policy.pendingSentence {
            lines.append("::notice::" + WorkflowCommand.escapeData(pending))
        }
        lines.append("::notice::" + WorkflowCommand.escapeData(summary))
        return lines.joined(separator: "\n")
    }

    /// A pull-request comment: the summary first, then one table of every diagnostic.
    public func markdown(limit: Int = PullRequestReport.markdownLimit) -> String {
        var text = "**rolloutctl validate**: \(Markdown.text(summary))\n"
        if let pending = policy.pendingSentence { text += "\n> \(Markdown.text(pending))\n" }
        let rows =
            diagnostics.map { ("error", $0) } + warnings.map { ("warning", $0) }
        guard !rows.isEmpty else { return text }
        text += "\n| | file | line | column | message |\n| --- | --- | --- | --- | --- |\n"
        for (index, (kind, diagnostic)) in rows.enumerated() {
            let row =
                "| \(kind) | \(Markdown.text(diagnostic.path)) | \(diagnostic.line) | \(diagnostic.column) | "
                + "\(Markdown.text(diagnostic.message)) |\n"
            let notice =
                "\n> **Cut:** \(rows.count - index) more not shown (a comment holds at most \(limit) characters); "
                + "run `rolloutctl validate` to see them all.\n"
            if text.count + row.count + notice.count > limit {
                return text + notice
            }
            text += row
        }
        return text
    }
}

/// GitHub Actions workflow commands (`::error file=…,line=…,col=…::message`), escaped as the runner reads them:
/// `%`, CR and LF in the message; also `:` and `,` in property values.
public enum WorkflowCommand {
    public static func escapeData(_ text: String) -> String {
        text.replacingOccurrences(of: "%", with: "%25").replacingOccurrences(of: "\r", with: "%0D")
            .replacingOccurrences(of: "\n", with: "%0A")
    }

    public static func escapeProperty(_ text: String) -> String {
        escapeData(text).replacingOccurrences(of: ":", with: "%3A").replacingOccurrences(of: ",", with: "%2C")
    }

    static func line(_ command: String, _ diagnostic: Diagnostic) -> String {
        "::\(command) file=\(escapeProperty(diagnostic.path)),line=\(diagnostic.line),col=\(diagnostic.column)::"
            + escapeData(diagnostic.message)
    }
}

extension Diagnostic {
    var json: JSONOutput {
        .object([
            ("path", .string(path)), ("line", .int(line)), ("column", .int(column)), ("message", .string(message)),
        ])
    }
}
