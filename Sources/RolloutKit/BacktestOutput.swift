import Foundation
import RolloutCore

/// The renderings of a backtest (SPEC §6.2): the human screen, `--json`, `--format markdown`.
extension BacktestReport {
    // MARK: Words

    /// `14 min`, `3 h 20 min`, `2 d 4 h`, `45 s`.
    static func length(_ seconds: Int) -> String {
        if seconds < 60 { return "\(seconds) s" }
        let minutes = seconds / 60
        if minutes < 60 { return "\(minutes) min" }
        let hours = minutes / 60
        if hours < 48 { return minutes % 60 == 0 ? "\(hours) h" : "\(hours) h \(minutes % 60) min" }
        return hours % 24 == 0 ? "\(hours / 24) d" : "\(hours / 24) d \(hours % 24) h"
    }

    /// `12%`, `0.4%`, `<0.1%`, `0%`.
    static func percent(_ share: Double) -> String {
        let value = share * 100
        if value == 0 { return "0%" }
        if value < 0.1 { return "<0.1%" }
        if value < 10 { return formatNumber((value * 10).rounded() / 10) + "%" }
        return formatNumber(value.rounded()) + "%"
    }

    /// `30 days`, `1 day`, `36h`.
    public var sinceText: String { Self.sinceText(since) }

    static func sinceText(_ since: Int) -> String {
        if since % 86_400 == 0 { return since == 86_400 ? "1 day" : "\(since / 86_400) days" }
        return RolloutDuration.format(seconds: since)
    }

    static func times(_ count: Int) -> String { count == 1 ? "once" : "\(count) times" }

    /// What one row would have caused, in words: `would have rolled back 3 times in 30 days; first
    /// 2026-11-12 02:10 UTC, longest 14 min`, `would have held 12% of the time`, `never in breach`.
    public func verdict(_ row: BacktestRow) -> String { Self.verdict(row, since: since) }

    /// The verdict of a row of a backtest over `since` seconds.
    public static func verdict(_ row: BacktestRow, since: Int) -> String {
        let sinceText = Self.sinceText(since)
        let figures = row.figures
        var parts: [String] = []
        if figures.rollbacks > 0, let first = figures.firstRollback {
            let longest = figures.episodes.filter(\.rollsBack).map(\.seconds).max() ?? 0
            parts.append(
                "would have rolled back \(Self.times(figures.rollbacks)) in \(sinceText); first "
                    + "\(RFC3339.minutes(first)), longest \(Self.length(longest))")
        }
        if figures.heldSteps > 0 {
            parts.append("would have held \(Self.percent(figures.heldShare)) of the time")
        }
        if row.check.onBreach == .notify, figures.notifications > 0 {
            parts.append("would have notified \(Self.times(figures.notifications)) in \(sinceText)")
        }
        if figures.episodes.isEmpty { return "never in breach" }
        let episodes =
            "\(figures.episodes.count) breach episode\(figures.episodes.count == 1 ? "" : "s")"
            + (figures.firstStart.map { ", first \(RFC3339.minutes($0))" } ?? "")
            + ", longest \(Self.length(figures.longestSeconds))"
        if parts.isEmpty || figures.rollbacks == 0 { parts.append(episodes) }
        return parts.joined(separator: "; ")
    }

    /// Rows that share check, environment, window and figures are one line (`canary-10, canary-50`).
    public struct Group: Sendable {
        public var phases: [String]
        public var row: BacktestRow
    }

    public static func groups(_ rows: [BacktestRow]) -> [(check: HealthCheck, groups: [Group])] {
        var out: [(check: HealthCheck, groups: [Group])] = []
        for row in rows {
            if out.last?.check != row.check { out.append((row.check, [])) }
            if let index = out[out.count - 1].groups.firstIndex(where: {
                $0.row.query == row.query && $0.row.environment == row.environment && $0.row.figures == row.figures
            }) {
                out[out.count - 1].groups[index].phases.append(row.phase)
            } else {
                out[out.count - 1].groups.append(Group(phases: [row.phase], row: row))
            }
        }
        return out
    }

