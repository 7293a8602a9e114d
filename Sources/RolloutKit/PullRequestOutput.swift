import Foundation
import RolloutCore

/// Human, JSON and Markdown renderings of `plan --base` (SPEC §6.1).
extension PullRequestReport {
    /// `{"formatVersion": "1.0", "base": <plan document>, "merged": <plan document>}`, plus the names the
    /// branch affects (a 1.x addition).
    public func json() -> String {
        var members: [(String, JSONOutput)] = [
            ("formatVersion", .string("1.0")),
            ("base", before.jsonDocument),
            ("merged", after.jsonDocument),
            ("mergeCommit", .string(mergeCommit)),
            ("affected", .array(affected.map { .string($0.name) })),
        ]
        if let backtest { members.append(("backtest", backtestJSON(backtest))) }
        return JSONOutput.object(members).render()
    }

    /// `"backtest"` (with `--metrics http…`): the window, the requests, and each changed check in each phase,
    /// its `before` and `after` rows as `backtest --json` shows a row (null: absent on that side).
    func backtestJSON(_ backtest: PullRequestBacktestWindow) -> JSONOutput {
        let window = backtest.window
        return .members([
            (
                "window",
                .members([
                    ("start", .string(RFC3339.format(window.start))), ("end", .string(RFC3339.format(window.end))),
                    ("stepSeconds", .int(window.step)), ("steps", .int(window.count)),
                    ("sinceSeconds", .int(backtest.since)),
                ])
            ),
            ("requests", .int(backtest.requests)),
            (
                "checks",
                .array(
                    affected.flatMap { rollout in
                        rollout.backtests.map { pair -> JSONOutput in
                            JSONOutput.members([
                                ("rollout", .string(rollout.name)), ("check", .string(pair.check)),
                                ("phase", .string(pair.phase)), ("environment", .string(pair.environment)),
                                (
                                    "before",
                                    pair.before.map { BacktestReport.rowJSON($0, since: backtest.since) } ?? .null
                                ),
                                (
                                    "after",
                                    pair.after.map { BacktestReport.rowJSON($0, since: backtest.since) } ?? .null
                                ),
                                ("change", .string(AffectedRollout.backtestChange(pair))),
                            ])
                        }
                    })
            ),
        ])
    }

    /// `merging 1a2b3c4 into main (9f8e7d6)`.
    var mergeSentence: String {
        let what = "merging \(head) (\(headCommit.prefix(7))) into \(base) (\(baseCommit.prefix(7)))"
        return alreadyMerged ? what + ": already merged, nothing would change" : what
    }

    /// `affects 2 rollouts and proposes a policy change; 5 unaffected.`
    var summarySentence: String {
        var text = "affects \(affected.count) rollout\(affected.count == 1 ? "" : "s")"
        if policyChange?.digest != nil { text += " and proposes a policy change" }
        text += "; \(unaffected.count) unaffected"
        if let backtest {
            let checks = Set(affected.flatMap { rollout in rollout.backtests.map { rollout.name + "/" + $0.check } })
            text +=
                checks.isEmpty
                ? "; no health check changed to backtest"
                : "; backtested \(checks.count) changed check\(checks.count == 1 ? "" : "s") over "
                    + "\(BacktestReport.sinceText(backtest.since)) (\(backtest.requests) query_range request"
                    + "\(backtest.requests == 1 ? "" : "s"))"
        }
        return text
    }

    // MARK: Human

