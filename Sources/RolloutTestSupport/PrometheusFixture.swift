import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// A real Prometheus (Debian's `prometheus` package) for tests, on 127.0.0.1, loaded with
// synthetic EXP-001 telemetry that is backfilled with
// `promtool tsdb create-blocks-from openmetrics` into a private data directory.
//
// Telemetry schema (see docs/prometheus.md):
//   http_requests_total{flag,environment,variant,code,job,instance}                 counter
//   http_request_duration_seconds_bucket{flag,environment,variant,le,job,instance}  histogram
//   exp001_form_submitted_total{flag,environment,variant,job,instance}              counter
//   exp001_form_abandoned_total{flag,environment,variant,job,instance}              counter
//   exp001_draft_recovered_total{flag,environment,variant,job,instance}             counter
//     (forms finished from a recovered draft; the control has no autosave, so none)
// variant is "treatment" (flag on for that request) or "control" (flag off).

/// One stretch of synthetic telemetry: constant behaviour from `start` for `duration`,
/// one sample every `step` seconds, for every environment and instance listed.
///
/// Counters are deterministic (no randomness): per step the treatment sees
/// `treatmentRequestsPerStep` requests of which `errorRate` fail with code 500, and
/// `treatmentFormsPerStep` forms of which `submissionSuccess` are submitted. The latency
/// histograms are built so that `histogram_quantile(0.95, …)` over them returns exactly
/// `controlP95` for the control and `controlP95 * (1 + latencyShift)` for the treatment.
///
/// Segments that write the same series must not overlap in time; a later segment continues
/// the counters of an earlier one (no reset).
public struct TelemetrySegment: Sendable, Equatable {
    public var start: Date
    public var duration: TimeInterval
    public var step: TimeInterval
    public var flag: String
    public var environments: [String]
    /// One copy of every series per instance label. Two instances give the
    /// "query matching two series" case for queries that do not aggregate.
    public var instances: [String]
    public var job: String

    public var treatmentRequestsPerStep: Double
    public var controlRequestsPerStep: Double
    /// Fraction of treatment requests answered with code 500.
    public var errorRate: Double
    public var controlErrorRate: Double
    /// The control (baseline) p95 latency, in seconds.
    public var controlP95: Double
    /// Treatment p95 relative to the control: 0.05 means +5%.
    public var latencyShift: Double
    public var treatmentFormsPerStep: Double
    public var controlFormsPerStep: Double
    /// submitted / (submitted + abandoned) for the treatment.
    public var submissionSuccess: Double
    public var controlSubmissionSuccess: Double
    /// Fraction of the treatment's forms finished from a recovered draft (the control has none).
    public var draftRecoveryRate: Double = 0.06

    public init(
        start: Date,
        duration: TimeInterval,
        step: TimeInterval = 60,
        flag: String = "portal_form_autosave",
        environments: [String] = ["staging", "production"],
        instances: [String] = ["portal-1"],
        job: String = "portal",
        treatmentRequestsPerStep: Double = 1000,
        controlRequestsPerStep: Double = 1000,
        errorRate: Double = 0.005,
        controlErrorRate: Double = 0.005,
        controlP95: Double = 0.32,
        latencyShift: Double = 0.05,
        treatmentFormsPerStep: Double = 100,
        controlFormsPerStep: Double = 100,
        submissionSuccess: Double = 0.98,
        controlSubmissionSuccess: Double = 0.97
    ) {
        self.start = start
        self.duration = duration
        self.step = step
        self.flag = flag
        self.environments = environments
        self.instances = instances
        self.job = job
        self.treatmentRequestsPerStep = treatmentRequestsPerStep
        self.controlRequestsPerStep = controlRequestsPerStep
        self.errorRate = errorRate
        self.controlErrorRate = controlErrorRate
        self.controlP95 = controlP95
        self.latencyShift = latencyShift
        self.treatmentFormsPerStep = treatmentFormsPerStep
        self.controlFormsPerStep = controlFormsPerStep
        self.submissionSuccess = submissionSuccess
        self.controlSubmissionSuccess = controlSubmissionSuccess
    }

    /// Healthy: error rate 0.5%, p95 +5%, submission success 98%.
    public static func healthy(start: Date, hours: Double, step: TimeInterval = 60) -> TelemetrySegment {
        TelemetrySegment(start: start, duration: hours * 3600, step: step)
    }

