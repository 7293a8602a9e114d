import AsyncHTTPClient
import Foundation
import Logging
import RolloutCore
import RolloutTestSupport
import Testing

@testable import RolloutAdapters
@testable import RolloutKit

// Health gates against a REAL Prometheus (Debian's `prometheus` + `promtool`), with the
// project's own EXP-001 queries read from rollouts/exp-001-autosave/plan.json.
//
// One Prometheus serves the whole `PrometheusHealthTests` suite: every scenario is backfilled
// at once, each on its own days (`PrometheusTimeline`), and every test gets a RolloutWorld
// whose hour 0 is the first hour of its scenario. The fault tests that pause and stop
// Prometheus start their own (a second start-up); the 503 test uses HTTPTestServer because a
// real Prometheus cannot be made to answer 503.

// MARK: - The repository's own files

enum PackageFiles {
    /// The package root: the nearest folder above this file that holds Package.swift.
    static let root: URL = {
        var url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while url.path != "/" {
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
                return url
            }
            url.deleteLastPathComponent()
        }
        fatalError("no Package.swift above \(#filePath)")
    }()

    static func text(_ path: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
    }

    /// rollouts/exp-001-autosave/plan.json as committed in this repository, with its gating checks only: the
    /// `notify` watches never gate (NotifyWatchTests, TimelineAndNotifyCommandTests and ServeCommandTests cover them).
    static func exp001Plan() throws -> String {
        let committed = try text("rollouts/exp-001-autosave/plan.json")
        guard var plan = try JSONSerialization.jsonObject(with: Data(committed.utf8)) as? [String: Any],
            var health = plan["health"] as? [String: Any], let checks = health["checks"] as? [[String: Any]]
        else {
            return committed
        }
        health["checks"] = checks.filter { $0["onBreach"] as? String != "notify" }
        plan["health"] = health
        let data = try JSONSerialization.data(withJSONObject: plan, options: [.prettyPrinted, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }

    /// The plan's health checks: name → (query, min, max, onBreach, onNoData).
    static func exp001Checks() throws -> [[String: Any]] {
        let plan = try JSONSerialization.jsonObject(with: Data(try exp001Plan().utf8)) as? [String: Any]
        let health = plan?["health"] as? [String: Any]
        return (health?["checks"] as? [[String: Any]]) ?? []
    }

    /// The built command, `<root>/.build/debug/rolloutctl` (`swift build --build-tests` builds it).
    static var rolloutctl: String {
        BuiltProduct.debug("rolloutctl") ?? root.appendingPathComponent(".build/debug/rolloutctl").path
    }
}

// MARK: - Telemetry: every scenario on its own days

enum PrometheusTimeline {
    /// 2027-01-01T00:00:00Z, RolloutWorld's default hour 0.
    static let base = RolloutWorld.defaultStart
    static func day(_ n: Int) -> Date { base.addingTimeInterval(Double(n) * 86400) }
    /// One sample every 10 minutes: each window of an hour or more has at least 6 samples.
    static let step: TimeInterval = 600

    /// Healthy staging and production, hours −4 to 64, with traffic split as the full EXP-001 run
    /// splits it (`exposure`): staging 100% from hour 0, production 10% from hour 3, 50% from
    /// hour 27, 100% from hour 61. At 100% there is no control traffic, so `latency-p95-delta`
    /// takes its baseline from the window before the phase (`offset {{window}}`).
    static let healthy = day(0)
    /// Staging healthy; production's error rate 3%; hours 0–30.
    static let errors = day(4)
    /// Staging healthy; production's treatment p95 +25%; hours 0–30.
    static let slowLatency = day(8)
    /// Staging healthy for hours 0–30; production only for hours 0–0.5 (before canary-10 begins at hour 1).
    static let noData = day(12)
    /// Healthy values from two pods (instances portal-1 and portal-2), hours 0–4.
    static let duplicated = day(16)
    /// Six flags, `portal_form_autosave_1` … `_6`, each with error rate i/1000, hours 0–2.
    static let manyFlags = day(20)
    static let manyFlagNames = (1...6).map { "portal_form_autosave_\($0)" }

    static func only(_ environments: [String], _ segment: TelemetrySegment) -> TelemetrySegment {
        var segment = segment
        segment.environments = environments
        return segment
    }

    /// Healthy traffic in one environment of the `healthy` days from hour `from` to hour `to`,
    /// with the flag at `coverage`%: the treatment gets that share of 1000 requests and 100
    /// forms per step, the control the rest.
    static func exposure(_ environment: String, coverage: Double, from: Double, to: Double) -> TelemetrySegment {
        var segment = TelemetrySegment.healthy(
            start: healthy.addingTimeInterval(from * 3600), hours: to - from,
            step: step)
        segment.environments = [environment]
        segment.treatmentRequestsPerStep = 10 * coverage
        segment.controlRequestsPerStep = 10 * (100 - coverage)
        segment.treatmentFormsPerStep = coverage
        segment.controlFormsPerStep = 100 - coverage
        return segment
    }

    static var segments: [TelemetrySegment] {
        var segments: [TelemetrySegment] = [
            exposure("staging", coverage: 0, from: -4, to: 0),
            exposure("staging", coverage: 100, from: 0, to: 64),
            exposure("production", coverage: 0, from: -4, to: 3),
            exposure("production", coverage: 10, from: 3, to: 27),
            exposure("production", coverage: 50, from: 27, to: 61),
            exposure("production", coverage: 100, from: 61, to: 64),
            only(["staging"], .healthy(start: errors, hours: 30, step: step)),
            only(["production"], .failingErrors(start: errors, hours: 30, step: step)),
            only(["staging"], .healthy(start: slowLatency, hours: 30, step: step)),
            only(["production"], .slowLatency(start: slowLatency, hours: 30, step: step)),
            only(["staging"], .healthy(start: noData, hours: 30, step: step)),
            only(["production"], .healthy(start: noData, hours: 0.5, step: step)),
            .duplicated(start: duplicated, hours: 4, step: step),
        ]
        for (i, flag) in manyFlagNames.enumerated() {
            var segment = TelemetrySegment.failingErrors(
                start: manyFlags, hours: 2, errorRate: Double(i + 1) / 1000,
                step: step)
            segment.flag = flag
            segments.append(segment)
        }
        return segments
    }
}

// MARK: - One Prometheus for a suite

enum SharedPrometheus {
    @TaskLocal static var fixture: PrometheusFixture?

    static func current() throws -> PrometheusFixture {
        guard let fixture else {
            throw FixtureError("no shared Prometheus: the suite needs the .sharedPrometheus trait")
        }
        return fixture
    }
}

/// Backfills `PrometheusTimeline.segments` and starts one Prometheus around the whole suite;
/// stops it when the suite is done.
struct SharedPrometheusTrait: SuiteTrait, TestScoping {
    var isRecursive: Bool { false }

    func provideScope(
        for test: Test, testCase: Test.Case?,
        performing function: @Sendable () async throws -> Void
    ) async throws {
        guard PrometheusFixture.isAvailable else {
            try await function()
            return
        }
        let fixture = try await PrometheusFixture.start(segments: PrometheusTimeline.segments)
        do {
            try await SharedPrometheus.$fixture.withValue(fixture) {
                try await function()
            }
        } catch {
            await fixture.stopWithoutBlocking()
            throw error
        }
        await fixture.stopWithoutBlocking()
    }
}

extension Trait where Self == SharedPrometheusTrait {
    static var sharedPrometheus: Self { Self() }
}

let prometheusUnavailable = Comment(rawValue: PrometheusFixture.unavailableReason ?? "")

// MARK: - Helpers

/// A RolloutWorld on the repository's EXP-001 plan whose metrics come from Prometheus at `baseURL`
/// through PrometheusMetricsProvider (the `--metrics http://…` provider).
func withPrometheusWorld<T>(
    start: Date, baseURL: String, plan: String? = nil, retry: RetryPolicy = .prometheusDefault,
    _ body: (RolloutWorld) async throws -> T
) async throws -> T {
    let plan = try plan ?? PackageFiles.exp001Plan()
    return try await withAdapterHTTPClient { client in
        let provider = PrometheusMetricsProvider(
            baseURL: baseURL, client: client, retry: retry,
            logger: Logger(label: "test"))
        let world = try RolloutWorld(metrics: provider, start: start)
        try world.seed(plan: plan)
        return try await body(world)
    }
}

/// Hour 0: staging; then the three approvals of canary-10; at `hours`: canary-10 (production 10%).
func enterCanary10(_ world: RolloutWorld, at hours: Double) async throws {
    var report = try await world.run(hours: 0)
    #expect(report.rollout()?.nextPhase == "staging")
    try world.approveCanary10()
    report = try await world.run(hours: hours)
    let rollout = try #require(report.rollout())
    try #require(rollout.nextPhase == "canary-10", "not in canary-10: \(rollout.blockers.map(\.detail))")
    #expect(rollout.health.map(\.verdict) == [.pass, .pass, .pass])
    #expect(try await world.flagState()["production"] == FlagEnvironmentState(enabled: true, coverage: 10))
}

/// `rolloutctl plan --json` (the built binary) on the world's repository, state and flags.
func planJSON(_ world: RolloutWorld, hours: Double, metrics: String) async throws -> [String: Any] {
    let binary = PackageFiles.rolloutctl
    guard FileManager.default.isExecutableFile(atPath: binary) else {
        throw FixtureError("\(binary) is missing: run `swift build --build-tests` first")
    }
    let arguments = [
        "plan", "--json", "--no-color",
        "--repo", world.repo.path,
        "--now", RFC3339.format(world.time(hours: hours)),
        "--metrics", metrics,
        "--state", world.statePath,
        "--flags", "file:" + world.stateDirectory.file("flags.json"),
    ]
    let output = try await runOffCooperativePool { try runProgram(binary, arguments) }
    guard let document = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any] else {
        throw FixtureError("plan --json printed no JSON object:\n\(output)")
    }
    return document
}