    public func human(style: Style) -> String {
        var lines: [String] = []
        lines.append(
            style.bold("Pull request: ") + mergeSentence + " (in memory), now \(RFC3339.format(after.now))")
        lines.append(summarySentence + ".")
        for error in after.policyErrors { lines.append(style.red("error: ") + error.description) }
        if let policyChange {
            lines.append("")
            lines += policyChange.humanLines(style: style)
        }
        for rollout in affected {
            lines.append("")
            var heading = style.bold(rollout.name)
            if let flag = rollout.flag { heading += " (\(flag))" }
            lines.append(heading + style.dim(": " + rollout.causes.joined(separator: ", ")))
            for row in rollout.rows() where row.before != row.after || row.always {
                lines.append("  \(row.label): \(row.before) → \(row.after)")
            }
            if let backtest {
                for group in rollout.backtestGroups() {
                    lines.append(
                        "  backtest \(group.pair.check) in \(group.phases.joined(separator: ", ")) "
                            + "(\(BacktestReport.sinceText(backtest.since))): "
                            + AffectedRollout.backtestChange(group.pair))
                }
            }
            for problem in rollout.invalidUnderProposal {
                lines.append(style.red("  invalid once the proposed policy is in force: ") + problem)
            }
            for line in rollout.madeStale {
                lines.append(
                    style.yellow("  made stale: ")
                        + "\(line.phase) \(line.role) by \(line.approver): \(line.reason ?? "")")
            }
            for line in rollout.approvals where !rollout.madeStale.contains(line) {
                let new = line.inBranch ? " [in the branch]" : ""
                if line.counted {
                    lines.append(
                        style.green("  would count: ") + "\(line.phase) \(line.role) by \(line.approver)\(new)")
                } else {
                    lines.append(
                        style.red("  would not count: ")
                            + "\(line.phase) \(line.role) by \(line.approver)\(new): \(line.reason ?? "not counted")")
                }
            }
        }
        lines.append("")
        if !unaffected.isEmpty {
            lines.append(
                "\(unaffected.count) rollout\(unaffected.count == 1 ? "" : "s") unaffected by this branch: "
                    + Self.nameList(unaffected))
        }
        lines.append("After the merge: " + after.closingLine(style: Style(enabled: false)))
        return lines.joined(separator: "\n")
    }

    static func nameList(_ names: [String], limit: Int = 20) -> String {
        names.count <= limit
            ? names.joined(separator: ", ")
            : names.prefix(limit).joined(separator: ", ") + ", … (\(names.count - limit) more)"
    }

    // MARK: Markdown

    /// The most a comment may hold (SPEC §6.1; GitHub refuses comments over 65,536 characters).
    public static let markdownLimit = 60_000

    /// One document fit for a pull-request comment: summary line first, a table per affected rollout, long
    /// detail in `<details>`, no colour, at most `markdownLimit` characters (cut, saying so).
    public func markdown(limit: Int = PullRequestReport.markdownLimit) -> String {
        let plain = Style(enabled: false)
        var header = "**rolloutctl plan --base**: \(Markdown.text(mergeSentence)), \(Markdown.text(summarySentence)). "
        header += "After the merge: \(Markdown.text(after.closingLine(style: plain)))\n"
        for error in after.policyErrors { header += "\n> **error:** \(Markdown.text(error.description))\n" }
        if let policyChange { header += "\n" + policyChange.markdown() }
        var sections = affected.map { $0.markdown(backtestSince: backtest?.since) }
        var footer = ""
        if !unaffected.isEmpty {
            footer =
                "\n\(unaffected.count) rollout\(unaffected.count == 1 ? "" : "s") unaffected by this branch: "
                + Markdown.text(Self.nameList(unaffected)) + "\n"
        }
        footer += "\n<sub>Planned against the base's state, flags and metrics at \(RFC3339.format(after.now)); "
        footer += "merge `\(mergeCommit.prefix(12))` exists only in memory.</sub>\n"
        let full = header + sections.joined() + footer
        guard full.count > limit else { return full }
        // Cut at a rollout's section, saying so; the summary line and the policy change stay.
        var kept: [String] = []
        var size = header.count + footer.count
        func notice(_ left: Int) -> String {
            "\n> **Cut:** \(left) more affected rollout\(left == 1 ? "" : "s") not shown: a comment holds at most "
                + "\(limit) characters. Run `rolloutctl plan --base \(Markdown.text(base)) --ref "
                + "\(Markdown.text(head))` to see them all.\n"
        }
        let reserve = notice(sections.count).count
        for section in sections {
            guard size + section.count + reserve <= limit else { break }
            size += section.count
            kept.append(section)
        }
        sections.removeFirst(kept.count)
        let cut = header + kept.joined() + notice(sections.count) + footer
        return cut.count <= limit ? cut : String(cut.prefix(limit - 40)) + "\n\n(cut at \(limit) characters)\n"
    }
}

/// A row of the before → after table.
struct ComparisonRow {
    var label: String
    var before: String
    var after: String
    /// Shown even when unchanged (status, next phase).
    var always = false
}

