import AsyncHTTPClient
import Foundation
import Logging
import RolloutCore
import RolloutTestSupport
import Testing

@testable import RolloutAdapters

/// PrometheusMetricsProvider against canned answers served by HTTPTestServer. These are
/// fakes for the faults a real Prometheus gives; a real Prometheus is tested elsewhere.
@Suite("PrometheusMetricsProvider (canned answers)")
struct PrometheusProviderTests {
    static let query = MetricQuery(
        check: "error-rate",
        query: #"sum(rate(http_errors_total{flag="portal_form_autosave", env="production"}[5m])) / 2 + 1"#,
        time: Date(timeIntervalSince1970: 1_700_000_000.25))

    static func vector(_ samples: [String]) -> String {
        let series = samples.enumerated().map { index, value in
            #"{"metric":{"instance":"i\#(index)"},"value":[1700000000.25,"\#(value)"]}"#
        }
        return #"{"status":"success","data":{"resultType":"vector","result":[\#(series.joined(separator: ","))]}}"#
    }

    /// Serves `handler` and evaluates `Self.query` once; returns the result and the requests.
    func evaluate(
        retry: RetryPolicy = .adapterTest(),
        path: String = "",
        _ handler: @escaping HTTPTestServer.Handler
    ) async throws -> (MetricResult, [TestRequest]) {
        try await withAdapterTestServer(handler) { server in
            try await withAdapterHTTPClient { client in
                let provider = PrometheusMetricsProvider(
                    baseURL: server.baseURL + path, client: client, retry: retry, logger: Logger(label: "test"))
                let result = await provider.evaluate(Self.query)
                return (result, server.requests)
            }
        }
    }

    @Test func cannedPrometheusAnswerOneSampleIsTheValueAndTheQueryAndTimeAreSent() async throws {
        let (result, requests) = try await evaluate { _ in .json(200, Self.vector(["0.013"])) }
        #expect(result == .value(0.013))
        let request = try #require(requests.first)
        #expect(requests.count == 1)
        #expect(request.method == "GET")
        #expect(request.path == "/api/v1/query")
        #expect(request.queryItems["query"] == Self.query.query)
        #expect(request.queryItems["time"] == "1700000000.250")
        // Reserved characters are percent-encoded, not sent raw.
        #expect(!(request.query ?? "").contains("{"))
        #expect(!(request.query ?? "").contains(" "))
        #expect(!(request.query ?? "").contains("+"))
    }

    @Test func cannedPrometheusAnswerUnderAPathPrefix() async throws {
        let (result, requests) = try await evaluate(path: "/prom/") { _ in .json(200, Self.vector(["1e-3"])) }
        #expect(result == .value(0.001))
        #expect(requests.first?.path == "/prom/api/v1/query")
    }