/// `rolloutctl plan` (the built binary, human output, no colour) on the world's repository.
func planText(_ world: RolloutWorld, hours: Double, metrics: String) async throws -> String {
    let binary = PackageFiles.rolloutctl
    guard FileManager.default.isExecutableFile(atPath: binary) else {
        throw FixtureError("\(binary) is missing: run `swift build --build-tests` first")
    }
    let arguments = [
        "plan", "--no-color",
        "--repo", world.repo.path,
        "--now", RFC3339.format(world.time(hours: hours)),
        "--metrics", metrics,
        "--state", world.statePath,
        "--flags", "file:" + world.stateDirectory.file("flags.json"),
    ]
    return try await runOffCooperativePool { try runProgram(binary, arguments) }
}

/// The `health` array of one rollout of a `plan --json` document, by check name.
func healthByCheck(_ document: [String: Any], rollout: String = "exp-001-autosave") throws -> [String: [String: Any]] {
    let rollouts = try #require(document["rollouts"] as? [[String: Any]])
    let entry = try #require(rollouts.first { $0["name"] as? String == rollout })
    let health = try #require(entry["health"] as? [[String: Any]])
    return Dictionary(health.map { ($0["check"] as? String ?? "?", $0) }, uniquingKeysWith: { a, _ in a })
}

