import AsyncHTTPClient
import Foundation
import Logging
import RolloutCore
import RolloutTestSupport
import Testing

@testable import RolloutAdapters

/// Answers a hostile server can give that used to trap (issue 14): numbers past Int64 in
/// `Retry-After`, and a field echoed whole into a reason. Served for real on 127.0.0.1.
@Suite struct HostileAnswerTests {
    static let query = MetricQuery(
        check: "error-rate", query: "error_rate",
        time: Date(timeIntervalSince1970: 1_700_000_000))

    static func evaluate(_ handler: @escaping HTTPTestServer.Handler) async throws -> (MetricResult, Int) {
        try await withAdapterTestServer(handler) { server in
            try await withAdapterHTTPClient { client in
                let provider = PrometheusMetricsProvider(
                    baseURL: server.baseURL, client: client, retry: .adapterTest(),
                    logger: Logger(label: "test"))
                return (await provider.evaluate(Self.query), server.requests.count)
            }
        }
    }

    /// `Retry-After: 1e300` was converted with `Int64(seconds * 1000)`: a trap. Now it is capped
    /// (and the retry policy waits at most its own maximum delay).
    @Test func retryAfterBeyondInt64IsCappedNotATrap() async throws {
        let calls = LockedBox(0)
        let (result, requests) = try await Self.evaluate { _ in
            let n = calls.withLock {
                $0 += 1
                return $0
            }
            return n == 1
                ? TestResponse(status: 503, headers: [("Retry-After", "1e300")], body: "busy")
                : .json(200, #"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"0.5"]}}"#)
        }
        #expect(result == .value(0.5))
        #expect(requests == 2)
    }

    @Test func retryAfterParsing() {
        func answer(_ value: String) -> HTTPAnswer {
            HTTPAnswer(status: 503, headers: [(name: "Retry-After", value: value)], body: .init())
        }
        #expect(HTTPTransport.retryAfter(answer("1e300")) == .seconds(86_400))
        #expect(HTTPTransport.retryAfter(answer("2")) == .seconds(2))
        #expect(HTTPTransport.retryAfter(answer("-1")) == nil)
        #expect(HTTPTransport.retryAfter(answer("inf")) == nil)
    }

    /// An unknown result type of 100,000 characters is named in the reason, shortened.
    @Test func longFieldsAreShortenedInReasons() async throws {
        let type = String(repeating: "x", count: 100_000)
        let (result, _) = try await Self.evaluate { _ in
            .json(200, #"{"status":"success","data":{"resultType":"\#(type)","result":[]}}"#)
        }
        guard case .noData(let reason) = result else {
            Issue.record("expected noData, got \(result)")
            return
        }
        #expect(reason.hasPrefix("malformed answer: unknown result type xxxx"), "\(reason)")
        #expect(reason.count < 120, "\(reason.count) characters")
    }
}