    /// Error rate 3% (breaches `error-rate` max 0.02 → rollback); the rest healthy.
    public static func failingErrors(start: Date, hours: Double, errorRate: Double = 0.03,
                                     step: TimeInterval = 60) -> TelemetrySegment {
        var s = TelemetrySegment(start: start, duration: hours * 3600, step: step)
        s.errorRate = errorRate
        return s
    }

    /// Treatment p95 +25% (breaches `latency-p95-delta` max 0.20 → hold); the rest healthy.
    public static func slowLatency(start: Date, hours: Double, latencyShift: Double = 0.25,
                                   step: TimeInterval = 60) -> TelemetrySegment {
        var s = TelemetrySegment(start: start, duration: hours * 3600, step: step)
        s.latencyShift = latencyShift
        return s
    }

    /// Submission success 90% (breaches `submission-success` min 0.95 → rollback).
    public static func failingSubmissions(start: Date, hours: Double, submissionSuccess: Double = 0.90,
                                          step: TimeInterval = 60) -> TelemetrySegment {
        var s = TelemetrySegment(start: start, duration: hours * 3600, step: step)
        s.submissionSuccess = submissionSuccess
        return s
    }

    /// Healthy values, but every series written twice (instances portal-1 and portal-2):
    /// a query that does not aggregate (`PrometheusFixture.Queries.unaggregatedSubmitted`)
    /// returns 2 series. The three check queries aggregate and still return one.
    public static func duplicated(start: Date, hours: Double, step: TimeInterval = 60) -> TelemetrySegment {
        var s = TelemetrySegment(start: start, duration: hours * 3600, step: step)
        s.instances = ["portal-1", "portal-2"]
        return s
    }
}

public enum PrometheusFixtureError: Error, CustomStringConvertible, Sendable {
    case unavailable(String)
    case backfillFailed(status: Int32, output: String)
    case launchFailed(String)
    case exited(status: Int32, stderr: String)
    case notReady(afterSeconds: Double, stderr: String)

    public var description: String {
        switch self {
        case .unavailable(let why):
            return "Prometheus is not available: \(why)"
        case .backfillFailed(let status, let output):
            return "promtool tsdb create-blocks-from openmetrics failed (exit \(status)):\n\(output)"
        case .launchFailed(let why):
            return "could not start prometheus: \(why)"
        case .exited(let status, let stderr):
            return "prometheus exited with status \(status) before it was ready. Its stderr:\n\(stderr)"
        case .notReady(let seconds, let stderr):
            return "prometheus did not answer 200 on /-/ready within \(seconds)s. Its stderr:\n\(stderr)"
        }
    }
}

public final class PrometheusFixture: @unchecked Sendable {

    // MARK: Binaries

    /// `$PROMETHEUS_BIN`, else `prometheus` on `$PATH`, else `/usr/bin/prometheus`.
    public static var prometheusPath: String? { locate("prometheus", env: "PROMETHEUS_BIN") }
    /// `$PROMTOOL_BIN`, else `promtool` on `$PATH`, else `/usr/bin/promtool`.
    public static var promtoolPath: String? { locate("promtool", env: "PROMTOOL_BIN") }

    /// Why the fixture cannot run here, or nil when both binaries are found.
    public static var unavailableReason: String? {
        var missing: [String] = []
        if prometheusPath == nil { missing.append("prometheus") }
        if promtoolPath == nil { missing.append("promtool") }
        if missing.isEmpty { return nil }
        return "\(missing.joined(separator: " and ")) not found (install Debian's `prometheus` package: apt-get install -y prometheus)"
    }

    /// True when both `prometheus` and `promtool` are found.
    public static var isAvailable: Bool { unavailableReason == nil }

    private static func locate(_ name: String, env: String) -> String? {
        let environment = ProcessInfo.processInfo.environment
        let fm = FileManager.default
        if let explicit = environment[env], !explicit.isEmpty {
            return fm.isExecutableFile(atPath: explicit) ? explicit : nil
        }
        var candidates = (environment["PATH"] ?? "").split(separator: ":").map { "\($0)/\(name)" }
        candidates.append("/usr/bin/\(name)")
        return candidates.first { fm.isExecutableFile(atPath: $0) }
    }

    // MARK: Queries