extension AffectedRollout {
    func rows() -> [ComparisonRow] {
        var rows = [
            ComparisonRow(label: "status", before: Self.status(before), after: Self.status(after), always: true),
            ComparisonRow(
                label: "next phase", before: before?.nextPhase ?? "–", after: after?.nextPhase ?? "–", always: true),
            ComparisonRow(label: "next run", before: Self.nextRun(before), after: Self.nextRun(after), always: true),
            ComparisonRow(
                label: "coverage after the next run", before: Self.coverage(before), after: Self.coverage(after),
                always: true),
            ComparisonRow(label: "plan", before: Self.blob(before), after: Self.blob(after)),
            ComparisonRow(label: "blocked by", before: Self.blockers(before), after: Self.blockers(after)),
        ]
        for change in changedChecks {
            let queryChanged =
                change.before != nil && change.after != nil && change.before?.query != change.after?.query
            rows.append(
                ComparisonRow(
                    label: "check \(change.name)", before: Self.check(change.before),
                    after: Self.check(change.after) + (queryChanged ? " (query changed)" : "")))
        }
        var phases: [String] = []
        for entry in (after?.timeline ?? []) + (before?.timeline ?? []) where !phases.contains(entry.phase) {
            phases.append(entry.phase)
        }
        for phase in phases {
            rows.append(
                ComparisonRow(
                    label: "timeline \(phase)", before: Self.timeline(before, phase),
                    after: Self.timeline(after, phase),
                    always: true))
        }
        return rows
    }

    /// `max 0.02, on breach rollback, no data hold`, or `absent`.
    static func check(_ check: HealthCheck?) -> String {
        guard let check else { return "absent" }
        return "\(check.thresholdDescription), on breach \(check.onBreach.rawValue), no data \(check.onNoData.rawValue)"
    }

    static func status(_ report: RolloutReport?) -> String {
        guard let report else { return "absent" }
        return report.status.rawValue + (report.currentPhase.map { " at \($0)" } ?? "")
    }

    static func blob(_ report: RolloutReport?) -> String {
        report?.planBlob.map { String($0.prefix(7)) } ?? "–"
    }

    static func nextRun(_ report: RolloutReport?) -> String {
        guard let report, !report.changes.isEmpty else { return "no change" }
        return report.changes.map { change in
            change.human(flag: report.flag ?? report.name, phase: report.nextPhase, style: Style(enabled: false))
                .dropFirst(2).description
        }.joined(separator: "; ")
    }

    /// What each environment would be set to after the next run: the change's target, else the flag as it is.
    static func coverage(_ report: RolloutReport?) -> String {
        guard let report else { return "–" }
        var environments = report.actual
        for change in report.changes { environments[change.environment] = change.to }
        guard !environments.isEmpty else { return "none" }
        return environments.keys.sorted().map { name in
            let state = environments[name]!
            return "\(name) \(formatNumber(state.coverage))%" + (state.enabled ? "" : " (off)")
        }.joined(separator: ", ")
    }

    static func blockers(_ report: RolloutReport?) -> String {
        guard let report, !report.blockers.isEmpty else { return "nothing" }
        return report.blockers.map(\.detail).joined(separator: "; ")
    }

    static func timeline(_ report: RolloutReport?, _ phase: String) -> String {
        guard let report else { return "–" }
        if report.nextPhase == phase, report.changes.contains(where: { $0.reason == .advance }) {
            return "entered at the next run"
        }
        guard let entry = report.timeline.first(where: { $0.phase == phase }) else {
            return report.currentPhase == phase || report.status == .completed ? "entered" : "–"
        }
        let reasons = entry.waitingFor.isEmpty ? "" : " (\(entry.waitingFor.joined(separator: ", ")))"
        guard let start = entry.earliestStart else { return "blocked\(reasons)" }
        return "earliest \(RFC3339.minutes(start))\(reasons)"
    }

    /// Backtest rows of one check that share environment, queries and figures on both sides are one line.
    func backtestGroups() -> [(phases: [String], pair: CheckBacktest)] {
        var out: [(phases: [String], pair: CheckBacktest)] = []
        for pair in backtests {
            if let index = out.firstIndex(where: { Self.sameBacktest($0.pair, pair) }) {
                out[index].phases.append(pair.phase)
            } else {
                out.append(([pair.phase], pair))
            }
        }
        return out
    }

