import Foundation
import RolloutCore
import RolloutTestSupport
import Testing

@testable import RolloutAdapters
@testable import RolloutKit

/// The Unleash store (SPEC §7.1) against `FakeUnleash` on 127.0.0.1 (the admin endpoints rolloutctl
/// calls, and `/api/client/features` from the same state), checked by Unleash's official Python SDK.
@Suite(.serialized) struct UnleashStoreTests {
    /// EXP-001 on one Unleash project: 10,000 user ids per phase, evaluated by the SDK, within 1.5
    /// points of the coverage; raising coverage only adds users; an environment off is false for all.
    @Test func exp001CheckedByUnleashSDK() async throws {
        try await FlagBackendWorld.with { w in
            w.world.flags = w.unleashStore()
            let flag = FlagBackendWorld.flag
            #expect(
                try await PythonEvaluators.unleash(w.unleash, environment: "production", flag: flag)
                    .trueKeys.isEmpty)
            var ledger = StickinessLedger()
            try await w.runEXP001 { phase, coverage in
                let environment = phase == "staging" ? "staging" : "production"
                let evaluation = try await PythonEvaluators.unleash(w.unleash, environment: environment, flag: flag)
                if phase == "staging" {
                    #expect(evaluation.trueKeys.count == PythonEvaluators.keys)
                    #expect(
                        try await PythonEvaluators.unleash(w.unleash, environment: "production", flag: flag)
                            .trueKeys.isEmpty)
                } else {
                    ledger.check(evaluation, coverage: coverage)
                }
            }
            // One strategy per environment, titled rolloutctl, with the parameters the SPEC names.
            let production = try #require(w.unleash.feature(flag)?.first { $0.name == "production" })
            #expect(production.enabled)
            #expect(production.strategies.count == 1)
            let strategy = try #require(production.strategies.first)
            #expect(strategy.name == "flexibleRollout")
            #expect(strategy.title == "rolloutctl")
            #expect(strategy.parameters == ["rollout": "100", "stickiness": "default", "groupId": flag])
            // The admin token goes as Unleash expects it: no Bearer.
            let admin = w.unleash.requests.filter { $0.path.hasPrefix("/api/admin/") }
            #expect(!admin.isEmpty)
            #expect(admin.allSatisfy { $0.header("Authorization") == w.unleash.adminToken })
            // The strategy is set before the environment is turned on (Unleash would add a 100% default).
            let writes = w.unleash.writes.map {
                "\($0.method) \($0.path.split(separator: "/").suffix(2).joined(separator: "/"))"
            }
            #expect(
                Array(writes.prefix(4)) == [
                    "POST staging/strategies", "POST staging/on",
                    "POST production/strategies", "POST production/on",
                ])

            // Aborted: both environments off through the off endpoint, false for every user.
            try w.world.editPlan(RolloutWorld.exp001Plan(state: "aborted"))
            try await w.reconcile(hours: 51)
            #expect(w.unleash.writes.suffix(2).map { $0.path.hasSuffix("/off") } == [true, true])
            #expect(
                try await PythonEvaluators.unleash(w.unleash, environment: "production", flag: flag)
                    .trueKeys.isEmpty)
        }
    }

    /// A fractional coverage in a plan that targets an Unleash environment is an error for that
    /// rollout at the coverage's line and column, in plan and reconcile; nothing is applied to it.
    @Test func fractionalCoverageIsAnErrorAtItsPosition() async throws {
        try await FlagBackendWorld.with { w in
            w.world.flags = w.unleashStore()
            let plan = RolloutWorld.exp001Plan()
                .replacingOccurrences(of: #""coverage": 10,"#, with: #""coverage": 12.5,"#)
            try w.world.seed(plan: plan)
            // Where 12.5 is written: line and column (1-based) in plan.json.
            let lines = plan.components(separatedBy: "\n")
            let lineIndex = try #require(lines.firstIndex { $0.contains("12.5") })
            let position = (
                line: lineIndex + 1,
                column: lines[lineIndex].distance(
                    from: lines[lineIndex].startIndex,
                    to: lines[lineIndex].range(of: "12.5")!.lowerBound) + 1
            )
            for mode in [RunMode.plan, .reconcile(dryRun: false)] {
                let report = try await w.world.run(mode, hours: 0)
                let rollout = try #require(report.rollout())
                #expect(rollout.status == .invalid)
                #expect(rollout.changes.isEmpty)
                let error = try #require(rollout.errors.first)
                #expect(error.path == "rollouts/exp-001-autosave/plan.json")
                #expect(error.line == position.line)
                #expect(error.column == position.column)
                #expect(error.message.contains("whole percents"))
                #expect(report.json().contains("\"line\": \(position.line)"))
            }
            #expect(w.unleash.writes.isEmpty)
        }
    }

    /// Another enabled strategy on the same environment widens exposure: reported on every plan.
    @Test func anotherEnabledStrategyIsReportedOnEveryPlan() async throws {
        try await FlagBackendWorld.with { w in
            w.world.flags = w.unleashStore()
            w.unleash.edit { features in
                features[FlagBackendWorld.flag]?[0].strategies.append(
                    FakeUnleash.Strategy(
                        name: "default", title: "beta testers", parameters: [:],
                        constraints: #"[{"contextName":"userId","operator":"IN","values":["user-1"]}]"#))
            }
            try w.world.seed()
            for hours in [0.0, 1, 2] {
                let report = try await w.world.run(.plan, hours: hours)
                let rollout = try #require(report.rollout())
                #expect(rollout.warnings.count == 1)
                #expect(rollout.warnings.first?.contains("portal_form_autosave[staging]") == true)
                #expect(rollout.warnings.first?.contains("\"beta testers\" (default) is enabled too") == true)
                #expect(report.json().contains("widens exposure"))
                #expect(report.human(style: Style(enabled: false)).contains("warning: portal_form_autosave[staging]"))
            }
        }
    }

    /// 401: no retry, the rollout fails, and the token appears in no output and no log line.
    @Test func unauthorizedIsNotRetriedAndTheTokenIsNeverShown() async throws {
        try await FlagBackendWorld.with { w in
            let wrong = "wrong-admin-token-\(UUID().uuidString)"
            w.world.flags = w.unleashStore(token: wrong)
            try w.world.seed()
            let report = try await w.world.run(hours: 0)
            let rollout = try #require(report.rollout())
            #expect(rollout.errors.first?.message.contains("refused the token (HTTP 401)") == true)
            #expect(w.unleash.requests.count == 1)
            #expect(w.unleash.writes.isEmpty)
            for text in [report.json(), report.human(style: Style(enabled: false))] + w.logs.all {
                #expect(!text.contains(wrong))
            }
        }
    }

    /// 5xx then success: retried, and the strategy is added once (a re-read before each new attempt).
    @Test func serverErrorThenSuccessIsAppliedOnce() async throws {
        try await FlagBackendWorld.with { w in
            w.world.flags = w.unleashStore()
            try w.world.seed()
            w.unleash.inject(status: 503, times: 2, on: "POST")
            try await w.reconcile(hours: 0)
            let staging = try #require(w.unleash.feature(FlagBackendWorld.flag)?.first { $0.name == "staging" })
            #expect(staging.enabled)
            #expect(staging.strategies.count == 1)
            #expect(w.unleash.writes.map(\.method) == ["POST", "POST"])  // the strategy, then on
            let posts = w.unleash.requests.filter { $0.method == "POST" && $0.path.hasSuffix("/strategies") }
            #expect(posts.count == 3)
            let audit = try SQLiteStateStore(path: w.world.statePath).history(rollout: "exp-001-autosave")
            #expect(audit.filter { $0.kind == .result }.map(\.result) == ["applied"])
        }
    }

    /// The strategy changed by hand between rolloutctl's read and its write: the write is refused
    /// before anything is sent, the flag re-read, the change decided again, and applied once.
    @Test func strategyChangedBetweenReadAndWriteIsReReadAndReDecided() async throws {
        try await FlagBackendWorld.with { w in
            w.world.flags = w.unleashStore()
            try w.world.seed()
            try await w.reconcile(hours: 0)
            try w.world.approveCanary10()
            // Right after the reconciler's read: someone adds a strategy of their own to production.
            w.unleash.editAfterRead(1) { features in
                features[FlagBackendWorld.flag]?[1].strategies.append(
                    FakeUnleash.Strategy(
                        name: "userWithId", title: "qa", parameters: ["userIds": "user-1"]))
            }
            let writesBefore = w.unleash.writes.count
            let rollout = try await w.reconcile(hours: 1)
            #expect(rollout.nextPhase == "canary-10")
            #expect(rollout.warnings.contains { $0.contains("\"qa\" (userWithId)") })
            let audit = try SQLiteStateStore(path: w.world.statePath).history(rollout: "exp-001-autosave")
            #expect(
                audit.filter { $0.kind == .result }.compactMap(\.result).sorted()
                    == ["applied", "applied", "conflict"])
            let newWrites = w.unleash.writes.dropFirst(writesBefore).map(\.method)
            #expect(newWrites == ["POST", "POST"])  // rolloutctl's strategy, then on: once
            let production = try #require(w.unleash.feature(FlagBackendWorld.flag)?.first { $0.name == "production" })
            #expect(production.strategies.map(\.title) == ["qa", "rolloutctl"])
            #expect(production.strategies.last?.parameters["rollout"] == "10")
        }
    }

    @Test func parsesTheFlagsURL() {
        let portal = UnleashFlagStore.parse("unleash+https://unleash.example.com/api?project=portal")
        #expect(portal?.apiURL == "https://unleash.example.com/api")
        #expect(portal?.project == "portal")
        let local = UnleashFlagStore.parse("unleash+http://127.0.0.1:4242/api")
        #expect(local?.apiURL == "http://127.0.0.1:4242/api")
        #expect(local?.project == "default")
        #expect(UnleashFlagStore.parse("unleash://x/api") == nil)
        #expect(UnleashFlagStore.parse("unleash+https://x/api?project=") == nil)
    }
}
