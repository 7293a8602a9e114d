import AsyncHTTPClient
import Foundation
import Logging
import NIOCore

/// Prometheus' range query API, `GET {base}/api/v1/query_range?query=&start=&end=&step=`, for the
/// dashboard panels `rolloutctl serve` draws (SPEC §9). One attempt with a timeout: a page must not wait on
/// a retry budget; a failure is a reason shown in place of the chart.
///
/// The `HTTPClient` is the caller's: this client never shuts it down.
public struct PrometheusRangeClient: Sendable {
    public let baseURL: String
    private let client: HTTPClient
    private let timeout: Duration
    private let logger: Logger

    public init(baseURL: String, client: HTTPClient, timeout: Duration = .seconds(5), logger: Logger) {
        self.baseURL = baseURL
        self.client = client
        self.timeout = timeout
        self.logger = logger
    }

    /// The URL of a range query; times as Unix seconds, the step in whole seconds.
    public func url(query: String, start: Date, end: Date, step: Int) -> String {
        HTTPTransport.join(baseURL, "/api/v1/query_range")
            + "?query=" + HTTPTransport.percentEncode(query)
            + "&start=" + PrometheusMetricsProvider.formatTime(start)
            + "&end=" + PrometheusMetricsProvider.formatTime(end)
            + "&step=" + String(max(1, step))
    }

    /// The series of `query` over `start…end`, or the reason there are none to draw.
    public func queryRange(
        _ query: String, start: Date, end: Date,
        step: Int
    ) async -> Result<[RangeSeries], RangeQueryFailure> {
        var request = HTTPClientRequest(url: url(query: query, start: start, end: end, step: step))
        request.method = .GET
        request.headers.add(name: "Accept", value: "application/json")
        let answer: HTTPAnswer
        do {
            answer = try await HTTPTransport.send(request, client: client, timeout: timeout, logger: logger)
        } catch let failure as TransportFailure {
            return .failure(RangeQueryFailure(reason: "prometheus unreachable: \(failure)"))
        } catch {
            return .failure(RangeQueryFailure(reason: "prometheus query failed: \(error)"))
        }
        return PrometheusAnswer.rangeSeries(status: answer.status, body: Array(answer.body.readableBytesView))
    }

    /// Reads a `query_range` answer (`resultType: matrix`): `PrometheusAnswer.rangeSeries`.
    public static func interpret(status: Int, body: Data) -> Result<[RangeSeries], RangeQueryFailure> {
        PrometheusAnswer.rangeSeries(status: status, body: Array(body))
    }
}
