import Foundation
import RolloutCore

/// Human and JSON renderings of a run (SPEC §6).
extension RunReport {
    // MARK: JSON

    public func json() -> String { jsonDocument.render() }

    /// The plan document of SPEC §6 (also the `base` and `merged` of `plan --base --json`, §6.1).
    public var jsonDocument: JSONOutput {
        JSONOutput.object([
            ("formatVersion", .string("1.0")),
            ("revision", .string(revision)),
            ("now", .string(RFC3339.format(now))),
            ("rollouts", .array(rollouts.map(\.json))),
            ("errors", .array((runErrors + policyErrors).map(\.json))),
            ("policy", policy.map(\.json) ?? .null),
            (
                "summary",
                .object([
                    ("change", .int(changeCount)), ("blocked", .int(blockedCount)),
                    ("unchanged", .int(unchangedCount)), ("error", .int(errorCount)),
                ])
            ),
        ])
    }

    // MARK: Human

    public func human(style: Style) -> String {
        var lines: [String] = []
        let verb: String
        switch mode {
        case .plan: verb = "Planning"
        case .reconcile(dryRun: true): verb = "Dry run of reconcile"
        case .reconcile(dryRun: false): verb = "Reconciling"
        }
        lines.append(style.dim("\(verb) \(ref) @ \(revision.prefix(12)), now \(RFC3339.format(now))"))
        for error in runErrors + policyErrors {
            lines.append(style.red("error: ") + error.description)
        }
        if let policy { lines += policy.humanLines(style: style) }
        for rollout in rollouts {
            lines.append("")
            lines += rollout.humanLines(style: style, mode: mode)
        }
        lines.append("")
        lines.append(closingLine(style: style))
        return lines.joined(separator: "\n")
    }

    func closingLine(style: Style) -> String {
        let errors = errorCount > 0 ? ", \(errorCount) error\(errorCount == 1 ? "" : "s")" : ""
        switch mode {
        case .plan, .reconcile(dryRun: true):
            let prefix = mode == .plan ? "Plan" : "Dry run"
            if changeCount == 0 && errorCount == 0 && blockedCount == 0 {
                return style.bold("No changes.")
                    + " \(unchangedCount) rollout\(unchangedCount == 1 ? "" : "s") up to date."
            }
            return style.bold("\(prefix):")
                + " \(changeCount) to change, \(blockedCount) blocked, \(unchangedCount) unchanged\(errors)."
        case .reconcile(dryRun: false):
            let applied = rollouts.filter { $0.applied && !$0.changes.isEmpty }.count
            return style.bold("Reconcile:")
                + " \(applied) changed, \(blockedCount) blocked, \(unchangedCount) unchanged\(errors)."
        }
    }
}

extension RolloutReport {
    var json: JSONOutput {
        .members([
            ("name", .string(name)),
            ("flag", .string(flag)),
            ("planBlob", .string(planBlob)),
            ("status", .string(status.rawValue)),
            ("currentPhase", currentPhase.map { .string($0) } ?? .null),
            ("nextPhase", nextPhase.map { .string($0) } ?? .null),
            ("blockers", .array(blockers.map(\.json))),
            ("approvals", .array(approvals.map(\.json))),
            ("changes", .array(changes.map(\.json))),
            ("health", .array(health.map(\.json))),
            ("timeline", .array(timeline.map(\.json))),
            ("errors", .array(errors.map(\.json))),
            ("warnings", warnings.isEmpty ? nil : .array(warnings.map { .string($0) })),
            ("guardedBy", guardedBy.map { .string($0) } ?? .null),
        ])
    }

    func humanLines(style: Style, mode: RunMode) -> [String] {
        var lines: [String] = []
        var heading = style.bold(name)
        if let flag { heading += " (\(flag))" }
        heading += ": " + statusText(style: style)
        if let currentPhase { heading += " at \(currentPhase)" }
        if let nextPhase, status != .completed { heading += style.dim(", next \(nextPhase)") }
        lines.append(heading)
        for change in changes {
            lines.append("  " + change.human(flag: flag ?? name, phase: nextPhase, style: style))
        }
        if let guardNote { lines.append(style.yellow("  \(guardNote)")) }
        for blocker in blockers {
            let label: String
            switch blocker.kind {
            case .approval: label = "waiting for approval"
            case .bake: label = "baking"
            case .health: label = "health"
            case .state: label = "state"
            case .error: label = "error"
            }
            let text = "  \(label): \(blocker.detail)"
            lines.append(blocker.kind == .error ? style.red(text) : style.yellow(text))
        }
        for error in errors where error.path != nil {
            lines.append(style.red("  \(error.description)"))
        }
        for warning in warnings {
            lines.append(style.yellow("  warning: \(warning)"))
        }
        for result in health
        where result.verdict == .pass || !blockers.contains(where: { $0.check == result.check.name }) {
            let verdict: String
            switch result.verdict {
            case .pass: verdict = style.green("ok")
            case .breach: verdict = style.red("breach (\(result.check.onBreach.rawValue))")
            case .noData: verdict = style.yellow("no data (\(result.check.onNoData.rawValue))")
            }
            lines.append(style.dim("  check \(result.summary): ") + verdict)
        }
        for entry in timeline {
            lines.append(style.dim("  " + entry.human))
        }
        for approval in approvals {
            let who = "\(approval.phase) \(approval.role ?? "?") by \(approval.approver ?? "?")"
            let commit = approval.commit.map { " (commit \($0.prefix(12)))" } ?? ""
            if approval.counted {
                lines.append(style.dim("  approved: \(who)\(commit)"))
            } else {
                lines.append(style.dim("  not counted: \(who)\(commit): \(approval.reason ?? "") [\(approval.path)]"))
            }
        }
        return lines
    }

