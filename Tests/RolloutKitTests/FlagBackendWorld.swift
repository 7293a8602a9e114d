import AsyncHTTPClient
import Foundation
import Logging
import RolloutCore
import RolloutTestSupport
import Testing

@testable import RolloutAdapters
@testable import RolloutKit

/// What the projects' own evaluators make of a flag: which of the keys `user-0` … `user-(n-1)` get `true`.
struct Evaluation: Equatable {
    var trueKeys: Set<Int>
    var errors: Int
    var keys: Int

    /// The share of `true`, in percent.
    var percent: Double { Double(trueKeys.count) * 100 / Double(keys) }
}

/// `scripts/python-evaluators`: OpenFeature's flagd provider (in-process FILE resolver), Unleash's
/// Python SDK and LaunchDarkly's Python server SDK (file data source), installed from PyPI into a
/// virtual environment under `.build/` on first use.
enum PythonEvaluators {
    static let keys = 10_000

    private static var script: String { PackageFiles.root.appendingPathComponent("scripts/python-evaluators").path }

    static func flagd(
        file: String, flags: [String],
        keys: Int = PythonEvaluators.keys
    ) async throws -> [String: Evaluation] {
        try await run(
            ["flagd", "--file", file, "--keys", String(keys)] + flags.flatMap { ["--flag", $0] }, keys: keys)
    }

    static func unleash(
        _ server: FakeUnleash, environment: String, flag: String,
        keys: Int = PythonEvaluators.keys
    ) async throws -> Evaluation {
        let result = try await run(
            [
                "unleash", "--url", server.apiURL,
                "--token", server.clientToken(environment: environment),
                "--environment", environment, "--flag", flag, "--keys", String(keys),
            ], keys: keys)
        return try #require(result[flag])
    }

    /// LaunchDarkly's Python server SDK, its file data source handed the flag exactly as the fake's
    /// REST API holds it (`GET /api/v2/flags/{project}/{flag}`), for one environment.
    static func launchDarkly(
        _ server: FakeLaunchDarkly, environment: String, flag: String,
        keys: Int = PythonEvaluators.keys
    ) async throws -> Evaluation {
        let directory = try TemporaryDirectory(prefix: "rolloutctl-launchdarkly")
        defer { withExtendedLifetime(directory) {} }
        let path = directory.file("\(flag).json")
        let json = try #require(server.flagJSON(flag))
        try Data(json.utf8).write(to: URL(fileURLWithPath: path))
        let result = try await run(
            ["launchdarkly", "--file", path, "--environment", environment, "--keys", String(keys)], keys: keys)
        return try #require(result[flag])
    }

    private static func run(_ arguments: [String], keys: Int) async throws -> [String: Evaluation] {
        let script = self.script
        let output = try await runOffCooperativePool { try runProgram(script, arguments) }
        guard let document = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any],
            let flags = document["flags"] as? [String: [String: Any]]
        else {
            throw FixtureError("python-evaluators printed no result:\n\(output)")
        }
        return flags.mapValues { entry in
            Evaluation(
                trueKeys: Set((entry["true"] as? [Int]) ?? []), errors: (entry["errors"] as? Int) ?? -1,
                keys: keys)
        }
    }
}

/// EXP-001 (staging, then production at 10, 50 and 100%) driven through any flag store, with healthy
/// metrics, time in hours and every log line recorded.
final class FlagBackendWorld: @unchecked Sendable {
    let world: RolloutWorld
    let metrics: MetricsFile
    let files: TemporaryDirectory
    let logs = AdapterLogLines()
    let client: HTTPClient
    let unleash: FakeUnleash

    static let flag = "portal_form_autosave"
    static let otherFlag = "checkout_banner"

    init() async throws {
        metrics = try MetricsFile(MetricsFile.healthy)
        world = try RolloutWorld(metrics: FileMetricsProvider(path: metrics.path))
        world.logger = AdapterLogRecorder.logger(logs)
        files = try TemporaryDirectory(prefix: "rolloutctl-flagd")
        client = RolloutHTTPClient.make()
        unleash = FakeUnleash(project: "portal")
        unleash.setFeature(Self.flag, environments: [.init(name: "staging"), .init(name: "production")])
        try await unleash.start()
    }

    static func with(_ body: (FlagBackendWorld) async throws -> Void) async throws {
        let world = try await FlagBackendWorld()
        do {
            try await body(world)
        } catch {
            await world.shutdown()
            throw error
        }
        await world.shutdown()
    }

