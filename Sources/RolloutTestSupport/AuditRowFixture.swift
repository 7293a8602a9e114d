import Foundation
import RolloutAdapters
import RolloutCore

/// An audit row of a kind no version writes, as both state homes' tests insert it by hand: the one audit-row
/// codec (`AuditRow`) reads it as an `event`, never as an intent or a result (SPEC §5.10).
public enum AuditRowFixture {
    /// The intent the unknown row names.
    public static let intent = AuditEntry(
        time: Date(timeIntervalSince1970: 1_800_000_000), rollout: "exp-001", phase: "canary-10",
        environment: "production", from: .disabled, to: FlagEnvironmentState(enabled: true, coverage: 10),
        reason: "advance", revision: nil, planBlob: "abc", approvals: ["sre=dana@example.com"], kind: .intent)

    /// What is wrong with `history` (newest first: the row of kind `compensation`, then `intent`), or nil when it
    /// reads as it must.
    public static func unknownKindProblem(_ history: [AuditEntry], intentID: Int64) -> String? {
        guard history.count == 2, let unknown = history.first, let last = history.last else {
            return "expected 2 rows, got \(history.count)"
        }
        if unknown.kind != .event { return "the unknown kind reads as \(unknown.kind)" }
        if unknown.reason != "by hand" || unknown.intentID != intentID || unknown.clockSupplied {
            return "the unknown row reads as \(unknown)"
        }
        if last.kind != .intent || last.to != intent.to || last.approvals != intent.approvals {
            return "the intent reads as \(last)"
        }
        return nil
    }
}