    /// The EXP-001 health-check queries, with the `{{flag}}`, `{{environment}}` and
    /// `{{window}}` placeholders (the same text as scripts/exp001-health-queries.json).
    public enum Queries {
        public static let errorRate =
            #"(sum(increase(http_requests_total{flag="{{flag}}",environment="{{environment}}",variant="treatment",code=~"5.."}[{{window}}])) or vector(0)) / sum(increase(http_requests_total{flag="{{flag}}",environment="{{environment}}",variant="treatment"}[{{window}}]))"#

        public static let latencyP95Delta =
            #"histogram_quantile(0.95, sum by (le) (increase(http_request_duration_seconds_bucket{flag="{{flag}}",environment="{{environment}}",variant="treatment"}[{{window}}]))) / ((histogram_quantile(0.95, sum by (le) (increase(http_request_duration_seconds_bucket{flag="{{flag}}",environment="{{environment}}",variant="control"}[{{window}}]))) > 0) or (histogram_quantile(0.95, sum by (le) (increase(http_request_duration_seconds_bucket{flag="{{flag}}",environment="{{environment}}",variant="control"}[{{window}}] offset {{window}}))) > 0)) - 1"#

        // Each side falls back to 0 only when the other family has samples, so the result
        // is empty (no data) when neither has any, and 0 when nothing was submitted.
        public static let submissionSuccess =
            #"(sum(increase(exp001_form_submitted_total{flag="{{flag}}",environment="{{environment}}",variant="treatment"}[{{window}}])) or 0 * sum(increase(exp001_form_abandoned_total{flag="{{flag}}",environment="{{environment}}",variant="treatment"}[{{window}}]))) / ((sum(increase(exp001_form_submitted_total{flag="{{flag}}",environment="{{environment}}",variant="treatment"}[{{window}}])) or 0 * sum(increase(exp001_form_abandoned_total{flag="{{flag}}",environment="{{environment}}",variant="treatment"}[{{window}}]))) + (sum(increase(exp001_form_abandoned_total{flag="{{flag}}",environment="{{environment}}",variant="treatment"}[{{window}}])) or 0 * sum(increase(exp001_form_submitted_total{flag="{{flag}}",environment="{{environment}}",variant="treatment"}[{{window}}]))))"#

        /// Check name → query, as in the plan's `health.checks`.
        public static let all: [String: String] = [
            "error-rate": errorRate,
            "latency-p95-delta": latencyP95Delta,
            "submission-success": submissionSuccess,
        ]

        /// Not a check: a query that does not aggregate, so it returns one series per
        /// instance (2 with `TelemetrySegment.duplicated`): the "ambiguous" case.
        public static let unaggregatedSubmitted =
            #"increase(exp001_form_submitted_total{flag="{{flag}}",environment="{{environment}}",variant="treatment"}[{{window}}])"#

        /// Substitutes the placeholders the way SPEC §8 describes; `window` is rounded
        /// up to whole seconds (at least 1s), e.g. `3600s`.
        public static func substitute(_ query: String, flag: String, environment: String,
                                      phase: String = "", window: TimeInterval) -> String {
            let seconds = max(1, Int(window.rounded(.up)))
            return query
                .replacingOccurrences(of: "{{flag}}", with: flag)
                .replacingOccurrences(of: "{{environment}}", with: environment)
                .replacingOccurrences(of: "{{phase}}", with: phase)
                .replacingOccurrences(of: "{{window}}", with: "\(seconds)s")
        }
    }

    // MARK: OpenMetrics

    /// Finite histogram bucket bounds (Prometheus client defaults), then `+Inf`.
    public static let latencyBuckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    /// OpenMetrics text with timestamps (seconds) for the segments, ending with `# EOF`.
    public static func openMetrics(_ segments: [TelemetrySegment]) -> String {
        var families = FamilyWriter()
        for segment in segments.sorted(by: { $0.start < $1.start }) {
            families.add(segment)
        }
        return families.render()
    }