func approximately(_ value: Double?, _ expected: Double, tolerance: Double = 1e-6) -> Bool {
    guard let value else { return false }
    return abs(value - expected) <= tolerance
}

extension RolloutReport {
    func health(_ check: String) -> HealthResult? { health.first { $0.check.name == check } }
}

/// Wraps a metrics provider: records every query and how many run at once (in all, and
/// distinct flags, i.e. rollouts), holding each for `delay` so that overlaps show.
final class RecordingMetrics: MetricsProvider, @unchecked Sendable {
    let inner: MetricsProvider
    let delay: Duration
    private let lock = NSLock()
    private var inFlight: [String] = []
    private(set) var queries: [MetricQuery] = []
    private(set) var maxInFlight = 0
    private(set) var maxFlagsInFlight = 0
    let flags: [String]

    init(_ inner: MetricsProvider, flags: [String], delay: Duration) {
        self.inner = inner
        self.flags = flags
        self.delay = delay
    }

    func evaluate(_ query: MetricQuery) async -> MetricResult {
        // The longest matching name: portal_form_autosave_1 is not portal_form_autosave_10.
        let flag = flags.filter { query.query.contains("flag=\"\($0)\"") }.max { $0.count < $1.count } ?? "?"
        lock.withLock {
            queries.append(query)
            inFlight.append(flag)
            maxInFlight = max(maxInFlight, inFlight.count)
            maxFlagsInFlight = max(maxFlagsInFlight, Set(inFlight).count)
        }
        try? await Task.sleep(for: delay)
        let result = await inner.evaluate(query)
        lock.withLock {
            if let index = inFlight.firstIndex(of: flag) { inFlight.remove(at: index) }
        }
        return result
    }
}

// MARK: - The suites, one test at a time

/// Every test below runs alone: on a 2-core CI machine, tests that start processes (git,
/// promtool, prometheus, rolloutctl) side by side starve the other suites' timing tests.
@Suite("Prometheus health gates", .serialized)
struct PrometheusHealthGates {}

// MARK: - The queries are the project's own (no Prometheus needed)

extension PrometheusHealthGates {
    @Suite("EXP-001 health queries and a 503 from Prometheus")
    struct EXP001HealthQueryTests {
        @Test func thePlanFixtureScriptAndDocsShareTheSameQueries() throws {
            let checks = try PackageFiles.exp001Checks()
            let planQueries = Dictionary(
                checks.map { ($0["name"] as? String ?? "?", $0["query"] as? String ?? "") },
                uniquingKeysWith: { a, _ in a })
            #expect(planQueries == PrometheusFixture.Queries.all)

            let script =
                try JSONSerialization.jsonObject(
                    with: Data(try PackageFiles.text("scripts/exp001-health-queries.json").utf8)) as? [String: String]
            #expect(script == PrometheusFixture.Queries.all)

            // The thresholds and actions the tests below rely on.
            let byName = Dictionary(checks.map { ($0["name"] as? String ?? "?", $0) }, uniquingKeysWith: { a, _ in a })
            #expect(byName["error-rate"]?["max"] as? Double == 0.02)
            #expect(byName["error-rate"]?["onBreach"] as? String == "rollback")
            #expect(byName["latency-p95-delta"]?["max"] as? Double == 0.2)
            #expect(byName["latency-p95-delta"]?["onBreach"] as? String == "hold")
            #expect(byName["submission-success"]?["min"] as? Double == 0.95)
            #expect(byName["submission-success"]?["onBreach"] as? String == "rollback")
            #expect(checks.allSatisfy { ($0["onNoData"] as? String ?? "hold") == "hold" })

            // docs/prometheus.md shows each query verbatim.
            let docs = try PackageFiles.text("docs/prometheus.md")
            for (name, query) in PrometheusFixture.Queries.all {
                #expect(docs.contains(query), "docs/prometheus.md lacks the query of \(name)")
            }
        }

