import Foundation
import RolloutCore
import RolloutTestSupport
import Testing

@testable import RolloutAdapters
@testable import RolloutKit

/// The flagd store (SPEC §7.1), checked by OpenFeature's own flagd evaluator (the Python provider's
/// in-process FILE resolver, from PyPI) on the files rolloutctl wrote.
@Suite(.serialized) struct FlagdStoreTests {
    /// EXP-001 with staging and production each in its own flagd file: at every phase, 10,000
    /// targeting keys evaluate to true in the coverage's share, raising coverage only adds keys,
    /// disabled is false for everyone, and the file's other flag evaluates exactly as before.
    @Test func exp001CheckedByOpenFeatureFlagdProvider() async throws {
        try await FlagBackendWorld.with { w in
            let staging = try w.flagdStore("staging")
            let production = try w.flagdStore("production")
            w.world.flags = RoutingFlagStore(routes: [("staging", staging), ("production", production)], fallback: nil)
            let flag = FlagBackendWorld.flag
            let other = FlagBackendWorld.otherFlag

            let before = try await PythonEvaluators.flagd(file: production.path, flags: [flag, other])
            #expect(before[flag]?.trueKeys.isEmpty == true)  // disabled: false for all
            #expect(before[flag]?.errors == 0)
            let otherBefore = try #require(before[other])
            #expect(otherBefore.trueKeys.count == 1000)  // keys ending in 7

            var ledger = StickinessLedger()
            try await w.runEXP001 { phase, coverage in
                if phase == "staging" {
                    let evaluation = try await PythonEvaluators.flagd(file: staging.path, flags: [flag])
                    #expect(evaluation[flag]?.trueKeys.count == PythonEvaluators.keys)
                    return
                }
                let evaluation = try await PythonEvaluators.flagd(file: production.path, flags: [flag, other])
                ledger.check(try #require(evaluation[flag]), coverage: coverage)
                #expect(evaluation[other] == otherBefore)
            }
            // The file says what the SPEC says: the true variant first, bucketed on flag key and targetingKey.
            let written = try String(contentsOfFile: production.path, encoding: .utf8)
            #expect(
                written.contains(
                    #"{"fractional": [{"cat": [{"var": "$flagd.flagKey"}, {"var": "targetingKey"}]}, "#
                        + #"["on", 100], ["off", 0]]}"#))

            // Aborting disables: false for every key, and the other flag is still untouched.
            try w.world.editPlan(RolloutWorld.exp001Plan(state: "aborted"))
            try await w.reconcile(hours: 51)
            let after = try await PythonEvaluators.flagd(file: production.path, flags: [flag, other])
            #expect(after[flag]?.trueKeys.isEmpty == true)
            #expect(after[flag]?.errors == 0)
            #expect(after[other] == otherBefore)
            // Disabled is exactly the original: no targeting, the false variant as default, every byte as it was.
            #expect(try String(contentsOfFile: production.path, encoding: .utf8) == FlagBackendWorld.flagdDocument)
        }
    }

    /// A coverage with decimals scales both integer weights; flagd's evaluator agrees on the share.
    @Test func decimalCoverageScalesBothWeights() async throws {
        try await FlagBackendWorld.with { w in
            let store = try w.flagdStore("production")
            let flag = FlagBackendWorld.flag
            let read = try await store.read(flag: flag)
            #expect(read.environments == ["production": .disabled])
            let updated = try await store.apply(
                flag: flag,
                patch: FlagPatch(
                    environment: "production", enabled: true,
                    coverage: 12.5), ifMatch: read.version)
            #expect(updated.environments == ["production": FlagEnvironmentState(enabled: true, coverage: 12.5)])
            let text = try String(contentsOfFile: store.path, encoding: .utf8)
            #expect(text.contains(#"["on", 125], ["off", 875]"#))
            let evaluation = try await PythonEvaluators.flagd(file: store.path, flags: [flag])
            var ledger = StickinessLedger()
            ledger.check(try #require(evaluation[flag]), coverage: 12.5)
            #expect(try await store.read(flag: flag) == updated)
        }
    }

    /// A targeting written by hand is an error for that rollout, with the file's line and column,
    /// and the file is never written.
    @Test func handEditedTargetingIsReportedAndLeftUntouched() async throws {
        try await FlagBackendWorld.with { w in
            let path = try w.flagdFile("staging")
            let handEdited = FlagBackendWorld.flagdDocument.replacingOccurrences(
                of: #""defaultVariant": "off","#,
                with: #""defaultVariant": "off", "targeting": { "if": [ "#
                    + #"{ "in": [ "@example.com", { "var": "email" } ] }, "on", "off" ] },"#)
            try Data(handEdited.utf8).write(to: URL(fileURLWithPath: path))
            w.world.flags = RoutingFlagStore(
                routes: [("staging", try w.flagdStore("staging"))],
                fallback: FileFlagStore(path: w.files.file("rest.json")))
            try w.world.seed()
            for hours in [0.0, 1] {
                let report = try await w.world.run(hours: hours)
                let rollout = try #require(report.rollout())
                #expect(rollout.changes.isEmpty || rollout.applied == false)
                let message = try #require(rollout.errors.first?.message)
                #expect(message.contains("\(path):18:"))
                #expect(message.contains("not the fractional split rolloutctl writes"))
                #expect(try String(contentsOfFile: path, encoding: .utf8) == handEdited)
            }
        }
    }

    /// Only the shape rolloutctl writes is read: other variants, a `$ref`, a default that is
    /// neither variant are refused; a flag the file lacks is not created.
    @Test func shapesRolloutctlDoesNotOwnAreRefused() async throws {
        let directory = try TemporaryDirectory(prefix: "rolloutctl-flagd-shapes")
        let cases: [(flag: String, expected: String)] = [
            (
                #"{"state": "ENABLED", "variants": {"on": true, "off": false, "maybe": "x"}, "defaultVariant": "off"}"#,
                "variant \"maybe\""
            ),
            (
                #"{"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off", "#
                    + #""targeting": {"$ref": "x"}}"#,
                "not the fractional split"
            ),
            (
                #"{"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on", "#
                    + #""targeting": {"fractional": [{"cat": [{"var": "$flagd.flagKey"}, {"var": "targetingKey"}]}, "#
                    + #"["on", 1], ["off", 9]]}}"#,
                "\"defaultVariant\" must be \"off\""
            ),
            (
                #"{"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": null}"#,
                "neither \"on\" nor \"off\""
            ),
        ]
        for (index, entry) in cases.enumerated() {
            let path = directory.file("case\(index).json")
            let text = "{\"flags\": {\"f\": \(entry.flag)}}"
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            let store = FlagdFlagStore(path: path, environment: "production")
            await #expect(throws: FlagStoreError.self) { _ = try await store.read(flag: "f") }
            do {
                _ = try await store.read(flag: "f")
            } catch let error as FlagStoreError {
                #expect("\(error)".contains(entry.expected), "\(error)")
            }
            #expect(try String(contentsOfFile: path, encoding: .utf8) == text)
        }
        let path = directory.file("case0.json")
        await #expect(throws: FlagStoreError.notFound(flag: "absent")) {
            _ = try await FlagdFlagStore(path: path, environment: "production").read(flag: "absent")
        }
    }

    /// The version is the flag's own bytes: a hand edit of this flag between read and write is a
    /// conflict (nothing written); an edit of another flag is not.
    @Test func versionFollowsTheFlagOnly() async throws {
        try await FlagBackendWorld.with { w in
            let store = try w.flagdStore("production")
            let flag = FlagBackendWorld.flag
            let read = try await store.read(flag: flag)
            let other = FlagBackendWorld.flagdDocument.replacingOccurrences(
                of: #""owner": "growth""#,
                with: #""owner": "growth-team""#)
            try Data(other.utf8).write(to: URL(fileURLWithPath: store.path))
            #expect(try await store.read(flag: flag).version == read.version)
            let moved = other.replacingOccurrences(of: #""ticket": "EXP-001""#, with: #""ticket": "EXP-002""#)
            try Data(moved.utf8).write(to: URL(fileURLWithPath: store.path))
            await #expect(throws: FlagStoreError.versionConflict(flag: flag)) {
                _ = try await store.apply(
                    flag: flag,
                    patch: FlagPatch(
                        environment: "production", enabled: true,
                        coverage: 10), ifMatch: read.version)
            }
            #expect(try String(contentsOfFile: store.path, encoding: .utf8) == moved)
        }
    }

    @Test func weights() {
        #expect(FlagdFlagStore.weights(coverage: 10).on == 10 && FlagdFlagStore.weights(coverage: 10).off == 90)
        #expect(FlagdFlagStore.weights(coverage: 100).on == 100 && FlagdFlagStore.weights(coverage: 100).off == 0)
        #expect(FlagdFlagStore.weights(coverage: 12.5).on == 125 && FlagdFlagStore.weights(coverage: 12.5).off == 875)
        #expect(FlagdFlagStore.weights(coverage: 0.01).on == 1 && FlagdFlagStore.weights(coverage: 0.01).off == 9999)
        let third = FlagdFlagStore.weights(coverage: 33.3333)
        #expect(third.on == 333333 && third.off == 666667)
    }
}