    /// Cumulative fraction of requests at or below each finite bound such that linear
    /// interpolation (what `histogram_quantile` does) puts the 0.95 quantile exactly at `p95`.
    static func cumulativeFractions(p95: Double, bounds: [Double]) -> [Double] {
        guard let hiIndex = bounds.firstIndex(where: { $0 > p95 }) else {
            // p95 beyond the last finite bound: everything up to it holds 90%, the rest is in +Inf.
            return bounds.map { 0.9 * $0 / bounds.last! }
        }
        let hi = bounds[hiIndex]
        let lo = hiIndex == 0 ? 0 : bounds[hiIndex - 1]
        // In (lo, hi] the distribution is uniform with slope s, passing 0.95 at p95.
        let s = min(0.04 / (hi - p95), 0.90 / max(p95 - lo, 1e-12), 0.90 / (hi - lo))
        let atLo = 0.95 - s * (p95 - lo)
        let atHi = 0.95 + s * (hi - p95)
        var result: [Double] = []
        for (i, b) in bounds.enumerated() {
            if i < hiIndex - 1 {
                result.append(atLo * b / lo)           // uniform below lo
            } else if i == hiIndex - 1 {
                result.append(atLo)
            } else if i == hiIndex {
                result.append(atHi)
            } else {
                result.append(1 - (1 - atHi) * hi / b) // a tail above hi; the rest is in +Inf
            }
        }
        return result
    }

    private struct FamilyWriter {
        // family name → (TYPE, ordered metric keys, samples per metric key)
        struct Family {
            var type: String
            var order: [String] = []
            var points: [String: [(t: Double, lines: [(suffix: String, extra: String, value: Double)])]] = [:]
        }
        var familyOrder: [String] = []
        var families: [String: Family] = [:]
        var counters: [String: Double] = [:]   // carried counter values per series

        mutating func point(_ family: String, type: String, labels: String, t: Double,
                            _ lines: [(suffix: String, extra: String, value: Double)]) {
            if families[family] == nil {
                families[family] = Family(type: type)
                familyOrder.append(family)
            }
            if families[family]!.points[labels] == nil {
                families[family]!.order.append(labels)
                families[family]!.points[labels] = []
            }
            families[family]!.points[labels]!.append((t, lines))
        }

        mutating func add(_ s: TelemetrySegment) {
            let n = max(1, Int((s.duration / s.step).rounded(.down)))
            let t0 = s.start.timeIntervalSince1970
            for environment in s.environments {
                for instance in s.instances {
                    for variant in ["treatment", "control"] {
                        let treatment = variant == "treatment"
                        let base = "flag=\"\(esc(s.flag))\",environment=\"\(esc(environment))\",variant=\"\(variant)\",job=\"\(esc(s.job))\",instance=\"\(esc(instance))\""
                        let requests = treatment ? s.treatmentRequestsPerStep : s.controlRequestsPerStep
                        let errors = requests * (treatment ? s.errorRate : s.controlErrorRate)
                        let forms = treatment ? s.treatmentFormsPerStep : s.controlFormsPerStep
                        let submitted = forms * (treatment ? s.submissionSuccess : s.controlSubmissionSuccess)
                        let p95 = treatment ? s.controlP95 * (1 + s.latencyShift) : s.controlP95
                        let fractions = PrometheusFixture.cumulativeFractions(p95: p95, bounds: PrometheusFixture.latencyBuckets)
                        let mean = PrometheusFixture.mean(fractions: fractions, bounds: PrometheusFixture.latencyBuckets)

                        let ok = base + ",code=\"200\"", failed = base + ",code=\"500\""
                        let kOK = "req|" + ok, kFail = "req|" + failed
                        let kSub = "sub|" + base, kAb = "ab|" + base, kHist = "hist|" + base, kDraft = "draft|" + base
                        let drafts = treatment ? forms * s.draftRecoveryRate : 0
                        let d0 = counters[kDraft] ?? 0
                        let c0 = (counters[kOK] ?? 0, counters[kFail] ?? 0, counters[kSub] ?? 0,
                                  counters[kAb] ?? 0, counters[kHist] ?? 0)
                        for i in 0..<n {
                            let t = t0 + Double(i) * s.step
                            let k = Double(i)
                            point("http_requests", type: "counter", labels: ok, t: t,
                                  [("_total", "", c0.0 + k * (requests - errors))])
                            point("http_requests", type: "counter", labels: failed, t: t,
                                  [("_total", "", c0.1 + k * errors)])
                            point("exp001_form_submitted", type: "counter", labels: base, t: t,
                                  [("_total", "", c0.2 + k * submitted)])
                            point("exp001_form_abandoned", type: "counter", labels: base, t: t,
                                  [("_total", "", c0.3 + k * (forms - submitted))])
                            point("exp001_draft_recovered", type: "counter", labels: base, t: t,
                                  [("_total", "", d0 + k * drafts)])
                            let count = c0.4 + k * requests
                            var lines: [(suffix: String, extra: String, value: Double)] = []
                            // Buckets are cumulative over all time: earlier segments' counts
                            // are carried per bucket.
                            for (j, b) in PrometheusFixture.latencyBuckets.enumerated() {
                                let key = "bucket|\(b)|" + base
                                lines.append(("_bucket", ",le=\"\(fmt(b))\"", (counters[key] ?? 0) + k * requests * fractions[j]))
                            }
                            lines.append(("_bucket", ",le=\"+Inf\"", count))
                            lines.append(("_count", "", count))
                            lines.append(("_sum", "", (counters["sum|" + base] ?? 0) + k * requests * mean))
                            point("http_request_duration_seconds", type: "histogram", labels: base, t: t, lines)
                        }
                        let m = Double(n)
                        counters[kOK] = c0.0 + m * (requests - errors)
                        counters[kFail] = c0.1 + m * errors
                        counters[kSub] = c0.2 + m * submitted
                        counters[kAb] = c0.3 + m * (forms - submitted)
                        counters[kHist] = c0.4 + m * requests
                        counters[kDraft] = d0 + m * drafts
                        for (j, b) in PrometheusFixture.latencyBuckets.enumerated() {
                            let key = "bucket|\(b)|" + base
                            counters[key] = (counters[key] ?? 0) + m * requests * fractions[j]
                        }
                        counters["sum|" + base] = (counters["sum|" + base] ?? 0) + m * requests * mean
                    }
                }
            }
        }