        /// A real Prometheus cannot be made to answer 503, so this one is a fake (HTTPTestServer).
        @Test func fake503PrometheusHoldsAndShowsTheReasonAndSendsTheReconcileClock() async throws {
            try await withAdapterTestServer({ _ in .text(503, "Service Unavailable") }) { server in
                try await withPrometheusWorld(
                    start: PrometheusTimeline.healthy, baseURL: server.baseURL,
                    retry: .adapterTest(maxAttempts: 2)
                ) { world in
                    _ = try await world.run(hours: 0)  // staging: no checks before a phase is entered
                    #expect(server.requestCount == 0)
                    try world.approveCanary10()

                    let report = try await world.run(hours: 2)
                    let rollout = try #require(report.rollout())
                    #expect(rollout.status == .holding)
                    #expect(rollout.currentPhase == "staging")
                    #expect(rollout.changes.isEmpty)
                    #expect(try await world.flagState()["production"] == nil)
                    #expect(rollout.health.count == 3)
                    for result in rollout.health {
                        #expect(result.verdict == .noData)
                        #expect(
                            result.noDataReason?.hasPrefix("prometheus answered HTTP 503") == true,
                            "\(result.noDataReason ?? "nil")")
                    }
                    let healthBlockers = rollout.blockers.filter { $0.kind == .health }
                    #expect(
                        Set(healthBlockers.compactMap(\.check)) == [
                            "error-rate", "latency-p95-delta", "submission-success",
                        ])
                    #expect(healthBlockers.allSatisfy { $0.detail.contains("prometheus answered HTTP 503") })

                    // Each query: the check's text with the placeholders filled in, at the reconcile's clock.
                    let requests = server.requests
                    #expect(requests.count == 6)  // 3 checks × 2 attempts
                    let now = PrometheusMetricsProvider.formatTime(world.time(hours: 2))
                    #expect(requests.allSatisfy { $0.path == "/api/v1/query" && $0.queryItems["time"] == now })
                    let expected = Set(
                        PrometheusFixture.Queries.all.values.map {
                            PrometheusFixture.Queries.substitute(
                                $0, flag: "portal_form_autosave", environment: "staging",
                                window: 7200)
                        })
                    #expect(Set(requests.compactMap { $0.queryItems["query"] }) == expected)

                    // The audit log keeps the reason of the hold.
                    let store = try SQLiteStateStore(path: world.statePath)
                    let hold = try #require(
                        try store.history(rollout: "exp-001-autosave").first { $0.reason == "holding" })
                    #expect(hold.detail?.contains("prometheus answered HTTP 503") == true, "\(hold.detail ?? "nil")")
                }
            }
        }
    }

}

// MARK: - Against one real Prometheus

extension PrometheusHealthGates {
    @Suite(
        "Health gates against a real Prometheus",
        .enabled(if: PrometheusFixture.isAvailable, prometheusUnavailable), .sharedPrometheus)
    struct PrometheusHealthTests {
        var baseURL: String { get throws { try SharedPrometheus.current().baseURL.absoluteString } }

        @Test func healthyTelemetryAdvances() async throws {
            try await withPrometheusWorld(start: PrometheusTimeline.healthy, baseURL: try baseURL) { world in
                _ = try await world.run(hours: 0)
                try world.approveCanary10()

                let report = try await world.run(hours: 2)
                let rollout = try #require(report.rollout())
                #expect(rollout.nextPhase == "canary-10")
                #expect(
                    rollout.changes == [
                        Change(
                            environment: "production", from: nil,
                            to: FlagEnvironmentState(enabled: true, coverage: 10), reason: .advance)
                    ])
                // Staging's checks, over the 2 hours since staging was entered.
                #expect(rollout.health.map(\.environment) == ["staging", "staging", "staging"])
                #expect(rollout.health.map(\.verdict) == [.pass, .pass, .pass])
                #expect(approximately(rollout.health("error-rate")?.value, 0.005))
                #expect(approximately(rollout.health("latency-p95-delta")?.value, 0.05))
                #expect(approximately(rollout.health("submission-success")?.value, 0.98))
                #expect(try await world.flagState()["production"] == FlagEnvironmentState(enabled: true, coverage: 10))
            }
        }

