import AsyncHTTPClient
import Foundation
import NIOCore
import RolloutCore
import RolloutTestSupport
import Testing

@testable import RolloutAdapters
@testable import RolloutKit

/// The LaunchDarkly store (SPEC §7.1 LaunchDarkly) against `FakeLaunchDarkly` on 127.0.0.1 (REST API v2,
/// semantic patches applied as LaunchDarkly documents them), checked by LaunchDarkly's own Python
/// server SDK fed the flag as the API holds it.
@Suite(.serialized) struct LaunchDarklyFlagStoreTests {
    static let flag = FlagBackendWorld.flag

    /// A FlagBackendWorld with a LaunchDarkly project `portal` holding EXP-001's boolean flag, as
    /// LaunchDarkly creates it (off; variation 0 true, 1 false; off variation false), with a `test`
    /// environment no plan names whose default rule serves true to everyone.
    static func with(_ body: (FlagBackendWorld, FakeLaunchDarkly) async throws -> Void) async throws {
        let launchDarkly = FakeLaunchDarkly(project: "portal")
        var flag = FakeLaunchDarkly.Flag(key: Self.flag, environments: ["staging", "production", "test"])
        flag.environments["test"]?.on = true
        launchDarkly.setFlag(flag)
        try await launchDarkly.start()
        do {
            try await FlagBackendWorld.with { w in try await body(w, launchDarkly) }
        } catch {
            await launchDarkly.stop()
            throw error
        }
        await launchDarkly.stop()
    }

    static func store(
        _ w: FlagBackendWorld, _ launchDarkly: FakeLaunchDarkly, token: String? = nil,
        retry: RetryPolicy = .adapterTest()
    ) -> LaunchDarklyFlagStore {
        let (baseURL, project) = LaunchDarklyFlagStore.parse(launchDarkly.flagsURL)!
        return LaunchDarklyFlagStore(
            baseURL: baseURL, project: project, token: token ?? launchDarkly.token, client: w.client, retry: retry,
            logger: w.world.logger)
    }

    static func evaluate(_ launchDarkly: FakeLaunchDarkly, _ environment: String) async throws -> Evaluation {
        try await PythonEvaluators.launchDarkly(launchDarkly, environment: environment, flag: flag)
    }