        func render() -> String {
            var out = ""
            out.reserveCapacity(1 << 20)
            for name in familyOrder {
                let family = families[name]!
                out += "# TYPE \(name) \(family.type)\n"
                for labels in family.order {
                    // Points of one metric in time order; a later segment may have been
                    // added for an earlier time only if segments were not sorted.
                    let points = family.points[labels]!.sorted { $0.t < $1.t }
                    for p in points {
                        let ts = fmt(p.t)
                        for line in p.lines {
                            out += "\(name)\(line.suffix){\(labels)\(line.extra)} \(fmt(line.value)) \(ts)\n"
                        }
                    }
                }
            }
            out += "# EOF\n"
            return out
        }
    }

    static func mean(fractions: [Double], bounds: [Double]) -> Double {
        var total = 0.0, previousBound = 0.0, previousFraction = 0.0
        for (b, f) in zip(bounds, fractions) {
            total += (f - previousFraction) * (previousBound + b) / 2
            previousBound = b; previousFraction = f
        }
        total += (1 - previousFraction) * previousBound * 1.5
        return total
    }

    // MARK: Lifecycle

    /// `http://127.0.0.1:<port>` — pass it as `--metrics`.
    public let baseURL: URL
    public let port: Int
    /// The private temporary directory: `telemetry.om`, `data/`, `prometheus.yml`, `prometheus.stderr`.
    public let directory: URL
    public var dataDirectory: URL { directory.appendingPathComponent("data") }
    public var stderrURL: URL { directory.appendingPathComponent("prometheus.stderr") }

    private let lock = NSLock()
    private var process: Process?
    private var paused = false