        @Test func errorRateOf3PercentRollsBackEveryEnvironment() async throws {
            let url = try baseURL
            try await withPrometheusWorld(start: PrometheusTimeline.errors, baseURL: url) { world in
                try await enterCanary10(world, at: 1)

                // plan --json, before the reconcile: the breach, its value and threshold.
                let document = try await planJSON(world, hours: 3, metrics: url)
                let health = try healthByCheck(document)
                #expect(health["error-rate"]?["verdict"] as? String == "breach")
                #expect(approximately(health["error-rate"]?["value"] as? Double, 0.03))
                #expect(health["error-rate"]?["max"] as? Double == 0.02)
                #expect(health["error-rate"]?["environment"] as? String == "production")
                let planned = try #require((document["rollouts"] as? [[String: Any]])?.first)
                #expect(planned["status"] as? String == "rolled-back")
                let plannedChanges = planned["changes"] as? [[String: Any]] ?? []
                #expect(Set(plannedChanges.compactMap { $0["environment"] as? String }) == ["staging", "production"])
                #expect(plannedChanges.allSatisfy { $0["reason"] as? String == "rollback" })

                var report = try await world.run(hours: 3)
                let rollout = try #require(report.rollout())
                #expect(rollout.status == .rolledBack)
                #expect(Set(rollout.changes.map(\.environment)) == ["staging", "production"])
                #expect(rollout.changes.allSatisfy { $0.reason == .rollback && $0.to == .disabled })
                #expect(try await world.flagState() == ["staging": .disabled, "production": .disabled])
                #expect(approximately(rollout.health("error-rate")?.value, 0.03))
                #expect(rollout.health("error-rate")?.verdict == .breach)
                let blocker = try #require(rollout.blockers.first { $0.kind == .health })
                #expect(blocker.check == "error-rate")
                #expect(blocker.detail.contains("error-rate = 0.03, max 0.02"), "\(blocker.detail)")

                // The audit log records the value behind the rollback, for each environment.
                let store = try SQLiteStateStore(path: world.statePath)
                let intents = try store.history(rollout: "exp-001-autosave").filter {
                    $0.kind == .intent && $0.reason == "rollback"
                }
                #expect(Set(intents.compactMap(\.environment)) == ["staging", "production"])
                #expect(
                    intents.allSatisfy { $0.detail?.contains("error-rate = 0.03, max 0.02") == true },
                    "\(intents.map(\.detail))")

                // And it stays rolled back.
                report = try await world.run(hours: 5)
                #expect(report.rollout()?.status == .rolledBack)
                #expect(report.rollout()?.changes.isEmpty == true)
            }
        }

        @Test func p95Plus25PercentHoldsAndCoverageStays() async throws {
            try await withPrometheusWorld(start: PrometheusTimeline.slowLatency, baseURL: try baseURL) { world in
                try await enterCanary10(world, at: 1)

                // Hour 26: canary-10 has baked 25h and needs no approval for canary-50; only health blocks.
                var report = try await world.run(hours: 26)
                var rollout = try #require(report.rollout())
                #expect(rollout.status == .holding)
                #expect(rollout.currentPhase == "canary-10")
                #expect(rollout.changes.isEmpty)
                #expect(rollout.blockers.map(\.kind) == [.health])
                #expect(rollout.blockers.first?.check == "latency-p95-delta")
                #expect(approximately(rollout.health("latency-p95-delta")?.value, 0.25))
                #expect(rollout.health("latency-p95-delta")?.verdict == .breach)
                #expect(rollout.health("error-rate")?.verdict == .pass)
                #expect(rollout.health("submission-success")?.verdict == .pass)
                #expect(try await world.flagState()["production"] == FlagEnvironmentState(enabled: true, coverage: 10))

                report = try await world.run(hours: 28)
                rollout = try #require(report.rollout())
                #expect(rollout.status == .holding)
                #expect(try await world.flagState()["production"] == FlagEnvironmentState(enabled: true, coverage: 10))

                // The audit log records the value behind the hold.
                let store = try SQLiteStateStore(path: world.statePath)
                let hold = try #require(try store.history(rollout: "exp-001-autosave").first { $0.reason == "holding" })
                #expect(hold.kind == .event)
                #expect(hold.phase == "canary-10")
                #expect(hold.detail?.contains("latency-p95-delta = 0.25, max 0.2") == true, "\(hold.detail ?? "nil")")
            }
        }

        /// A hold that begins in a run that also corrects drift: the hold's values still reach the audit log.
        @Test func p95Plus25PercentHoldWhileCorrectingDriftIsAudited() async throws {
            try await withPrometheusWorld(start: PrometheusTimeline.slowLatency, baseURL: try baseURL) { world in
                try await enterCanary10(world, at: 1)
                // Someone raises production to 20% by hand.
                let flag = try await world.flags.read(flag: "portal_form_autosave")
                _ = try await world.flags.apply(
                    flag: "portal_form_autosave",
                    patch: FlagPatch(environment: "production", enabled: true, coverage: 20),
                    ifMatch: flag.version)

                var report = try await world.run(hours: 26)
                let rollout = try #require(report.rollout())
                #expect(rollout.status == .holding)
                #expect(
                    rollout.changes == [
                        Change(
                            environment: "production",
                            from: FlagEnvironmentState(enabled: true, coverage: 20),
                            to: FlagEnvironmentState(enabled: true, coverage: 10), reason: .drift)
                    ])
                #expect(try await world.flagState()["production"] == FlagEnvironmentState(enabled: true, coverage: 10))
                report = try await world.run(hours: 27)
                #expect(report.rollout()?.status == .holding)

                let store = try SQLiteStateStore(path: world.statePath)
                let history = try store.history(rollout: "exp-001-autosave")
                #expect(
                    history.contains { $0.detail?.contains("latency-p95-delta = 0.25, max 0.2") == true },
                    "\(history.map { "\($0.kind) \($0.reason): \($0.detail ?? "")" })")
            }
        }

        @Test func noSamplesInTheWindowHoldsWithReasonNoData() async throws {
            try await withPrometheusWorld(start: PrometheusTimeline.noData, baseURL: try baseURL) { world in
                try await enterCanary10(world, at: 1)

                // Production has samples only before canary-10 began: none in the window.
                let report = try await world.run(hours: 26)
                let rollout = try #require(report.rollout())
                #expect(rollout.status == .holding)
                #expect(rollout.changes.isEmpty)
                #expect(rollout.health.count == 3)
                #expect(
                    rollout.health.allSatisfy { $0.verdict == .noData && $0.noDataReason == "no data" },
                    "\(rollout.health.map(\.summary))")
                #expect(rollout.blockers.filter { $0.kind == .health }.count == 3)
                #expect(
                    rollout.blockers.allSatisfy { $0.kind == .health && $0.detail.hasSuffix(": no data (no data)") },
                    "\(rollout.blockers.map(\.detail))")
                #expect(try await world.flagState()["production"] == FlagEnvironmentState(enabled: true, coverage: 10))

                let store = try SQLiteStateStore(path: world.statePath)
                let hold = try #require(try store.history(rollout: "exp-001-autosave").first { $0.reason == "holding" })
                #expect(hold.detail?.contains("error-rate: no data (no data)") == true, "\(hold.detail ?? "nil")")
            }
        }

        @Test func aQueryMatchingTwoSeriesHoldsAsAmbiguous() async throws {
            // The project's three checks, plus one that does not aggregate over pods.
            var plan = try #require(
                JSONSerialization.jsonObject(with: Data(try PackageFiles.exp001Plan().utf8))
                    as? [String: Any])
            var health = try #require(plan["health"] as? [String: Any])
            var checks = try #require(health["checks"] as? [[String: Any]])
            checks.append([
                "name": "submitted-per-pod", "query": PrometheusFixture.Queries.unaggregatedSubmitted,
                "min": 1, "onBreach": "hold",
            ])
            health["checks"] = checks
            plan["health"] = health
            let text = String(
                decoding: try JSONSerialization.data(withJSONObject: plan, options: [.prettyPrinted, .sortedKeys]),
                as: UTF8.self)

            try await withPrometheusWorld(start: PrometheusTimeline.duplicated, baseURL: try baseURL, plan: text) {
                world in
                _ = try await world.run(hours: 0)
                try world.approveCanary10()

                let report = try await world.run(hours: 2)
                let rollout = try #require(report.rollout())
                #expect(rollout.status == .holding)
                #expect(rollout.currentPhase == "staging")
                #expect(rollout.changes.isEmpty)
                #expect(try await world.flagState()["production"] == nil)
                let perPod = try #require(rollout.health("submitted-per-pod"))
                #expect(perPod.verdict == .noData)
                #expect(perPod.noDataReason == "ambiguous: 2 series")
                #expect(rollout.blockers.map(\.check) == ["submitted-per-pod"])
                #expect(rollout.blockers.first?.detail.contains("ambiguous: 2 series") == true)
                // The project's queries aggregate over pods: one series each, the same values as one pod.
                #expect(approximately(rollout.health("error-rate")?.value, 0.005))
                #expect(approximately(rollout.health("latency-p95-delta")?.value, 0.05))
                #expect(approximately(rollout.health("submission-success")?.value, 0.98))
            }
        }

        /// EXP001ReconcileTests.fromStagingToProduction, with Prometheus as the source of health.
        @Test func fullEXP001RunWithPrometheus() async throws {
            try await withPrometheusWorld(start: PrometheusTimeline.healthy, baseURL: try baseURL) { world in
                func expectHealthy(
                    _ rollout: RolloutReport, _ environment: String,
                    sourceLocation: SourceLocation = #_sourceLocation
                ) {
                    #expect(
                        rollout.health.map(\.check.name) == ["error-rate", "latency-p95-delta", "submission-success"],
                        sourceLocation: sourceLocation)
                    #expect(
                        rollout.health.allSatisfy { $0.verdict == .pass && $0.environment == environment },
                        "\(rollout.health.map(\.summary))", sourceLocation: sourceLocation)
                    #expect(approximately(rollout.health("error-rate")?.value, 0.005), sourceLocation: sourceLocation)
                    #expect(
                        approximately(rollout.health("submission-success")?.value, 0.98), sourceLocation: sourceLocation
                    )
                }

                // Hour 0: staging goes to 100% (no phase yet, so no checks).
                var report = try await world.run(hours: 0)
                var rollout = try #require(report.rollout())
                #expect(rollout.changes.map(\.environment) == ["staging"])
                #expect(rollout.health.isEmpty)
                #expect(try await world.flagState() == ["staging": FlagEnvironmentState(enabled: true, coverage: 100)])

                // canary-10 is blocked until its three approvals are merged; staging's health is good.
                report = try await world.run(.plan, hours: 1)
                rollout = try #require(report.rollout())
                #expect(rollout.status == .blocked)
                #expect(Set(rollout.blockers.compactMap(\.role)) == ["engineering-lead", "qa-lead", "sre"])
                #expect(rollout.blockers.allSatisfy { $0.kind == .approval })
                expectHealthy(rollout, "staging")

                try world.approve("canary-10", role: "engineering-lead", by: RolloutWorld.erin)
                try world.approve("canary-10", role: "qa-lead", by: RolloutWorld.quinn)
                report = try await world.run(hours: 2)
                rollout = try #require(report.rollout())
                #expect(rollout.blockers.compactMap(\.role) == ["sre"])
                #expect(rollout.changes.isEmpty)

                try world.approve("canary-10", role: "sre", by: RolloutWorld.dana)
                report = try await world.run(hours: 3)
                rollout = try #require(report.rollout())
                #expect(rollout.nextPhase == "canary-10")
                expectHealthy(rollout, "staging")
                #expect(try await world.flagState()["production"] == FlagEnvironmentState(enabled: true, coverage: 10))

                // canary-50 waits for a 24h bake from hour 3; production's health is checked meanwhile.
                report = try await world.run(.plan, hours: 3 + 10 + 40.0 / 60)
                rollout = try #require(report.rollout())
                #expect(rollout.blockers.map(\.kind) == [.bake])
                #expect(rollout.blockers.first?.remainingSeconds == 13 * 3600 + 20 * 60)
                expectHealthy(rollout, "production")
                report = try await world.run(hours: 26.9)
                #expect(report.rollout()?.changes.isEmpty == true)

                report = try await world.run(hours: 27)
                rollout = try #require(report.rollout())
                #expect(rollout.nextPhase == "canary-50")
                expectHealthy(rollout, "production")
                #expect(try await world.flagState()["production"] == FlagEnvironmentState(enabled: true, coverage: 50))

                // One advance per run: production needs the product owner, even after the bake.
                report = try await world.run(hours: 60)
                rollout = try #require(report.rollout())
                #expect(rollout.status == .blocked)
                #expect(rollout.blockers.map(\.role) == ["product-owner"])
                expectHealthy(rollout, "production")

                try world.approve("production", role: "product-owner", by: RolloutWorld.pat)
                report = try await world.run(hours: 61)
                rollout = try #require(report.rollout())
                #expect(rollout.nextPhase == "production")
                expectHealthy(rollout, "production")
                #expect(
                    try await world.flagState() == [
                        "staging": FlagEnvironmentState(enabled: true, coverage: 100),
                        "production": FlagEnvironmentState(enabled: true, coverage: 100),
                    ])

                report = try await world.run(hours: 62)
                rollout = try #require(report.rollout())
                #expect(rollout.status == .completed)
                #expect(rollout.changes.isEmpty)
                expectHealthy(rollout, "production")

                let store = try SQLiteStateStore(path: world.statePath)
                let history = try store.history(rollout: "exp-001-autosave").reversed()
                let applied = history.filter { $0.kind == .result && $0.result == "applied" }
                #expect(applied.map(\.phase) == ["staging", "canary-10", "canary-50", "production"])
                #expect(!history.contains { $0.reason == "holding" || $0.reason == "rollback" })
            }
        }

        @Test func planJSONShowsEachChecksValueThresholdAndVerdict() async throws {
            let url = try baseURL
            try await withPrometheusWorld(start: PrometheusTimeline.slowLatency, baseURL: url) { world in
                try await enterCanary10(world, at: 1)
                let document = try await planJSON(world, hours: 26, metrics: url)
                let health = try healthByCheck(document)
                #expect(health.count == 3)

                let error = try #require(health["error-rate"])
                #expect(approximately(error["value"] as? Double, 0.005))
                #expect(error["max"] as? Double == 0.02)
                #expect(error["min"] == nil)
                #expect(error["verdict"] as? String == "pass")
                #expect(error["reason"] == nil)

                let latency = try #require(health["latency-p95-delta"])
                #expect(approximately(latency["value"] as? Double, 0.25))
                #expect(latency["max"] as? Double == 0.2)
                #expect(latency["verdict"] as? String == "breach")
                #expect(latency["onBreach"] as? String == "hold")

                let submissions = try #require(health["submission-success"])
                #expect(approximately(submissions["value"] as? Double, 0.98))
                #expect(submissions["min"] as? Double == 0.95)
                #expect(submissions["max"] == nil)
                #expect(submissions["verdict"] as? String == "pass")

                let rollout = try #require((document["rollouts"] as? [[String: Any]])?.first)
                #expect(rollout["status"] as? String == "holding")
                let blockers = rollout["blockers"] as? [[String: Any]] ?? []
                #expect(blockers.map { $0["check"] as? String } == ["latency-p95-delta"])
                #expect(blockers.first?["kind"] as? String == "health")

                let text = try await planText(world, hours: 26, metrics: url)
                #expect(text.contains("health: hold: latency-p95-delta = 0.25, max 0.2"), "\(text)")
                #expect(text.contains("check error-rate = 0.005, max 0.02: ok"), "\(text)")
                #expect(text.contains("check submission-success = 0.98, min 0.95: ok"), "\(text)")
            }
        }

        @Test func planJSONShowsTheReasonForNoData() async throws {
            let url = try baseURL
            try await withPrometheusWorld(start: PrometheusTimeline.noData, baseURL: url) { world in
                try await enterCanary10(world, at: 1)
                let document = try await planJSON(world, hours: 26, metrics: url)
                let health = try healthByCheck(document)
                #expect(Set(health.keys) == ["error-rate", "latency-p95-delta", "submission-success"])
                for (name, entry) in health {
                    #expect(entry["verdict"] as? String == "no-data", "\(name)")
                    #expect(entry["reason"] as? String == "no data", "\(name)")
                    #expect(entry["value"] is NSNull, "\(name): \(entry["value"] ?? "absent")")
                    #expect(entry["onNoData"] as? String == "hold", "\(name)")
                }
                #expect(health["error-rate"]?["max"] as? Double == 0.02)
                #expect(health["submission-success"]?["min"] as? Double == 0.95)

                let text = try await planText(world, hours: 26, metrics: url)
                for name in ["error-rate", "latency-p95-delta", "submission-success"] {
                    #expect(text.contains("health: hold: \(name): no data (no data)"), "\(text)")
                }
            }
        }

        /// Rollouts are reconciled in a task group bounded by `RunSettings.concurrency`; the checks
        /// of one rollout run together; every query is asked at the reconcile's clock.
        @Test func queriesOfDifferentRolloutsRunConcurrentlyWithinTheBoundAtTheReconcileClock() async throws {
            let url = try baseURL
            try await withAdapterHTTPClient { client in
                let provider = PrometheusMetricsProvider(baseURL: url, client: client, logger: Logger(label: "test"))
                let names = PrometheusTimeline.manyFlagNames
                let recorder = RecordingMetrics(provider, flags: names, delay: .milliseconds(300))
                let world = try RolloutWorld(metrics: recorder, start: PrometheusTimeline.manyFlags)
                let plan = try PackageFiles.exp001Plan()
                for (i, flag) in names.enumerated() {
                    try world.seed(
                        plan:
                            plan
                            .replacingOccurrences(of: "\"exp-001-autosave\"", with: "\"exp-001-autosave-\(i + 1)\"")
                            .replacingOccurrences(of: "\"portal_form_autosave\"", with: "\"\(flag)\""),
                        rollout: "exp-001-autosave-\(i + 1)")
                }
                // Hour 0: every rollout enters staging (no checks yet).
                var report = try await world.run(hours: 0)
                #expect(report.rollouts.count == 6)
                #expect(report.rollouts.allSatisfy { $0.nextPhase == "staging" })
                #expect(recorder.queries.isEmpty)

                // Hour 1: 6 rollouts × 3 checks, at most 2 rollouts at a time.
                report = try await world.run(.plan, hours: 1, concurrency: 2)
                #expect(recorder.queries.count == 18)
                #expect(recorder.maxFlagsInFlight == 2, "rollouts measured at once: \(recorder.maxFlagsInFlight)")
                #expect(
                    recorder.maxInFlight > 2 && recorder.maxInFlight <= 6, "queries at once: \(recorder.maxInFlight)")
                #expect(recorder.queries.allSatisfy { $0.time == world.time(hours: 1) })
                #expect(recorder.queries.allSatisfy { $0.query.contains("[3600s]") && !$0.query.contains("{{") })

                // Each rollout got its own flag's answer: error rate i/1000 for flag i.
                for (i, _) in names.enumerated() {
                    let rollout = try #require(report.rollout("exp-001-autosave-\(i + 1)"))
                    #expect(
                        approximately(rollout.health("error-rate")?.value, Double(i + 1) / 1000),
                        "\(rollout.name): \(rollout.health.map(\.summary))")
                    #expect(rollout.health.allSatisfy { $0.verdict == .pass })
                }
            }
        }
    }

}