    /// EXP-001 end to end: after each phase LaunchDarkly's SDK evaluates 10,000 user keys per
    /// environment on the flag as the API holds it: staging true for all, production within 1.5
    /// points of the coverage, every key true at 10% still true at 50% and 100%. One semantic patch
    /// per environment change, commented with rollout, phase and plan blob. Aborted: `turnFlagOff`
    /// in both, false for every key.
    @Test func exp001CheckedByLaunchDarklySDK() async throws {
        try await Self.with { w, launchDarkly in
            w.world.flags = Self.store(w, launchDarkly)
            #expect(try await Self.evaluate(launchDarkly, "production").trueKeys.isEmpty)
            var ledger = StickinessLedger()
            try await w.runEXP001 { phase, coverage in
                let staging = try await Self.evaluate(launchDarkly, "staging")
                #expect(staging.trueKeys.count == PythonEvaluators.keys)
                #expect(staging.errors == 0)
                let production = try await Self.evaluate(launchDarkly, "production")
                print(
                    "LaunchDarkly SDK after \(phase): production \(production.percent)% true, staging \(staging.percent)%"
                )
                if phase == "staging" {
                    #expect(production.trueKeys.isEmpty)
                } else {
                    ledger.check(production, coverage: coverage)
                }
            }
            let blob = try w.world.planBlob()
            let patches = launchDarkly.patches
            print("EXP-001 semantic patches sent to LaunchDarkly:")
            for patch in patches { print("PATCH /api/v2/flags/portal/\(patch.flag) \(patch.body)") }
            #expect(patches.map(\.environment) == ["staging", "production", "production", "production"])
            #expect(patches.allSatisfy { $0.kinds == ["turnFlagOn", "updateFallthroughVariationOrRollout"] })
            #expect(
                patches.map(\.comment) == [
                    "rolloutctl: rollout exp-001-autosave, phase staging, plan \(blob) (advance)",
                    "rolloutctl: rollout exp-001-autosave, phase canary-10, plan \(blob) (advance)",
                    "rolloutctl: rollout exp-001-autosave, phase canary-50, plan \(blob) (advance)",
                    "rolloutctl: rollout exp-001-autosave, phase production, plan \(blob) (advance)",
                ])
            let stored = try #require(launchDarkly.flag(Self.flag))
            let trueID = stored.variations[0].id
            let falseID = stored.variations[1].id
            #expect(
                patches[1].body
                    == #"{"environmentKey":"production","comment":"\#(patches[1].comment!)","instructions":"#
                    + #"[{"kind":"turnFlagOn"},{"kind":"updateFallthroughVariationOrRollout","rolloutWeights":"#
                    + #"{"\#(trueID)":10000,"\#(falseID)":90000},"rolloutBucketBy":"key"}]}"#)
            #expect(
                stored.environments["production"]?.defaultRule
                    == .rollout(
                        [.init(variation: 0, weight: 100_000), .init(variation: 1, weight: 0)], bucketBy: "key",
                        contextKind: "user"))
            // Every call carries the token as LaunchDarkly expects it (no Bearer); every write is a semantic patch.
            #expect(launchDarkly.requests.allSatisfy { $0.header("Authorization") == launchDarkly.token })
            let writes = launchDarkly.requests.filter { $0.method == "PATCH" }
            #expect(writes.count == 4)
            #expect(writes.allSatisfy { $0.header("Content-Type") == LaunchDarklyFlagStore.semanticPatchContentType })
            // The environment no plan names was never touched, and its default rule raised nothing.
            #expect(stored.environments["test"]?.on == true)
            #expect(stored.environments["test"]?.version == 1)