    /// `error-rate rolled back 3 times in exp-001-autosave`… or `no rollback check would have fired`.
    public var summaryLine: String {
        let rows = rollouts.flatMap(\.rows)
        let firing = rollouts.filter { $0.rows.contains { $0.figures.rollbacks > 0 } }
        let checks = Set(rollouts.flatMap { r in r.rows.map { r.name + "/" + $0.check.name } }).count
        var text =
            "Backtest of \(checks) check\(checks == 1 ? "" : "s") in \(rollouts.count) rollout"
            + "\(rollouts.count == 1 ? "" : "s") over \(sinceText): "
        if firing.isEmpty {
            text += "no rollback check would have fired"
        } else {
            text +=
                "\(firing.count) rollout\(firing.count == 1 ? "" : "s") would have rolled back ("
                + firing.map(\.name).joined(separator: ", ") + ")"
        }
        let failed = rows.reduce(0) { $0 + $1.failed.count }
        if failed > 0 { text += "; \(failed) part\(failed == 1 ? "" : "s") of the window could not be read" }
        if errorCount > 0 { text += "; \(errorCount) error\(errorCount == 1 ? "" : "s")" }
        return text + "."
    }

    // MARK: Human

    public func human(style: Style) -> String {
        var lines: [String] = []
        lines.append(
            style.bold("Backtest") + " \(RFC3339.minutes(window.start)) → \(RFC3339.minutes(window.end)), "
                + "every \(RolloutDuration.format(seconds: window.step)) (\(window.count) steps), "
                + "\(ref)@\(revision.prefix(7)), \(requests) query_range request\(requests == 1 ? "" : "s")")
        for rollout in rollouts {
            lines.append("")
            lines.append(style.bold(rollout.name) + (rollout.flag.map { " (\($0))" } ?? ""))
            for error in rollout.errors { lines.append("  " + style.red("error: ") + error) }
            for (check, groups) in Self.groups(rollout.rows) {
                let onNoData = check.onNoData == .hold ? "" : ", no data: \(check.onNoData.rawValue)"
                lines.append("  \(check.name) (\(check.thresholdDescription), \(check.onBreach.rawValue)\(onNoData))")
                let width = groups.map { $0.phases.joined(separator: ", ").count }.max() ?? 0
                for group in groups {
                    let phases = group.phases.joined(separator: ", ")
                    let padded = phases + String(repeating: " ", count: max(0, width - phases.count))
                    var text = verdict(group.row)
                    if group.row.figures.rollbacks > 0 {
                        text = style.red(text)
                    } else if group.row.figures.heldSteps > 0 || !group.row.figures.episodes.isEmpty {
                        text = style.yellow(text)
                    } else {
                        text = style.green(text)
                    }
                    var line = "    \(padded)  \(text)"
                    if group.row.figures.noData > 0 {
                        line += style.dim(" · \(Self.percent(group.row.figures.noDataShare)) no data")
                    }
                    lines.append(line)
                    for failure in group.row.failed {
                        lines.append(
                            "      " + style.yellow("unread: ") + "\(RFC3339.minutes(failure.start)) → "
                                + "\(RFC3339.minutes(failure.end)): \(failure.reason)")
                    }
                }
            }
            if let first = rollout.rows.compactMap(\.figures.firstRollback).min() {
                lines.append("  the first rollback, \(RFC3339.minutes(first)), would have ended the rollout")
            }
        }
        lines.append("")
        lines.append(summaryLine)
        return lines.joined(separator: "\n")
    }

    // MARK: JSON

    public func json() -> String { jsonDocument.render() }

    var jsonDocument: JSONOutput {
        let rows = rollouts.flatMap(\.rows)
        return .members([
            ("formatVersion", .string("1.0")), ("revision", .string(revision)), ("ref", .string(ref)),
            ("now", .string(RFC3339.format(now))),
            (
                "window",
                .members([
                    ("start", .string(RFC3339.format(window.start))), ("end", .string(RFC3339.format(window.end))),
                    ("stepSeconds", .int(window.step)), ("steps", .int(window.count)),
                    ("sinceSeconds", .int(since)),
                ])
            ),
            ("requests", .int(requests)),
            ("rollouts", .array(rollouts.map { rollout in rolloutJSON(rollout) })),
            (
                "summary",
                .members([
                    ("checks", .int(rows.count)), ("rollbacks", .int(rows.reduce(0) { $0 + $1.figures.rollbacks })),
                    ("wouldRollBack", .bool(wouldRollBack)),
                    ("failedRanges", .int(rows.reduce(0) { $0 + $1.failed.count })),
                    ("errors", .int(errorCount)),
                ])
            ),
        ])
    }

    private func rolloutJSON(_ rollout: BacktestRollout) -> JSONOutput {
        .members([
            ("name", .string(rollout.name)), ("flag", .string(rollout.flag)),
            ("automaticRollback", .bool(rollout.automatic)),
            ("checks", .array(rollout.rows.map { Self.rowJSON($0, since: since) })),
            ("errors", .array(rollout.errors.map { .string($0) })),
        ])
    }

