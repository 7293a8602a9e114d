import Foundation
import RolloutCore
import RolloutTestSupport
import Testing

/// SPEC §5.7: an invalid plan affects that rollout alone. Plans that used to make the binary die
/// with a runtime trap (found by the fuzzers, Fuzz/regressions) sit among good ones; the real
/// binary reconciles every good rollout, reports the bad one with its file, line and column, and
/// exits 1 for it.
@Suite(.serialized) struct IsolationTests {
    static func plan(_ name: String, coverage: String = "100", bake: String? = nil) -> String {
        let bakeField = bake.map { ", \"bake\": \"\($0)\"" } ?? ""
        return """
            {
              "apiVersion": "rolloutctl/v1",
              "name": "\(name)",
              "flag": "flag-\(name)",
              "phases": [
                { "name": "staging", "environment": "staging", "coverage": \(coverage)\(bakeField) },
                { "name": "production", "environment": "production", "coverage": 100 }
              ]
            }

            """
    }

    /// The poisoned plans: each of them trapped before the fix (coverage 1e20 in the message
    /// "coverage … is outside 0…100"; a bake whose sum overflows Int).
    static let poisoned: [String: String] = [
        "r3": plan("r3", coverage: "1e20"),
        "r7": plan("r7", bake: String(repeating: "999999999d", count: 20_000)),
    ]

    @Test func onePoisonedPlanDoesNotStopTheOthers() async throws {
        try await CLIWorld.with { w in
            var files: [String: String] = [:]
            for index in 0..<10 {
                let name = "r\(index)"
                files["rollouts/\(name)/plan.json"] = Self.poisoned[name] ?? Self.plan(name)
                w.service.setFlag("flag-\(name)", environments: [:])
            }
            _ = try w.repo.commitFiles(files, "Ten rollouts, two of them poisoned", author: CLIWorld.robin)
            #expect(try await w.initialise().status == 0)

            let result = try await w.reconcile()
            #expect(result.status == 1, "\(result.all)")
            for index in 0..<10 where Self.poisoned["r\(index)"] == nil {
                let staged = ["staging": FlagEnvironmentState(enabled: true, coverage: 100)]
                #expect(
                    w.environments("flag-r\(index)") == staged,
                    "r\(index): \(result.all)")
            }
            for name in Self.poisoned.keys {
                #expect(w.environments("flag-\(name)").isEmpty, "\(name) must change nothing")
            }
            #expect(
                result.all.contains("rollouts/r3/plan.json:6:64: coverage 1e+20 is outside 0…100"),
                "\(result.all)")
            #expect(
                result.all.contains(
                    "rollouts/r7/plan.json:6:77: "
                        + "bake \"999999999d999999999d…(200000 characters)\" "
                        + "is longer than the limit of 36500d"), "\(result.all)")
        }
    }

    @Test func resourceLimitsNameTheLimit() async throws {
        try await CLIWorld.with { w in
            let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
            let huge = "{\"a\": \"" + String(repeating: "x", count: (1 << 20) + 10) + "\"}"
            _ = try w.repo.commitFiles(
                [
                    "rollouts/r0/plan.json": Self.plan("r0"),
                    "rollouts/deep/plan.json": deep,
                    "rollouts/huge/plan.json": huge,
                    "rollouts/big-number/plan.json":
                        Self.plan("big-number", coverage: "1" + String(repeating: "0", count: 400)),
                ], "Limits", author: CLIWorld.robin)
            w.service.setFlag("flag-r0", environments: [:])
            #expect(try await w.initialise().status == 0)
            let result = try await w.reconcile()
            #expect(result.status == 1, "\(result.all)")
            #expect(w.environments("flag-r0") == ["staging": FlagEnvironmentState(enabled: true, coverage: 100)])
            #expect(result.all.contains("rollouts/deep/plan.json:1:65: nesting deeper than 64 levels"), "\(result.all)")
            #expect(
                result.all.contains(
                    "rollouts/huge/plan.json:1:1: is \(huge.utf8.count) bytes, over the 1 MiB limit"),
                "\(result.all)")
            #expect(
                result.all.contains(
                    "rollouts/big-number/plan.json:6:64: "
                        + "number 10000000000000000000…(401 characters) "
                        + "is out of range"), "\(result.all)")
        }
    }
}