    /// Prometheus' stderr so far (its log).
    public var stderrText: String {
        (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? ""
    }

    private init(directory: URL, port: Int, process: Process) {
        self.directory = directory
        self.port = port
        self.baseURL = URL(string: "http://127.0.0.1:\(port)")!
        self.process = process
    }

    /// Writes the segments as OpenMetrics, backfills them and starts Prometheus on them.
    public static func start(segments: [TelemetrySegment], readyTimeout: TimeInterval = 60,
                             scrapeTargets: [String] = []) async throws -> PrometheusFixture {
        let text = try await runOffCooperativePool { openMetrics(segments) }
        return try await start(openMetrics: text, readyTimeout: readyTimeout, scrapeTargets: scrapeTargets)
    }

    /// Backfills the given OpenMetrics text (must end with `# EOF`; timestamps in seconds)
    /// and starts Prometheus on it; returns once `/-/ready` answers 200.
    /// `scrapeTargets` (`127.0.0.1:PORT`) are scraped every second under job `rolloutctl`.
    public static func start(openMetrics text: String, readyTimeout: TimeInterval = 60,
                             scrapeTargets: [String] = []) async throws -> PrometheusFixture {
        guard let prometheus = prometheusPath, let promtool = promtoolPath else {
            throw PrometheusFixtureError.unavailable(unavailableReason ?? "not found")
        }
        let fm = FileManager.default
        let directory = fm.temporaryDirectory.appendingPathComponent("prometheus-fixture-\(UUID().uuidString)")
        let data = directory.appendingPathComponent("data")
        try fm.createDirectory(at: data, withIntermediateDirectories: true)
        var keep = false
        defer { if !keep { try? fm.removeItem(at: directory) } }

        let input = directory.appendingPathComponent("telemetry.om")
        try text.write(to: input, atomically: false, encoding: .utf8)
        // promtool takes seconds: wait for it on a thread of its own, not on the cooperative pool.
        try await runOffCooperativePool { try backfill(promtool: promtool, input: input, output: data) }

        let config = directory.appendingPathComponent("prometheus.yml")
        // No scrape targets unless asked: the data is only what was backfilled.
        var configText = "global:\n  scrape_interval: 1h\n  evaluation_interval: 1h\n"
        if scrapeTargets.isEmpty {
            configText += "scrape_configs: []\n"
        } else {
            configText += "scrape_configs:\n  - job_name: rolloutctl\n    scrape_interval: 1s\n    scrape_timeout: 1s\n"
                + "    static_configs:\n      - targets: ["
                + scrapeTargets.map { "'\($0)'" }.joined(separator: ", ") + "]\n"
        }
        try configText.write(to: config, atomically: true, encoding: .utf8)

        var lastError: Error = PrometheusFixtureError.launchFailed("no attempt made")
        for _ in 0..<3 {
            let port = try freePort()
            let stderrURL = directory.appendingPathComponent("prometheus.stderr")
            _ = fm.createFile(atPath: stderrURL.path, contents: nil)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: prometheus)
            process.arguments = [
                "--config.file=\(config.path)",
                "--storage.tsdb.path=\(data.path)",
                "--web.listen-address=127.0.0.1:\(port)",
                // Time retention is measured from the newest block, but keep everything anyway.
                "--storage.tsdb.retention.time=100y",
                "--log.level=info",
            ]
            process.currentDirectoryURL = directory
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            let stderrHandle = try FileHandle(forWritingTo: stderrURL)
            process.standardError = stderrHandle
            do {
                try process.run()
                try? stderrHandle.close()   // the child has its own copy
            } catch {
                try? stderrHandle.close()
                throw PrometheusFixtureError.launchFailed("\(prometheus): \(error)")
            }
            let fixture = PrometheusFixture(directory: directory, port: port, process: process)
            keep = true
            do {
                try await fixture.waitUntilReady(timeout: readyTimeout)
                return fixture
            } catch {
                let log = fixture.stderrText
                fixture.stop(removeDirectory: false)
                keep = false
                lastError = error
                if log.contains("address already in use") { continue }  // lost the port race: retry
                throw error
            }
        }
        throw lastError
    }

