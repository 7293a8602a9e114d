import Foundation
import RolloutAdapters
import RolloutCore

/// `rolloutctl status` and `rolloutctl history`: what the state database remembers.
public enum StateViews {
    /// What `status` and `history` print when there is no state yet (exit 0, SPEC §5.10).
    public static func noState(path: String, json: Bool) -> String {
        if json {
            return JSONOutput.object([
                ("formatVersion", .string("1.0")), ("state", .null), ("rollouts", .array([])),
            ]).render()
        }
        return "No state at \(path) yet: nothing has been reconciled. `rolloutctl init` creates it "
            + "(`--adopt` when flags are already exposed)."
    }

    public static func status(store: any StateStorage, rollout: String?, json: Bool, style: Style) throws -> String {
        let rows = try store.allRollouts().filter { rollout == nil || $0.name == rollout }
        if json {
            return JSONOutput.object([
                ("formatVersion", .string("1.0")),
                (
                    "rollouts",
                    .array(
                        try rows.map { row in
                            .members([
                                ("name", .string(row.name)), ("flag", .string(row.flag)),
                                ("status", .string(row.record.status.rawValue)),
                                ("phase", row.record.phase.map { .string($0) } ?? .null),
                                ("enteredAt", row.record.enteredAt.map { .string(RFC3339.format($0)) } ?? .null),
                                ("planBlob", .string(row.record.planBlob)),
                                ("updatedAt", .string(RFC3339.format(row.updatedAt))),
                                (
                                    "phases",
                                    .array(
                                        try store.phaseEntries(rollout: row.name).map {
                                            .object([
                                                ("phase", .string($0.phase)),
                                                ("enteredAt", .string(RFC3339.format($0.enteredAt))),
                                            ])
                                        })
                                ),
                            ])
                        })
                ),
            ]).render()
        }
        if rows.isEmpty {
            return rollout.map { "No state for rollout \($0) yet; run `rolloutctl reconcile` first." }
                ?? "No rollouts in \(store.path) yet; run `rolloutctl reconcile` first."
        }
        var lines: [String] = []
        for row in rows {
            var line = style.bold(row.name) + " (\(row.flag ?? "?")): \(row.record.status.rawValue)"
            if let phase = row.record.phase { line += " at \(phase)" }
            if let entered = row.record.enteredAt { line += " since \(RFC3339.format(entered))" }
            lines.append(line)
        }
        lines.append("\(rows.count) rollout\(rows.count == 1 ? "" : "s") in \(store.path).")
        return lines.joined(separator: "\n")
    }

    public static func history(store: any StateStorage, rollout: String?, limit: Int, json: Bool, style: Style) throws
        -> String
    {
        let entries = try store.history(rollout: rollout, limit: limit)
        if json {
            return JSONOutput.object([
                ("formatVersion", .string("1.0")),
                (
                    "entries",
                    .array(
                        entries.map { entry in
                            .members([
                                ("id", entry.id.map { .number(Double($0)) }),
                                ("time", .string(RFC3339.format(entry.time))),
                                ("rollout", .string(entry.rollout)),
                                ("kind", .string(entry.kind.rawValue)),
                                ("phase", .string(entry.phase)),
                                ("environment", .string(entry.environment)),
                                ("from", entry.from.map(\.json)),
                                ("to", entry.to.map(\.json)),
                                ("reason", .string(entry.reason)),
                                ("result", .string(entry.result)),
                                ("intentID", entry.intentID.map { .number(Double($0)) }),
                                ("revision", .string(entry.revision)),
                                ("planBlob", .string(entry.planBlob)),
                                ("approvals", .array(entry.approvals.map { .string($0) })),
                                ("detail", .string(entry.detail)),
                            ])
                        })
                ),
            ]).render()
        }
        if entries.isEmpty { return "No history yet." }
        var lines: [String] = []
        for entry in entries.reversed() {
            var line = "\(RFC3339.format(entry.time))  #\(entry.id ?? 0) \(entry.rollout)"
            if let environment = entry.environment { line += "[\(environment)]" }
            line += " \(entry.kind.rawValue) \(entry.reason)"
            if entry.from != nil || entry.to != nil {
                line += ": \(FlagEnvironmentState.describe(entry.from)) → \(FlagEnvironmentState.describe(entry.to))"
            }
            if let phase = entry.phase { line += " (\(phase))" }
            if let result = entry.result { line += " = \(result)" }
            if let intent = entry.intentID { line += " for #\(intent)" }
            if !entry.approvals.isEmpty { line += " approved by \(entry.approvals.joined(separator: ", "))" }
            if let detail = entry.detail { line += style.dim(" — \(detail)") }
            lines.append(line)
        }
        lines.append("\(entries.count) entr\(entries.count == 1 ? "y" : "ies") shown.")
        return lines.joined(separator: "\n")
    }
}
