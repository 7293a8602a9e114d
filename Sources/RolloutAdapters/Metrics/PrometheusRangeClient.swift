import AsyncHTTPClient
import Foundation
import Logging
import NIOCore

/// One series of a range query: its labels and its points, oldest first.
public struct RangeSeries: Equatable, Sendable {
    public var labels: [String: String]
    public var points: [RangePoint]

    public init(labels: [String: String], points: [RangePoint]) {
        self.labels = labels
        self.points = points
    }
}

/// One sample of a range series. NaN and infinite samples are dropped when read.
public struct RangePoint: Equatable, Sendable {
    public var time: Date
    public var value: Double

    public init(time: Date, value: Double) {
        self.time = time
        self.value = value
    }
}

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
    public func queryRange(_ query: String, start: Date, end: Date,
                           step: Int) async -> Result<[RangeSeries], RangeQueryFailure> {
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
        return Self.interpret(status: answer.status, body: Data(answer.body.readableBytesView))
    }

    /// Reads a `query_range` answer (`resultType: matrix`).
    public static func interpret(status: Int, body: Data) -> Result<[RangeSeries], RangeQueryFailure> {
        guard let envelope = try? JSONDecoder().decode(Envelope.self, from: body) else {
            let reason = status == 200 ? "malformed answer from prometheus" : "prometheus answered HTTP \(status)"
            return .failure(RangeQueryFailure(reason: reason))
        }
        guard envelope.status == "success", let data = envelope.data else {
            let detail = [envelope.errorType, envelope.error].compactMap { $0 }.joined(separator: ": ")
            return .failure(RangeQueryFailure(reason: "prometheus error \(HTTPTransport.excerpt(detail))"))
        }
        guard data.resultType == "matrix" else {
            return .failure(RangeQueryFailure(reason: "expected a matrix, prometheus sent \(data.resultType)"))
        }
        return .success(data.result.map { series in
            RangeSeries(labels: series.metric, points: series.values.compactMap { pair in
                guard let value = Double(pair.value), value.isFinite else { return nil }
                return RangePoint(time: Date(timeIntervalSince1970: pair.time), value: value)
            })
        })
    }

    struct Envelope: Decodable {
        var status: String
        var data: Matrix?
        var errorType: String?
        var error: String?
    }

    struct Matrix: Decodable {
        var resultType: String
        var result: [Series]
    }

    struct Series: Decodable {
        var metric: [String: String]
        var values: [Sample]
    }

    /// `[1700000000.5, "0.02"]`.
    struct Sample: Decodable {
        var time: Double
        var value: String

        init(from decoder: Decoder) throws {
            var container = try decoder.unkeyedContainer()
            time = try container.decode(Double.self)
            value = try container.decode(String.self)
        }
    }
}

/// Why a range query has nothing to draw.
public struct RangeQueryFailure: Error, Equatable, Sendable, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }

    public init(reason: String) {
        self.reason = reason
    }
}