    func shutdown() async {
        try? await client.shutdown()
        await unleash.stop()
    }

    // MARK: Stores

    /// A flagd file for one environment: the rollout's flag (off), a second flag whose targeting
    /// uses `$evaluators`, flag-set metadata, and keys in an order no serializer would choose.
    func flagdFile(_ environment: String) throws -> String {
        let path = files.file("\(environment).flagd.json")
        if !FileManager.default.fileExists(atPath: path) {
            try Data(Self.flagdDocument.utf8).write(to: URL(fileURLWithPath: path))
        }
        return path
    }

    static let flagdDocument = """
        {
          "$schema": "https://flagd.dev/schema/v0/flags.json",
          "metadata": { "flagSetId": "portal", "version": "7" },
          "flags": {
            "checkout_banner": {
              "variants": { "shown": true, "hidden": false },
              "state": "ENABLED",
              "defaultVariant": "hidden",
              "targeting": { "$ref": "beta-users" },
              "metadata": { "owner": "growth" }
            },
            "portal_form_autosave": {
              "state": "ENABLED",
              "variants": {
                "on": true,
                "off": false
              },
              "defaultVariant": "off",
              "metadata": { "owner": "portal", "ticket": "EXP-001" }
            }
          },
          "$evaluators": {
            "beta-users": { "if": [ { "ends_with": [ { "var": "targetingKey" }, "7" ] }, "shown", "hidden" ] }
          }
        }

        """

    func flagdStore(_ environment: String) throws -> FlagdFlagStore {
        FlagdFlagStore(path: try flagdFile(environment), environment: environment)
    }

    func unleashStore(retry: RetryPolicy = .adapterTest(), token: String? = nil) -> UnleashFlagStore {
        let (apiURL, project) = UnleashFlagStore.parse(unleash.flagsURL)!
        return UnleashFlagStore(
            apiURL: apiURL, project: project, token: token ?? unleash.adminToken, client: client,
            retry: retry, logger: world.logger)
    }

    // MARK: EXP-001

    /// Runs reconcile at `hours` and requires that the rollout had no error.
    @discardableResult
    func reconcile(hours: Double, _ source: SourceLocation = #_sourceLocation) async throws -> RolloutReport {
        let report = try await world.run(hours: hours)
        let rollout = try #require(report.rollout(), sourceLocation: source)
        #expect(rollout.errors.isEmpty, "\(rollout.errors.map(\.description))", sourceLocation: source)
        return rollout
    }

    /// Seeds EXP-001, reaches staging (hour 0), then calls `check` after each production phase:
    /// canary-10 (hour 1), canary-50 (hour 25) and production (hour 49).
    func runEXP001(check: (_ phase: String, _ coverage: Double) async throws -> Void) async throws {
        try world.seed()
        var rollout = try await reconcile(hours: 0)
        #expect(rollout.changes.map(\.environment) == ["staging"])
        try await check("staging", 100)
        try world.approveCanary10()
        rollout = try await reconcile(hours: 1)
        #expect(rollout.nextPhase == "canary-10")
        try await check("canary-10", 10)
        rollout = try await reconcile(hours: 25)
        #expect(rollout.nextPhase == "canary-50")
        try await check("canary-50", 50)
        try world.approve("production", role: "product-owner", by: RolloutWorld.pat)
        rollout = try await reconcile(hours: 49)
        #expect(rollout.nextPhase == "production")
        try await check("production", 100)
        rollout = try await reconcile(hours: 50)
        #expect(rollout.status == .completed)
        #expect(rollout.changes.isEmpty)
    }
}

/// The checks every evaluator must pass at each phase: the share of `true` within 1.5 points of
/// the coverage, and every key that was true at a lower coverage still true.
struct StickinessLedger {
    private var previous: Set<Int> = []

    mutating func check(_ evaluation: Evaluation, coverage: Double, _ source: SourceLocation = #_sourceLocation) {
        #expect(evaluation.errors == 0, sourceLocation: source)
        #expect(
            abs(evaluation.percent - coverage) <= 1.5, "\(evaluation.percent)% true at coverage \(coverage)",
            sourceLocation: source)
        #expect(
            previous.isSubset(of: evaluation.trueKeys),
            "\(previous.subtracting(evaluation.trueKeys).count) keys lost the flag at coverage \(coverage)",
            sourceLocation: source)
        previous = evaluation.trueKeys
    }
}