// MARK: - Faults of a real Prometheus

extension PrometheusHealthGates {
    @Suite(
        "A real Prometheus that stops answering",
        .enabled(if: PrometheusFixture.isAvailable, prometheusUnavailable))
    struct PrometheusFaultTests {
        /// One Prometheus, paused (SIGSTOP: connections hang) and then stopped (connection refused).
        @Test func realPrometheusPausedPastTheTimeoutThenStoppedHoldsAndNeverAdvances() async throws {
            let start = PrometheusTimeline.healthy
            let fixture = try await PrometheusFixture.start(segments: [.healthy(start: start, hours: 4, step: 600)])
            defer { fixture.stop() }
            let retry = RetryPolicy.adapterTest(maxAttempts: 2, requestTimeout: .milliseconds(500))
            try await withPrometheusWorld(start: start, baseURL: fixture.baseURL.absoluteString, retry: retry) {
                world in
                _ = try await world.run(hours: 0)
                try world.approveCanary10()

                func expectHeld(
                    _ report: RunReport, _ reason: String, sourceLocation: SourceLocation = #_sourceLocation
                ) async throws {
                    let rollout = try #require(report.rollout(), sourceLocation: sourceLocation)
                    #expect(rollout.status == .holding, sourceLocation: sourceLocation)
                    #expect(rollout.currentPhase == "staging", sourceLocation: sourceLocation)
                    #expect(rollout.changes.isEmpty, sourceLocation: sourceLocation)
                    #expect(rollout.health.count == 3, sourceLocation: sourceLocation)
                    #expect(
                        rollout.health.allSatisfy {
                            $0.verdict == .noData && $0.noDataReason?.contains(reason) == true
                        },
                        "\(rollout.health.map(\.summary))", sourceLocation: sourceLocation)
                    let blockers = rollout.blockers.filter { $0.kind == .health }
                    #expect(blockers.count == 3, sourceLocation: sourceLocation)
                    #expect(
                        blockers.allSatisfy { $0.detail.contains(reason) }, "\(blockers.map(\.detail))",
                        sourceLocation: sourceLocation)
                    #expect(try await world.flagState()["production"] == nil, sourceLocation: sourceLocation)
                }

                // Slow past the timeout: the port accepts connections, nothing answers.
                fixture.pause()
                let clock = ContinuousClock()
                let began = clock.now
                var report = try await world.run(hours: 2)
                fixture.resume()
                try await expectHeld(report, "prometheus timed out after 0.5s")
                #expect(clock.now - began < .seconds(10))

                // Answering again, the same data lets canary-10 go ahead: the data was never the problem.
                report = try await world.run(.plan, hours: 2)
                #expect(report.rollout()?.changes.map(\.environment) == ["production"])
                #expect(report.rollout()?.health.map(\.verdict) == [.pass, .pass, .pass])

                // Stopped: connection refused.
                await fixture.stopWithoutBlocking()
                report = try await world.run(hours: 3)
                try await expectHeld(report, "connection refused")
                #expect(
                    report.rollout()?.health.allSatisfy { $0.noDataReason?.hasPrefix("prometheus unreachable") == true }
                        == true)

                let store = try SQLiteStateStore(path: world.statePath)
                let hold = try #require(try store.history(rollout: "exp-001-autosave").first { $0.reason == "holding" })
                #expect(hold.detail?.contains("timed out") == true, "\(hold.detail ?? "nil")")
            }
        }
    }
}
