import Foundation
import Testing

@testable import RolloutCore

/// The projected timeline (SPEC §6) as a table: plan, phase in force, entry time, approvals, status in;
/// the earliest start of each phase not yet entered out.
@Suite struct TimelineTests {
    static let plan: Plan = {
        let snapshot = loadSnapshot([planPath: validPlanJSON, "policies/approvers.json": approversJSON])
        return snapshot.rollout(named: "exp-001-autosave")!.plan!
    }()

    static let now = Date(timeIntervalSince1970: 1_800_000_000)
    static func hours(_ h: Double) -> Date { now.addingTimeInterval(h * 3600) }

    struct Row: Sendable, CustomTestStringConvertible {
        var name: String
        var current: Int?
        /// Hours before now the phase in force was entered.
        var enteredHoursAgo: Double?
        var missing: [String: [String]] = [:]
        var status: RolloutStatus = .blocked
        var blockers: [Blocker] = []
        /// (phase, hours from now or nil for null, waitingFor)
        var expected: [(String, Double?, [String])]
        var testDescription: String { name }
    }

    static let rows: [Row] = [
        Row(
            name: "not started: staging now, then canary-10 at once (staging has no bake), then bake",
            current: nil, enteredHoursAgo: nil, status: .progressing,
            expected: [
                ("staging", 0, []), ("canary-10", 0, []), ("canary-50", 24, ["bake"]),
                ("production", 48, ["bake"]),
            ]),
        Row(
            name: "bake left: canary-10 entered 10h ago bakes 24h, so canary-50 in 14h",
            current: 1, enteredHoursAgo: 10,
            blockers: [Blocker(kind: .bake, detail: "bake", phase: "canary-50", remainingSeconds: 14 * 3600)],
            expected: [("canary-50", 14, ["bake"]), ("production", 38, ["bake"])]),
        Row(
            name: "approvals pending: they are assumed to arrive now, and are listed",
            current: 0, enteredHoursAgo: 2,
            missing: ["canary-10": ["qa-lead", "sre"], "production": ["product-owner"]],
            expected: [
                ("canary-10", 0, ["approval:qa-lead", "approval:sre"]), ("canary-50", 24, ["bake"]),
                ("production", 48, ["bake", "approval:product-owner"]),
            ]),
        Row(
            name: "bake and approval together",
            current: 2, enteredHoursAgo: 20, missing: ["production": ["product-owner"]],
            expected: [("production", 4, ["bake", "approval:product-owner"])]),
        Row(
            name: "bake already over: the next phase can start now",
            current: 1, enteredHoursAgo: 30, status: .progressing,
            expected: [("canary-50", 0, []), ("production", 24, ["bake"])]),
        Row(
            name: "health hold: null until health recovers",
            current: 1, enteredHoursAgo: 30, status: .holding,
            blockers: [Blocker(kind: .health, detail: "hold", check: "latency-p95-delta")],
            expected: [
                ("canary-50", nil, ["status:holding", "health:latency-p95-delta"]),
                ("production", nil, ["status:holding", "health:latency-p95-delta"]),
            ]),
        Row(
            name: "rolled back: null (only a plan edit ends it)",
            current: 1, enteredHoursAgo: 30, missing: ["production": ["product-owner"]], status: .rolledBack,
            blockers: [Blocker(kind: .state, detail: "rolled back")],
            expected: [
                ("canary-50", nil, ["status:rolled-back"]),
                ("production", nil, ["status:rolled-back", "approval:product-owner"]),
            ]),
        Row(
            name: "paused: null", current: 0, enteredHoursAgo: 1, missing: ["canary-10": ["sre"]], status: .paused,
            blockers: [Blocker(kind: .state, detail: "paused")],
            expected: [
                ("canary-10", nil, ["status:paused", "approval:sre"]), ("canary-50", nil, ["status:paused"]),
                ("production", nil, ["status:paused"]),
            ]),
        Row(
            name: "aborted: null", current: 1, enteredHoursAgo: 1, status: .aborted,
            expected: [("canary-50", nil, ["status:aborted"]), ("production", nil, ["status:aborted"])]),
        Row(
            name: "an error (flag service down) is not ended by time", current: 1, enteredHoursAgo: 1,
            blockers: [Blocker(kind: .error, detail: "reading flag: unavailable")],
            expected: [("canary-50", nil, ["error"]), ("production", nil, ["error"])]),
        Row(name: "completed: nothing left", current: 3, enteredHoursAgo: 1, status: .completed, expected: []),
    ]

    @Test(arguments: rows)
    func projects(_ row: Row) {
        let entries = Timeline.project(
            Timeline.Input(
                plan: Self.plan, currentIndex: row.current, enteredAt: row.enteredHoursAgo.map { Self.hours(-$0) },
                now: Self.now, missingRoles: row.missing, status: row.status, blockers: row.blockers))
        #expect(entries.map(\.phase) == row.expected.map(\.0))
        for (entry, expected) in zip(entries, row.expected) {
            #expect(entry.earliestStart == expected.1.map { Self.hours($0) }, "\(entry.phase)")
            #expect(entry.waitingFor == expected.2, "\(entry.phase)")
        }
    }
}