    @Test func cannedPrometheusAnswerScalar() async throws {
        let (result, _) = try await evaluate { _ in
            .json(200, #"{"status":"success","data":{"resultType":"scalar","result":[1700000000.25,"0.5"]}}"#)
        }
        #expect(result == .value(0.5))
    }

    @Test func cannedPrometheusAnswerEmptyVectorIsNoData() async throws {
        let (result, _) = try await evaluate { _ in .json(200, Self.vector([])) }
        #expect(result == .noData(reason: "no data"))
    }

    @Test func cannedPrometheusAnswerTwoSeriesIsAmbiguous() async throws {
        let (result, _) = try await evaluate { _ in .json(200, Self.vector(["0.1", "0.2"])) }
        #expect(result == .noData(reason: "ambiguous: 2 series"))
    }

    @Test(arguments: [("NaN", "value is NaN"), ("+Inf", "value is +Inf"), ("-Inf", "value is -Inf")])
    func cannedPrometheusAnswerNonFiniteIsNoData(value: String, reason: String) async throws {
        let (result, _) = try await evaluate { _ in .json(200, Self.vector([value])) }
        #expect(result == .noData(reason: reason))
    }

    @Test func cannedPrometheusAnswerErrorStatusReportsErrorTypeAndIsNotRetried() async throws {
        let (result, requests) = try await evaluate { _ in
            .json(400, #"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected \"}\""}"#)
        }
        guard case .noData(let reason) = result else {
            Issue.record("expected noData, got \(result)")
            return
        }
        #expect(reason.contains("bad_data"))
        #expect(reason.contains("parse error"))
        #expect(requests.count == 1)
    }

    @Test func cannedPrometheusAnswerErrorStatusWithHTTP200() async throws {
        let (result, _) = try await evaluate { _ in
            .json(200, #"{"status":"error","errorType":"execution","error":"many-to-many matching not allowed"}"#)
        }
        #expect(result == .noData(reason: "prometheus error execution: many-to-many matching not allowed"))
    }

    @Test func cannedPrometheusAnswerHTTP503IsRetriedThenNoData() async throws {
        let (result, requests) = try await evaluate(retry: .adapterTest(maxAttempts: 3)) { _ in
            .text(503, "Service Unavailable")
        }
        guard case .noData(let reason) = result else {
            Issue.record("expected noData, got \(result)")
            return
        }
        #expect(reason.hasPrefix("prometheus answered HTTP 503"), "\(reason)")
        #expect(requests.count == 3)
    }

    @Test func cannedPrometheusAnswerHTTP503ThenSuccess() async throws {
        let calls = LockedBox(0)
        let (result, requests) = try await evaluate { _ in
            let n = calls.withLock {
                $0 += 1
                return $0
            }
            return n == 1 ? .text(503) : .json(200, Self.vector(["7"]))
        }
        #expect(result == .value(7))
        #expect(requests.count == 2)
    }

    @Test func cannedPrometheusAnswerMalformedBody() async throws {
        let (result, _) = try await evaluate { _ in .text(200, "<html>proxy login</html>") }
        guard case .noData(let reason) = result else {
            Issue.record("expected noData, got \(result)")
            return
        }
        #expect(reason.hasPrefix("malformed answer: "), "\(reason)")
    }

    @Test func cannedPrometheusAnswerSampleWithoutAValue() async throws {
        let (result, _) = try await evaluate { _ in
            .json(200, #"{"status":"success","data":{"resultType":"vector","result":[{"metric":{}}]}}"#)
        }
        #expect(result == .noData(reason: "malformed answer: a sample without a value"))
    }

    @Test func cannedPrometheusAnswerMatrixIsUnsupported() async throws {
        let (result, _) = try await evaluate { _ in
            .json(200, #"{"status":"success","data":{"resultType":"matrix","result":[]}}"#)
        }
        guard case .noData(let reason) = result else {
            Issue.record("expected noData, got \(result)")
            return
        }
        #expect(reason.contains("matrix"))
    }

    @Test func cannedPrometheusAnswerSlowerThanTheTimeout() async throws {
        let retry = RetryPolicy.adapterTest(maxAttempts: 1, requestTimeout: .milliseconds(300))
        let (result, requests) = try await evaluate(retry: retry) { _ in
            .json(200, Self.vector(["1"]), delay: .seconds(3))
        }
        #expect(result == .noData(reason: "prometheus timed out after 0.3s"))
        #expect(requests.count == 1)
    }

    @Test func prometheusUnreachableOnAClosedPort() async throws {
        let port = try await adapterClosedPort()
        let result = try await withAdapterHTTPClient { client in
            let provider = PrometheusMetricsProvider(
                baseURL: "http://127.0.0.1:\(port)", client: client,
                retry: .adapterTest(maxAttempts: 2, requestTimeout: .milliseconds(500)), logger: Logger(label: "test"))
            return await provider.evaluate(Self.query)
        }
        guard case .noData(let reason) = result else {
            Issue.record("expected noData, got \(result)")
            return
        }
        #expect(reason.hasPrefix("prometheus unreachable: "), "\(reason)")
        #expect(reason.contains("connection refused"), "\(reason)")
    }

    @Test func timeParameterFormatting() {
        #expect(PrometheusMetricsProvider.formatTime(Date(timeIntervalSince1970: 1_700_000_000)) == "1700000000.000")
        #expect(
            PrometheusMetricsProvider.formatTime(Date(timeIntervalSince1970: 1_700_000_000.0125)) == "1700000000.013")
        #expect(PrometheusMetricsProvider.formatTime(Date(timeIntervalSince1970: 5.5)) == "5.500")
    }
}

@Suite("FileMetricsProvider")
struct FileMetricsProviderTests {
    func withMetricsFile(_ contents: String?, _ body: (String) async throws -> Void) async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "rolloutctl-metrics-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("metrics.json").path
        if let contents {
            try contents.write(toFile: path, atomically: true, encoding: .utf8)
        }
        try await body(path)
    }

    func query(_ check: String) -> MetricQuery {
        MetricQuery(check: check, query: "ignored", time: Date())
    }

    @Test func valuesMissingKeysNullAndNonNumbers() async throws {
        let json = #"{"error-rate": 0.004, "count": 12, "latency": null, "name": "x", "flag": true, "list": [1]}"#
        try await withMetricsFile(json) { path in
            let provider = FileMetricsProvider(path: path)
            #expect(await provider.evaluate(query("error-rate")) == .value(0.004))
            #expect(await provider.evaluate(query("count")) == .value(12))
            #expect(
                await provider.evaluate(query("submission-success"))
                    == .noData(reason: "no value for submission-success in \(path)"))
            #expect(
                await provider.evaluate(query("latency")) == .noData(reason: "value for latency in \(path) is null"))
            #expect(
                await provider.evaluate(query("name")) == .noData(reason: "value for name in \(path) is not a number"))
            #expect(
                await provider.evaluate(query("flag")) == .noData(reason: "value for flag in \(path) is not a number"))
            #expect(
                await provider.evaluate(query("list")) == .noData(reason: "value for list in \(path) is not a number"))
        }
    }

    @Test func aMissingFileIsNoData() async throws {
        try await withMetricsFile(nil) { path in
            let result = await FileMetricsProvider(path: path).evaluate(query("error-rate"))
            guard case .noData(let reason) = result else {
                Issue.record("expected noData, got \(result)")
                return
            }
            #expect(reason.hasPrefix("cannot read metrics file \(path)"), "\(reason)")
        }
    }

    @Test func aMalformedFileIsNoData() async throws {
        try await withMetricsFile("{not json") { path in
            #expect(
                await FileMetricsProvider(path: path).evaluate(query("x"))
                    == .noData(reason: "malformed metrics file \(path): not valid JSON"))
        }
        try await withMetricsFile("[1, 2]") { path in
            let result = await FileMetricsProvider(path: path).evaluate(query("x"))
            guard case .noData(let reason) = result else {
                Issue.record("expected noData, got \(result)")
                return
            }
            #expect(reason.hasPrefix("malformed metrics file \(path): not a JSON object"))
        }
    }

    @Test func theFileIsReadAgainOnEveryEvaluation() async throws {
        try await withMetricsFile(#"{"x": 1}"#) { path in
            let provider = FileMetricsProvider(path: path)
            #expect(await provider.evaluate(query("x")) == .value(1))
            try #"{"x": 2.5}"#.write(toFile: path, atomically: true, encoding: .utf8)
            #expect(await provider.evaluate(query("x")) == .value(2.5))
        }
    }

    @Test func fileSpecIsParsed() {
        #expect(FileMetricsProvider(spec: "file:.rolloutctl/metrics.json")?.path == ".rolloutctl/metrics.json")
        #expect(FileMetricsProvider(spec: "file:///tmp/m.json")?.path == "/tmp/m.json")
        #expect(FileMetricsProvider(spec: "http://prometheus:9090") == nil)
    }
}