    static func sameBacktest(_ a: CheckBacktest, _ b: CheckBacktest) -> Bool {
        func same(_ x: BacktestRow?, _ y: BacktestRow?) -> Bool {
            guard let x, let y else { return x == nil && y == nil }
            return x.query == y.query && x.figures == y.figures && x.failed == y.failed
        }
        return a.check == b.check && a.environment == b.environment && same(a.before, b.before)
            && same(a.after, b.after)
    }

    /// What the branch changes in a check's backtest, figure by figure: `would have rolled back 3 times → 0
    /// times; held 2% → 0% of the time; breach episodes 5 → 1`.
    static func backtestChange(_ pair: CheckBacktest) -> String {
        let rows = [pair.before, pair.after].compactMap { $0 }
        func sides(_ text: (BacktestRow) -> String) -> String {
            "\(pair.before.map(text) ?? "absent") → \(pair.after.map(text) ?? "absent")"
        }
        var parts: [String] = []
        if rows.contains(where: { $0.check.onBreach == .rollback }) {
            parts.append("would have rolled back " + sides { BacktestReport.times($0.figures.rollbacks) })
        }
        if rows.contains(where: { $0.figures.heldSteps > 0 }) {
            parts.append("held " + sides { BacktestReport.percent($0.figures.heldShare) } + " of the time")
        }
        if rows.contains(where: { $0.check.onBreach == .notify }) {
            parts.append("would have notified " + sides { BacktestReport.times($0.figures.notifications) })
        }
        parts.append("breach episodes " + sides { "\($0.figures.episodes.count)" })
        if Set(rows.map(\.figures.noData)).count > 1 {
            parts.append("no data " + sides { BacktestReport.percent($0.figures.noDataShare) })
        }
        let unread = rows.reduce(0) { $0 + $1.failed.count }
        if unread > 0 {
            parts.append("\(unread) part\(unread == 1 ? "" : "s") of the window could not be read")
        }
        return parts.joined(separator: "; ")
    }

    func markdown(backtestSince: Int? = nil) -> String {
        var text = "\n### `\(name)`"
        if let flag { text += " (`\(flag)`)" }
        text += "\n\nChanged by the branch: \(Markdown.text(causes.joined(separator: ", ")))\n\n"
        text += "| | before | after merge |\n| --- | --- | --- |\n"
        for row in rows() where row.before != row.after || row.always {
            let changed = row.before != row.after
            let after = changed ? "**\(Markdown.text(row.after))**" : Markdown.text(row.after)
            text += "| \(Markdown.text(row.label)) | \(Markdown.text(row.before)) | \(after) |\n"
        }
        if let since = backtestSince, !backtests.isEmpty {
            text += "\n| backtest over \(BacktestReport.sinceText(since)) | phases | what the branch changes | before "
            text += "| after merge |\n| --- | --- | --- | --- | --- |\n"
            for group in backtestGroups() {
                let before = group.pair.before.map { BacktestReport.verdict($0, since: since) } ?? "absent"
                let after = group.pair.after.map { BacktestReport.verdict($0, since: since) } ?? "absent"
                text +=
                    "| \(Markdown.text(group.pair.check)) | \(Markdown.text(group.phases.joined(separator: ", "))) "
                    + "| \(Markdown.text(Self.backtestChange(group.pair))) | \(Markdown.text(before)) "
                    + "| \(before == after ? Markdown.text(after) : "**\(Markdown.text(after))**") |\n"
            }
        }
        for problem in invalidUnderProposal {
            text += "\n> **Invalid once the proposed policy is in force:** \(Markdown.text(problem))\n"
        }
        if !approvals.isEmpty || !madeStale.isEmpty {
            text += "\n| approval | approver | once merged |\n| --- | --- | --- |\n"
            for line in madeStale + approvals.filter({ !madeStale.contains($0) }) {
                let label = "\(line.phase) / \(line.role)" + (line.inBranch ? " (in the branch)" : "")
                let verdict =
                    line.counted
                    ? "counts"
                    : (madeStale.contains(line) ? "**made stale**: " : "does not count: ")
                        + Markdown.text(line.reason ?? "not counted")
                text += "| \(Markdown.text(label)) | \(Markdown.text(line.approver)) | \(verdict) |\n"
            }
        }
        if let after {
            let detail = after.humanLines(style: Style(enabled: false), mode: .plan).joined(separator: "\n")
            text += "\n<details><summary>The plan of \(Markdown.text(name)) after the merge</summary>\n\n"
            text += Markdown.codeBlock(detail) + "\n</details>\n"
        }
        return text
    }
}