    /// One row as `--json` shows it (`plan --base … --metrics` shows its rows the same way).
    static func rowJSON(_ row: BacktestRow, since: Int) -> JSONOutput {
        let figures = row.figures
        return .members([
            ("check", .string(row.check.name)), ("phase", .string(row.phase)),
            ("environment", .string(row.environment)), ("window", .string(row.window.prometheus)),
            ("query", .string(row.query)), ("min", row.check.min.map { .number($0) }),
            ("max", row.check.max.map { .number($0) }), ("onBreach", .string(row.check.onBreach.rawValue)),
            ("onNoData", .string(row.check.onNoData.rawValue)),
            ("samples", .int(figures.samples)), ("noData", .int(figures.noData)),
            ("noDataShare", .number(figures.noDataShare)), ("breachSteps", .int(figures.breachSteps)),
            ("heldSteps", .int(figures.heldSteps)), ("heldShare", .number(figures.heldShare)),
            (
                "episodes",
                .members([
                    ("count", .int(figures.episodes.count)),
                    ("firstStart", figures.firstStart.map { .string(RFC3339.format($0)) } ?? .null),
                    ("longestSeconds", .int(figures.longestSeconds)),
                    (
                        "list",
                        .array(
                            figures.episodes.map {
                                .members([
                                    ("start", .string(RFC3339.format($0.start))), ("steps", .int($0.steps)),
                                    ("seconds", .int($0.seconds)), ("rollsBack", .bool($0.rollsBack)),
                                ])
                            })
                    ),
                ])
            ),
            ("rollbacks", .int(figures.rollbacks)),
            ("firstRollback", figures.firstRollback.map { .string(RFC3339.format($0)) } ?? .null),
            ("notifications", .int(figures.notifications)),
            (
                "failed",
                .array(
                    row.failed.map {
                        .members([
                            ("start", .string(RFC3339.format($0.start))), ("end", .string(RFC3339.format($0.end))),
                            ("steps", .int($0.steps)), ("reason", .string($0.reason)),
                        ])
                    })
            ),
            ("verdict", .string(verdict(row, since: since))),
        ])
    }

    // MARK: Markdown

    /// One document for a pull-request comment (SPEC §6.1): the summary line first, one table per rollout,
    /// failed parts inside `<details>`; at most `limit` characters (cut, saying so).
    public func markdown(limit: Int = 60_000) -> String {
        var parts: [String] = ["**rolloutctl backtest** · \(summaryLine)", ""]
        parts.append(
            "Window \(RFC3339.minutes(window.start)) → \(RFC3339.minutes(window.end)), every "
                + "\(RolloutDuration.format(seconds: window.step)), `\(Self.cell(ref))@\(revision.prefix(7))`.")
        for rollout in rollouts {
            parts.append("")
            parts.append("### \(Self.cell(rollout.name))" + (rollout.flag.map { " (`\(Self.cell($0))`)" } ?? ""))
            for error in rollout.errors { parts.append("- error: \(Self.cell(error))") }
            guard !rollout.rows.isEmpty else { continue }
            parts.append("")
            parts.append(
                "| check | threshold | on breach | phases | samples | no data | episodes | what it would have done |")
            parts.append("| --- | --- | --- | --- | ---: | ---: | ---: | --- |")
            for (check, groups) in Self.groups(rollout.rows) {
                for group in groups {
                    let figures = group.row.figures
                    parts.append(
                        "| \(Self.cell(check.name)) | \(Self.cell(check.thresholdDescription)) | "
                            + "\(check.onBreach.rawValue) | \(Self.cell(group.phases.joined(separator: ", "))) | "
                            + "\(figures.samples) | \(Self.percent(figures.noDataShare)) | \(figures.episodes.count) | "
                            + "\(Self.cell(verdict(group.row))) |")
                }
            }
            let failures = rollout.rows.flatMap { row in row.failed.map { (row, $0) } }
            if !failures.isEmpty {
                parts.append("")
                parts.append("<details><summary>\(failures.count) part(s) of the window could not be read</summary>")
                parts.append("")
                for (row, failure) in failures {
                    parts.append(
                        "- \(Self.cell(row.check.name)) (\(Self.cell(row.phase))): \(RFC3339.minutes(failure.start)) → "
                            + "\(RFC3339.minutes(failure.end)): \(Self.cell(failure.reason))")
                }
                parts.append("")
                parts.append("</details>")
            }
        }
        let text = parts.joined(separator: "\n")
        guard text.count > limit else { return text }
        let note =
            "\n\n… cut: the backtest is longer than \(limit) characters; run `rolloutctl backtest` for all of it."
        return String(text.prefix(limit - note.count)) + note
    }

    /// Text safe inside a table cell: `|` escaped, no line breaks, no HTML.
    static func cell(_ text: String) -> String {
        text.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ")
            .replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