            // Aborted: both environments turned off, production (the measured one) first.
            try w.world.editPlan(RolloutWorld.exp001Plan(state: "aborted"))
            try await w.reconcile(hours: 51)
            let off = launchDarkly.patches.dropFirst(4)
            #expect(off.map(\.environment).sorted() == ["production", "staging"])
            #expect(off.allSatisfy { $0.kinds == ["turnFlagOff"] })
            #expect(try await Self.evaluate(launchDarkly, "production").trueKeys.isEmpty)
            #expect(try await Self.evaluate(launchDarkly, "staging").trueKeys.isEmpty)
        }
    }

    /// §5.3: a rollback turns production off (then staging), LaunchDarkly's SDK serves false to
    /// everyone, and nothing raises it again. §5.6: `turnFlagOff` made in LaunchDarkly by someone else
    /// (the runbook's kill switch) makes the rollout overridden; no patch is sent after it.
    @Test func rollbackAndKillSwitch() async throws {
        try await Self.with { w, launchDarkly in
            w.world.flags = Self.store(w, launchDarkly)
            try w.world.seed()
            try await w.reconcile(hours: 0)
            try w.world.approveCanary10()
            try await w.reconcile(hours: 1)
            #expect(try await Self.evaluate(launchDarkly, "production").trueKeys.count > 0)

            try w.metrics.set(RollbackOverrideTests.breach)
            let rolledBack = try await w.reconcile(hours: 2)
            #expect(rolledBack.status == .rolledBack)
            let patches = launchDarkly.patches
            #expect(patches.suffix(2).map(\.environment) == ["production", "staging"])
            #expect(patches.suffix(2).allSatisfy { $0.kinds == ["turnFlagOff"] })
            #expect(patches.last?.comment?.contains("(rollback)") == true)
            #expect(try await Self.evaluate(launchDarkly, "production").trueKeys.isEmpty)
            #expect(try await Self.evaluate(launchDarkly, "staging").trueKeys.isEmpty)
            try w.metrics.set(MetricsFile.healthy)
            for hours in [3.0, 30, 80] {
                let later = try await w.reconcile(hours: hours)
                #expect(later.status == .rolledBack)
                #expect(later.changes.isEmpty)
            }
            #expect(launchDarkly.patches.count == patches.count)
        }
        try await Self.with { w, launchDarkly in
            w.world.flags = Self.store(w, launchDarkly)
            try w.world.seed()
            try await w.reconcile(hours: 0)
            try w.world.approveCanary10()
            try await w.reconcile(hours: 1)
            let sent = launchDarkly.patches.count
            // The kill switch, in LaunchDarkly: production turned off by a person.
            launchDarkly.edit(Self.flag) { $0.environments["production"]?.on = false }
            let first = try await w.reconcile(hours: 2)
            #expect(first.status == .overridden)
            #expect(first.changes.isEmpty)
            for hours in [3.0, 30, 60] {
                let later = try await w.reconcile(hours: hours)
                #expect(later.status == .overridden)
                #expect(later.changes.isEmpty)
            }
            #expect(launchDarkly.patches.count == sent)
            #expect(try await Self.evaluate(launchDarkly, "production").trueKeys.isEmpty)
        }
    }

    /// A targeting rule and individual targets serving true in a plan's environment widen exposure:
    /// reported on every plan, never removed.
    @Test func rulesAndTargetsServingTrueAreReportedOnEveryPlan() async throws {
        try await Self.with { w, launchDarkly in
            w.world.flags = Self.store(w, launchDarkly)
            launchDarkly.edit(Self.flag) { flag in
                flag.environments["production"]?.rules.append(
                    FakeLaunchDarkly.Rule(
                        description: "staff",
                        clauses:
                            #"[{"attribute":"email","op":"endsWith","values":["@example.com"],"contextKind":"user","negate":false}]"#,
                        serve: .variation(0)))
                flag.environments["production"]?.targets.append(.init(values: ["qa-1", "qa-2"], variation: 0))
                flag.environments["staging"]?.rules.append(
                    FakeLaunchDarkly.Rule(description: "nobody", clauses: "[]", serve: .variation(1)))
            }
            try w.world.seed()
            for hours in [0.0, 1, 2] {
                let report = try await w.world.run(.plan, hours: hours)
                let rollout = try #require(report.rollout())
                #expect(rollout.errors.isEmpty)
                #expect(rollout.warnings.count == 2, "\(rollout.warnings)")
                #expect(
                    rollout.warnings.contains {
                        $0.hasPrefix(
                            "portal_form_autosave[production]: LaunchDarkly targeting rule 1 (\"staff\") serves true")
                    })
                #expect(rollout.warnings.contains { $0.contains("individual targets serve true to 2 user keys") })
                #expect(
                    report.human(style: Style(enabled: false)).contains("warning: portal_form_autosave[production]"))
            }
            try await w.reconcile(hours: 0)
            #expect(launchDarkly.flag(Self.flag)?.environments["production"]?.rules.count == 1)
        }
    }

    /// 429 with `X-Ratelimit-Reset`: the store waits for the reset (longer than the policy's largest
    /// backoff, 50 ms here) and the change is applied once, within the retry budget.
    @Test func rateLimitIsWaitedOutUntilItsReset() async throws {
        try await Self.with { w, launchDarkly in
            w.world.flags = Self.store(w, launchDarkly)
            try w.world.seed()
            let until = launchDarkly.rateLimit(for: .milliseconds(1200))
            let rollout = try await w.reconcile(hours: 0)
            #expect(rollout.changes.map(\.environment) == ["staging"])
            #expect(launchDarkly.patches.map(\.environment) == ["staging"])
            // One 429 for the read; the retry came after the reset instead of spending the 3 attempts.
            #expect(launchDarkly.rateLimitedCount == 1)
            #expect(Date() >= until)
            #expect(w.logs.all.contains { $0.contains("rate limit reached") })
        }
    }

    /// A flag that is not boolean is an error for its rollout: nothing decided, nothing written.
    @Test func aNonBooleanFlagIsAnErrorForThatRollout() async throws {
        try await Self.with { w, launchDarkly in
            w.world.flags = Self.store(w, launchDarkly)
            launchDarkly.edit(Self.flag) { flag in
                flag.kind = "multivariate"
                flag.variations = [.init(value: #""blue""#), .init(value: #""green""#)]
            }
            try w.world.seed()
            let report = try await w.world.run(hours: 0)
            let rollout = try #require(report.rollout())
            #expect(rollout.errors.count == 1)
            #expect(rollout.errors.first?.message.contains("is not a boolean flag") == true)
            #expect(rollout.errors.first?.message.contains(#""blue", "green""#) == true)
            #expect(rollout.changes.isEmpty)
            #expect(launchDarkly.patches.isEmpty)
        }
    }

    /// A default rule rolloutctl did not write (true to everyone; a rollout bucketed by another
    /// attribute), or an off variation that is not false, in a plan's environment: an error for the
    /// rollout, never overwritten. The same in an environment no plan names is not rolloutctl's business.
    @Test func aFallthroughRolloutctlDidNotWriteIsAnErrorNeverOverwritten() async throws {
        let cases: [(String, (inout FakeLaunchDarkly.Environment) -> Void, String)] = [
            (
                "production", { $0.on = true },
                "default rule serves the true variation to everyone"
            ),
            (
                "production",
                {
                    $0.on = true
                    $0.defaultRule = .rollout(
                        [.init(variation: 0, weight: 10_000), .init(variation: 1, weight: 90_000)],
                        bucketBy: "country", contextKind: nil)
                },
                "bucketed by country, not key"
            ),
            ("staging", { $0.offVariation = 0 }, "the off variation is the true one"),
        ]
        for (environment, change, expected) in cases {
            try await Self.with { w, launchDarkly in
                w.world.flags = Self.store(w, launchDarkly)
                launchDarkly.edit(Self.flag) { change(&$0.environments[environment]!) }
                let before = launchDarkly.flag(Self.flag)
                try w.world.seed()
                let report = try await w.world.run(hours: 0)
                let rollout = try #require(report.rollout())
                #expect(rollout.errors.count == 1, "\(rollout.errors.map(\.message))")
                #expect(rollout.errors.first?.message.contains("portal_form_autosave[\(environment)]") == true)
                #expect(rollout.errors.first?.message.contains(expected) == true, "\(rollout.errors)")
                #expect(rollout.changes.isEmpty)
                #expect(launchDarkly.patches.isEmpty)
                #expect(launchDarkly.flag(Self.flag) == before)
            }
        }
    }

    /// Straight through the store: the emergency switch-off (no environment) turns off every
    /// environment that is on, one `turnFlagOff` each, even one whose default rule rolloutctl does
    /// not own (off serves false there); raising such an environment is refused, nothing sent.
    @Test func switchingEverythingOffLowersEvenWhatRolloutctlDoesNotOwn() async throws {
        try await Self.with { w, launchDarkly in
            let store = Self.store(w, launchDarkly)
            let before = try await store.read(flag: Self.flag)
            #expect(before.errors.map(\.environment) == ["test"])
            await #expect(throws: FlagStoreError.self) {
                _ = try await store.apply(
                    flag: Self.flag, patch: FlagPatch(environment: "test", enabled: true, coverage: 10),
                    ifMatch: before.version)
            }
            #expect(launchDarkly.patches.isEmpty)
            let after = try await store.apply(
                flag: Self.flag, patch: FlagPatch(environment: nil, enabled: false, coverage: nil),
                ifMatch: before.version)
            #expect(launchDarkly.patches.map(\.environment) == ["test"])
            #expect(launchDarkly.patches.map(\.kinds) == [["turnFlagOff"]])
            #expect(launchDarkly.patches.first?.comment == "rolloutctl")
            #expect(after.environments.values.allSatisfy { !$0.enabled })
            #expect(after.errors.isEmpty)
            #expect(try await Self.evaluate(launchDarkly, "test").trueKeys.isEmpty)
        }
    }

    /// SPEC §6 [r3]: an answer about another flag is an error for the rollout, never read as its state.
    @Test func anAnswerAboutAnotherKeyIsAnError() async throws {
        try await Self.with { w, launchDarkly in
            w.world.flags = Self.store(w, launchDarkly)
            var other = FakeLaunchDarkly.Flag(key: FlagBackendWorld.otherFlag, environments: ["staging", "production"])
            other.environments["staging"]?.on = true
            other.environments["staging"]?.defaultRule = .variation(1)
            launchDarkly.setFlag(other)
            launchDarkly.answerGet(Self.flag, with: launchDarkly.flagJSON(FlagBackendWorld.otherFlag)!)
            try w.world.seed()
            let report = try await w.world.run(hours: 0)
            let rollout = try #require(report.rollout())
            #expect(rollout.errors.count == 1)
            #expect(
                rollout.errors.first?.message.contains("about flag checkout_banner, not portal_form_autosave") == true)
            #expect(launchDarkly.patches.isEmpty)
        }
    }

    /// The flag changed in LaunchDarkly between rolloutctl's read and its write (its `_version` moved):
    /// the write is refused before it is sent, the flag re-read, the change decided again, applied once.
    @Test func aMovedVersionIsReReadAndReDecided() async throws {
        try await Self.with { w, launchDarkly in
            w.world.flags = Self.store(w, launchDarkly)
            try w.world.seed()
            try await w.reconcile(hours: 0)
            try w.world.approveCanary10()
            w.launchDarklyEditAfterFirstRead(launchDarkly)
            let sent = launchDarkly.patches.count
            let rollout = try await w.reconcile(hours: 1)
            #expect(rollout.nextPhase == "canary-10")
            #expect(rollout.warnings.contains { $0.contains("rule 1 (\"beta\") serves true") })
            let audit = try SQLiteStateStore(path: w.world.statePath).history(rollout: "exp-001-autosave")
            #expect(
                audit.filter { $0.kind == .result }.compactMap(\.result).sorted() == ["applied", "applied", "conflict"])
            #expect(launchDarkly.patches.dropFirst(sent).map(\.environment) == ["production"])
        }
    }

    /// The fake applies semantic patches as LaunchDarkly documents them: an unknown instruction kind,
    /// weights that do not sum to 100,000, a JSON body without the semantic-patch media type: 400 and
    /// nothing changes; a valid patch bumps `_version`.
    @Test func theFakeAppliesSemanticPatchesAsDocumented() async throws {
        try await Self.with { w, launchDarkly in
            let flag = try #require(launchDarkly.flag(Self.flag))
            let (t, f) = (flag.variations[0].id, flag.variations[1].id)
            func patch(_ body: String, contentType: String = LaunchDarklyFlagStore.semanticPatchContentType)
                async throws -> (Int, String)
            {
                var request = HTTPClientRequest(url: "\(launchDarkly.server.baseURL)/api/v2/flags/portal/\(Self.flag)")
                request.method = .PATCH
                request.headers.add(name: "Authorization", value: launchDarkly.token)
                request.headers.add(name: "Content-Type", value: contentType)
                request.body = .bytes(ByteBuffer(string: body))
                let response = try await w.client.execute(request, timeout: .seconds(10))
                let bytes = try await response.body.collect(upTo: 1 << 20)
                return (Int(response.status.code), String(buffer: bytes))
            }
            let unknown = try await patch(
                #"{"environmentKey":"production","instructions":[{"kind":"turnFlagOn"},{"kind":"deleteFlag"}]}"#)
            #expect(unknown.0 == 400)
            #expect(unknown.1.contains("unknown instruction kind deleteFlag"))
            let weights = try await patch(
                #"{"environmentKey":"production","instructions":[{"kind":"updateFallthroughVariationOrRollout","rolloutWeights":{"\#(t)":60000,"\#(f)":50000}}]}"#
            )
            #expect(weights.0 == 400)
            #expect(weights.1.contains("must sum to 100000"))
            let plain = try await patch(
                #"{"environmentKey":"production","instructions":[{"kind":"turnFlagOn"}]}"#,
                contentType: "application/json")
            #expect(plain.0 == 400)
            #expect(launchDarkly.flag(Self.flag) == flag)
            let valid = try await patch(#"{"environmentKey":"production","instructions":[{"kind":"turnFlagOn"}]}"#)
            #expect(valid.0 == 200)
            #expect(valid.1.contains(#""_version":2"#))
            #expect(launchDarkly.flag(Self.flag)?.environments["production"]?.on == true)
        }
    }

    /// 401: no retry, the rollout fails, the token appears in no output and no log line.
    @Test func unauthorizedIsNotRetriedAndTheTokenIsNeverShown() async throws {
        try await Self.with { w, launchDarkly in
            let wrong = "api-wrong-\(UUID().uuidString)"
            w.world.flags = Self.store(w, launchDarkly, token: wrong)
            try w.world.seed()
            let report = try await w.world.run(hours: 0)
            let rollout = try #require(report.rollout())
            #expect(rollout.errors.first?.message.contains("refused the token (HTTP 401)") == true)
            #expect(launchDarkly.requests.count == 1)
            for text in [report.json(), report.human(style: Style(enabled: false))] + w.logs.all {
                #expect(!text.contains(wrong))
                #expect(!text.contains(launchDarkly.token))
            }
        }
    }

    /// A coverage finer than a thousandth of a percent cannot be written as LaunchDarkly's weights.
    @Test func coverageFinerThanAThousandthIsAnErrorAtItsPosition() async throws {
        try await Self.with { w, launchDarkly in
            w.world.flags = Self.store(w, launchDarkly)
            try w.world.seed(
                plan: RolloutWorld.exp001Plan().replacingOccurrences(
                    of: #""coverage": 10,"#, with: #""coverage": 12.3456,"#))
            let report = try await w.world.run(.plan, hours: 0)
            let rollout = try #require(report.rollout())
            #expect(rollout.status == .invalid)
            #expect(rollout.errors.first?.message.contains("thousandths of a percent") == true)
            #expect(launchDarkly.patches.isEmpty)
        }
    }

    @Test func parsesTheFlagsURL() {
        let saas = LaunchDarklyFlagStore.parse("launchdarkly+https://app.launchdarkly.com?project=portal")
        #expect(saas?.baseURL == "https://app.launchdarkly.com")
        #expect(saas?.project == "portal")
        let relay = LaunchDarklyFlagStore.parse("launchdarkly+http://127.0.0.1:8030/ld?project=p")
        #expect(relay?.baseURL == "http://127.0.0.1:8030/ld")
        #expect(LaunchDarklyFlagStore.parse("launchdarkly+https://app.launchdarkly.com") == nil)
        #expect(LaunchDarklyFlagStore.parse("launchdarkly://x?project=p") == nil)
    }
}

extension FlagBackendWorld {
    /// Right after the reconciler's next read: someone adds a rule serving true to production
    /// (`_version` moves), before rolloutctl's write.
    func launchDarklyEditAfterFirstRead(_ launchDarkly: FakeLaunchDarkly) {
        let flag = Self.flag
        launchDarkly.editAfterRead(1) { flags in
            flags[flag]?.environments["production"]?.rules.append(
                FakeLaunchDarkly.Rule(description: "beta", clauses: "[]", serve: .variation(0)))
            flags[flag]?.version += 1
        }
    }
}
