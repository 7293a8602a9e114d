import Foundation
import RolloutCore
import RolloutTestSupport
import Testing

@testable import RolloutAdapters
@testable import RolloutKit

/// Per-environment stores (`--flags ENV=URL`): one rollout whose environments live in two services.
@Suite(.serialized) struct MixedFlagStoresTests {
    /// EXP-001 from staging to 100% with staging in a flagd file and production in Unleash, each
    /// checked by its own project's evaluator at every phase.
    @Test func exp001StagingOnFlagdProductionOnUnleash() async throws {
        try await FlagBackendWorld.with { w in
            let staging = try w.flagdStore("staging")
            w.world.flags = RoutingFlagStore(
                routes: [("staging", staging), ("production", w.unleashStore())],
                fallback: nil)
            let flag = FlagBackendWorld.flag
            var ledger = StickinessLedger()
            try await w.runEXP001 { phase, coverage in
                let flagd = try #require(try await PythonEvaluators.flagd(file: staging.path, flags: [flag])[flag])
                #expect(flagd.trueKeys.count == PythonEvaluators.keys)
                #expect(flagd.errors == 0)
                let production = try await PythonEvaluators.unleash(w.unleash, environment: "production", flag: flag)
                if phase == "staging" {
                    #expect(production.trueKeys.isEmpty)
                } else {
                    ledger.check(production, coverage: coverage)
                }
            }
            // Unleash's own staging environment is not rolloutctl's here: never touched.
            let unleashStaging = try #require(w.unleash.feature(flag)?.first { $0.name == "staging" })
            #expect(!unleashStaging.enabled && unleashStaging.strategies.isEmpty)
            #expect(w.unleash.writes.allSatisfy { $0.path.contains("/environments/production/") })
        }
    }

    /// A failure in production's service is production's error: staging's change of the same run
    /// stays applied and recorded, and the next run applies production once without touching staging.
    @Test func aFailureInOneServiceNeverTouchesTheOtherTwice() async throws {
        try await FlagBackendWorld.with { w in
            let staging = try w.flagdStore("staging")
            w.world.flags = RoutingFlagStore(
                routes: [("staging", staging), ("production", w.unleashStore())],
                fallback: nil)
            try w.world.seed()
            try await w.reconcile(hours: 0)
            try w.world.approveCanary10()
            try await w.reconcile(hours: 1)

            // Hour 2: the plan is aborted; staging (flagd) is disabled, production's Unleash answers 500.
            w.unleash.inject(status: 500, times: 10, on: "POST")
            try w.world.editPlan(RolloutWorld.exp001Plan(state: "aborted"))
            let report = try await w.world.run(hours: 2)
            let rollout = try #require(report.rollout())
            #expect(rollout.changes.map(\.environment) == ["staging", "production"])
            #expect(rollout.errors.count == 1)
            #expect(rollout.errors.first?.message.contains("portal_form_autosave[production]") == true)
            #expect(try await staging.read(flag: FlagBackendWorld.flag).environments["staging"] == .disabled)
            #expect(w.unleash.feature(FlagBackendWorld.flag)?.first { $0.name == "production" }?.enabled == true)
            let stagingFile =
                try FileManager.default.attributesOfItem(atPath: staging.path)[.systemFileNumber]
                as? NSNumber

            // Hour 3, the service is back: production is disabled once; staging's file is not written again.
            w.unleash.clearFaults()
            let next = try await w.reconcile(hours: 3)
            #expect(next.changes.map(\.environment) == ["production"])
            #expect(w.unleash.feature(FlagBackendWorld.flag)?.first { $0.name == "production" }?.enabled == false)
            #expect(
                try FileManager.default.attributesOfItem(atPath: staging.path)[.systemFileNumber] as? NSNumber
                    == stagingFile)
            let results = try SQLiteStateStore(path: w.world.statePath).history(rollout: "exp-001-autosave")
                .filter { $0.kind == .result }.sorted { ($0.id ?? 0) < ($1.id ?? 0) }
            #expect(results.filter { $0.environment == "staging" }.map(\.result) == ["applied", "applied"])
            #expect(
                results.filter { $0.environment == "production" }.map(\.result) == ["applied", "failed", "applied"])
        }
    }

    /// Each store judges its own environments' phases; an environment no `--flags` serves is an error.
    @Test func planProblemsArePerEnvironment() async throws {
        try await FlagBackendWorld.with { w in
            let plan = try #require(
                Plan.decode(
                    try JSONParser.parse(
                        Array(
                            RolloutWorld.exp001Plan()
                                .replacingOccurrences(of: #""coverage": 100 },"#, with: #""coverage": 99.5 },"#)
                                .replacingOccurrences(of: #""coverage": 10,"#, with: #""coverage": 10.5,"#).utf8)),
                    sink: DiagnosticSink(path: "plan.json")))
            let flagdStaging = try w.flagdStore("staging")
            let mixed = RoutingFlagStore(
                routes: [("staging", flagdStaging), ("production", w.unleashStore())],
                fallback: nil)
            // 99.5 in staging is flagd's (fine); 10.5 in production is Unleash's (an error).
            #expect(mixed.planProblems(plan, path: "plan.json").map(\.message).count == 1)
            #expect(mixed.planProblems(plan, path: "plan.json").first?.message.contains("canary-10") == true)
            let partial = RoutingFlagStore(routes: [("staging", flagdStaging)], fallback: nil)
            let problems = partial.planProblems(plan, path: "plan.json").map(\.message)
            #expect(problems.count == 3)
            #expect(problems.allSatisfy { $0.contains("no --flags serves environment production") })
        }
    }
}