    func statusText(style: Style) -> String {
        switch status {
        case .progressing, .completed: return style.green(status.rawValue)
        case .holding, .blocked, .paused, .orphaned: return style.yellow(status.rawValue)
        case .rolledBack, .aborted, .invalid, .overridden: return style.red(status.rawValue)
        }
    }
}

extension Change {
    var json: JSONOutput {
        .members([
            ("environment", .string(environment)),
            ("from", (from ?? .disabled).json),  // an environment the flag lacks is off
            ("to", to.json),
            ("reason", .string(reason.rawValue)),
        ])
    }

    /// `~ portal_form_autosave[production]: coverage 10 → 50 (advance to canary-50)`
    func human(flag: String, phase: String?, style: Style) -> String {
        var parts: [String] = []
        let before = from ?? FlagEnvironmentState(enabled: false, coverage: 0)
        if before.enabled != to.enabled { parts.append(to.enabled ? "enabled" : "disabled") }
        if before.coverage != to.coverage || parts.isEmpty {
            parts.append("coverage \(formatNumber(before.coverage)) → \(formatNumber(to.coverage))")
        }
        let why: String
        switch reason {
        case .advance: why = "advance to \(phase ?? "the next phase")"
        case .rollback: why = "rollback"
        case .drift: why = "drift: the flag was changed outside rolloutctl"
        case .abort: why = "abort"
        case .lower: why = "lower: plan.json lowers exposure"
        }
        let symbol = reason == .rollback || reason == .abort ? style.red("-") : style.yellow("~")
        return "\(symbol) \(flag)[\(environment)]: \(parts.joined(separator: ", ")) (\(why))"
    }
}

extension FlagEnvironmentState {
    var json: JSONOutput {
        .object([("enabled", .bool(enabled)), ("coverage", .number(coverage))])
    }
}

extension Blocker {
    var json: JSONOutput {
        .members([
            ("kind", .string(kind.rawValue)),
            ("detail", .string(detail)),
            ("role", .string(role)),
            ("phase", .string(phase)),
            ("remainingSeconds", remainingSeconds.map { .int($0) }),
            ("check", .string(check)),
        ])
    }
}

extension ApprovalStatus {
    var json: JSONOutput {
        .members([
            ("phase", .string(phase.isEmpty ? nil : phase)),
            ("role", .string(role)),
            ("approver", .string(approver)),
            ("commit", commit.map { .string($0) } ?? .null),
            ("counted", .bool(counted)),
            ("reason", .string(reason)),
            ("path", .string(path)),
        ])
    }
}

extension HealthResult {
    var json: JSONOutput {
        .members([
            ("check", .string(check.name)),
            ("environment", .string(environment)),
            ("value", value.map { .number($0) } ?? .null),
            ("min", check.min.map { .number($0) }),
            ("max", check.max.map { .number($0) }),
            ("verdict", .string(verdict.rawValue)),
            ("reason", .string(noDataReason)),
            ("onBreach", .string(check.onBreach.rawValue)),
            ("onNoData", .string(check.onNoData.rawValue)),
        ])
    }
}

extension ReportedError {
    var json: JSONOutput {
        .members([
            ("path", .string(path)),
            ("line", line.map { .int($0) }),
            ("column", column.map { .int($0) }),
            ("message", .string(message)),
        ])
    }
}

extension TimelineEntry {
    var json: JSONOutput {
        .object([
            ("phase", .string(phase)),
            ("earliestStart", earliestStart.map { .string(RFC3339.format($0)) } ?? .null),
            ("waitingFor", .array(waitingFor.map { .string($0) })),
        ])
    }

    /// `canary-50  earliest 2026-02-03 10:00 UTC (bake)`, or `… not before it is unblocked (status:paused)`.
    public var human: String {
        let reasons = waitingFor.isEmpty ? "" : " (\(waitingFor.joined(separator: ", ")))"
        guard let earliestStart else { return "\(phase)  blocked\(reasons)" }
        return "\(phase)  earliest \(RFC3339.minutes(earliestStart))\(reasons)"
    }
}