extension PolicyChange {
    func humanLines(style: Style) -> [String] {
        var lines = [style.bold("Policy change") + (digest.map { " (digest \($0.prefix(12))…)" } ?? "")]
        if !files.isEmpty { lines.append("  files: " + files.joined(separator: ", ")) }
        for sentence in proposes { lines.append("  proposes: " + sentence) }
        if digest != nil {
            if inForceOnceMerged {
                lines.append(style.green("  in force once merged") + ": its approvals are in the branch")
            } else {
                lines.append(
                    style.yellow("  not in force once merged") + ": needs approval from "
                        + (missingRoles.isEmpty ? requiredRoles : missingRoles).joined(separator: ", ")
                        + " (policyApprovals of the policy in force: \(requiredRoles.joined(separator: ", ")))")
            }
        }
        for approval in approvals {
            let who = "\(approval.role ?? "?")=\(approval.approver ?? "?")"
            lines.append(
                approval.counted
                    ? "  policy approval counts: \(who)"
                    : "  policy approval does not count: \(who): \(approval.reason ?? "")")
        }
        for (rollout, problem) in invalidates {
            lines.append(style.red("  would make invalid: ") + "\(rollout): \(problem)")
        }
        return lines
    }

    func markdown() -> String {
        var text = "\n### Policy change\n\n| | |\n| --- | --- |\n"
        if let digest { text += "| proposes digest | `\(digest.prefix(16))…` |\n" }
        if !files.isEmpty { text += "| files | \(Markdown.text(files.joined(separator: ", "))) |\n" }
        if !proposes.isEmpty { text += "| proposes | \(proposes.map(Markdown.text).joined(separator: "<br>")) |\n" }
        if digest != nil {
            let state =
                inForceOnceMerged
                ? "in force once merged (its approvals are in the branch)"
                : "not in force once merged: needs approval from "
                    + (missingRoles.isEmpty ? requiredRoles : missingRoles).joined(separator: ", ")
            text += "| must approve | \(Markdown.text(requiredRoles.joined(separator: ", "))) |\n"
            text += "| once merged | \(Markdown.text(state)) |\n"
        }
        for approval in approvals {
            let who = "\(approval.role ?? "?") = \(approval.approver ?? "?")"
            let verdict = approval.counted ? "counts" : "does not count: \(approval.reason ?? "")"
            text += "| policy approval | \(Markdown.text(who)): \(Markdown.text(verdict)) |\n"
        }
        let invalid = invalidates.map { "\($0.rollout): \($0.problem)" }
        if !invalid.isEmpty {
            text += "| would make invalid | \(invalid.map(Markdown.text).joined(separator: "<br>")) |\n"
        }
        return text
    }
}

/// CommonMark text for comments: characters that would start markup or HTML, and table pipes, escaped.
enum Markdown {
    static func text(_ raw: String) -> String {
        var out = ""
        for character in redactingCredentials(raw) {
            switch character {
            case "\\", "`", "*", "_", "[", "]", "|", "#", "~": out += "\\\(character)"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "&": out += "&amp;"
            case "\n", "\r": out += " "
            default: out.append(character)
            }
        }
        return out
    }

    /// A URL's user information (`https://user:password@host`) replaced by `***`: a comment is public.
    static func redactingCredentials(_ text: String) -> String {
        text.replacing(/([a-zA-Z][a-zA-Z0-9+.-]*:\/\/)[^\/\s@]+@/) { match in "\(match.output.1)***@" }
    }

    /// A fenced code block whose fence is longer than any run of backticks in the text.
    static func codeBlock(_ raw: String) -> String {
        let text = redactingCredentials(raw)
        var longest = 0
        var run = 0
        for character in text {
            run = character == "`" ? run + 1 : 0
            longest = max(longest, run)
        }
        let fence = String(repeating: "`", count: max(3, longest + 1))
        return "\(fence)text\n\(text)\n\(fence)\n"
    }
}