    private static func backfill(promtool: String, input: URL, output: URL) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: promtool)
        // Without --max-block-duration promtool cuts 2h blocks; a few days of data would
        // give dozens of tiny blocks that Prometheus then compacts at start.
        process.arguments = ["tsdb", "create-blocks-from", "openmetrics", "--quiet",
                             "--max-block-duration=2400h", input.path, output.path]
        let log = input.deletingLastPathComponent().appendingPathComponent("promtool.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        defer { try? handle.close() }
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw PrometheusFixtureError.launchFailed("\(promtool): \(error)")
        }
        process.waitUntilExit()
        if process.terminationStatus != 0 {
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            throw PrometheusFixtureError.backfillFailed(status: process.terminationStatus, output: text)
        }
    }

    private func waitUntilReady(timeout: TimeInterval) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = 2
        let session = URLSession(configuration: configuration)
        defer { session.finishTasksAndInvalidate() }
        let url = baseURL.appendingPathComponent("-/ready")
        while Date() < deadline {
            if let process = lock.withLock({ self.process }), !process.isRunning {
                throw PrometheusFixtureError.exited(status: process.terminationStatus, stderr: stderrText)
            }
            if let (_, response) = try? await session.data(from: url),
               (response as? HTTPURLResponse)?.statusCode == 200 {
                return
            }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        throw PrometheusFixtureError.notReady(afterSeconds: timeout, stderr: stderrText)
    }

    /// Whether the Prometheus process is still running (a paused one counts as running).
    public var isRunning: Bool { lock.withLock { process?.isRunning ?? false } }

    /// SIGSTOP: the port stays open and connections are accepted by the kernel, but nothing
    /// answers — a Prometheus "slow past the timeout". `resume()` undoes it.
    public func pause() {
        lock.withLock {
            guard let p = process, p.isRunning else { return }
            kill(p.processIdentifier, SIGSTOP)
            paused = true
        }
    }

    /// SIGCONT after `pause()`.
    public func resume() {
        lock.withLock {
            guard let p = process, p.isRunning else { return }
            kill(p.processIdentifier, SIGCONT)
            paused = false
        }
    }

    /// Stops Prometheus (SIGTERM, then SIGKILL after 5 s) and removes the temporary directory
    /// (kept when `PROMETHEUS_FIXTURE_KEEP=1`). Idempotent; also called from deinit.
    public func stop() {
        stop(removeDirectory: ProcessInfo.processInfo.environment["PROMETHEUS_FIXTURE_KEEP"] != "1")
    }

    /// `stop()`, waiting for Prometheus to exit on a thread of its own: use this from async code.
    public func stopWithoutBlocking() async {
        try? await runOffCooperativePool { self.stop() }
    }

    private func stop(removeDirectory: Bool) {
        let p: Process? = lock.withLock {
            let p = process
            process = nil
            return p
        }
        if let p, p.isRunning {
            let pid = p.processIdentifier
            kill(pid, SIGCONT)   // a paused process would not act on SIGTERM
            p.terminate()
            let deadline = Date().addingTimeInterval(5)
            while p.isRunning && Date() < deadline { usleep(20_000) }
            if p.isRunning { kill(pid, SIGKILL) }
            p.waitUntilExit()
        }
        if removeDirectory { try? FileManager.default.removeItem(at: directory) }
    }

    deinit { stop() }

    /// `GET /api/v1/query?query=…&time=…` — for checking the fixture itself.
    public func query(_ promql: String, at time: Date, timeout: TimeInterval = 10) async throws -> (status: Int, body: Data) {
        var components = URLComponents(url: baseURL.appendingPathComponent("api/v1/query"), resolvingAgainstBaseURL: false)!
        components.queryItems = [
            URLQueryItem(name: "query", value: promql),
            URLQueryItem(name: "time", value: PrometheusFixture.fmt(time.timeIntervalSince1970)),
        ]
        // '+' is legal in a query string but Prometheus (Go) reads it as a space.
        components.percentEncodedQuery = components.percentEncodedQuery?
            .replacingOccurrences(of: "+", with: "%2B")
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        let session = URLSession(configuration: configuration)
        defer { session.finishTasksAndInvalidate() }
        let (data, response) = try await session.data(from: components.url!)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, data)
    }

    // MARK: Helpers

    /// A port on 127.0.0.1 that was free a moment ago.
    static func freePort() throws -> Int {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw PrometheusFixtureError.launchFailed("socket(): errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else { throw PrometheusFixtureError.launchFailed("bind(): errno \(errno)") }
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw PrometheusFixtureError.launchFailed("getsockname(): errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func fmt(_ v: Double) -> String {
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return String(v)
    }
}

private func esc(_ s: String) -> String {
    s.replacingOccurrences(of: "\\", with: "\\\\")
        .replacingOccurrences(of: "\"", with: "\\\"")
        .replacingOccurrences(of: "\n", with: "\\n")
}

private func fmt(_ v: Double) -> String { PrometheusFixture.fmt(v) }

/// Runs blocking work (waiting for a child process, reading its pipes) on a thread of its own.
///
/// Swift concurrency's cooperative pool has one thread per CPU: on a 2-core CI machine two
/// tests that block in `Process.waitUntilExit()` stall every other test (their timeouts and
/// timing assertions fail) until the child exits.
public func runOffCooperativePool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Result { try work() })
        }
        thread.stackSize = 8 << 20
        thread.start()
    }
}
