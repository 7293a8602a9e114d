import Foundation
import RolloutCore

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// A real Prometheus (Debian's `prometheus` package) for tests, on 127.0.0.1, loaded with
// synthetic EXP-001 telemetry (TelemetrySegment.swift, OpenMetrics.swift) that is backfilled with
// `promtool tsdb create-blocks-from openmetrics` into a private data directory.

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
        return
            "\(missing.joined(separator: " and ")) not found (install Debian's `prometheus` package: apt-get install -y prometheus)"
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
        public static func substitute(
            _ query: String, flag: String, environment: String,
            phase: String = "", window: TimeInterval
        ) -> String {
            let seconds = max(1, Int(window.rounded(.up)))
            return
                query
                .replacingOccurrences(of: "{{flag}}", with: flag)
                .replacingOccurrences(of: "{{environment}}", with: environment)
                .replacingOccurrences(of: "{{phase}}", with: phase)
                .replacingOccurrences(of: "{{window}}", with: "\(seconds)s")
        }
    }

    // MARK: Lifecycle

    /// `http://127.0.0.1:<port>` — pass it as `--metrics`.
    public let baseURL: URL
    public let port: Int
    /// The private temporary directory: `telemetry.om`, `data/`, `prometheus.yml`, `prometheus.stderr`.
    public let directory: URL
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
    public static func start(
        segments: [TelemetrySegment], readyTimeout: TimeInterval = 60,
        scrapeTargets: [String] = []
    ) async throws -> PrometheusFixture {
        let text = try await runOffCooperativePool { openMetrics(segments) }
        return try await start(openMetrics: text, readyTimeout: readyTimeout, scrapeTargets: scrapeTargets)
    }

    /// Backfills the given OpenMetrics text (must end with `# EOF`; timestamps in seconds)
    /// and starts Prometheus on it; returns once `/-/ready` answers 200.
    /// `scrapeTargets` (`127.0.0.1:PORT`) are scraped every second under job `rolloutctl`.
    public static func start(
        openMetrics text: String, readyTimeout: TimeInterval = 60,
        scrapeTargets: [String] = []
    ) async throws -> PrometheusFixture {
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
            configText +=
                "scrape_configs:\n  - job_name: rolloutctl\n    scrape_interval: 1s\n    scrape_timeout: 1s\n"
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
                try? stderrHandle.close()  // the child has its own copy
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
        process.arguments = [
            "tsdb", "create-blocks-from", "openmetrics", "--quiet",
            "--max-block-duration=2400h", input.path, output.path,
        ]
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
                (response as? HTTPURLResponse)?.statusCode == 200
            {
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
            kill(pid, SIGCONT)  // a paused process would not act on SIGTERM
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
    public func query(_ promql: String, at time: Date, timeout: TimeInterval = 10) async throws -> (
        status: Int, body: Data
    ) {
        var components = URLComponents(
            url: baseURL.appendingPathComponent("api/v1/query"), resolvingAgainstBaseURL: false)!
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

    static func fmt(_ v: Double) -> String { exactNumberText(v) }
}
