import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import RolloutCore

/// The metrics provider behind `--metrics http(s)://…`: Prometheus' instant query API,
/// `GET {base}/api/v1/query?query=<q>&time=<unix seconds>` (SPEC §8).
///
/// One sample (or a scalar) is the value. Everything else is `.noData` with the reason:
/// an empty vector ("no data"), several series ("ambiguous: N series"), NaN or ±Inf
/// ("value is NaN"), an error status ("prometheus error bad_data: …"), an HTTP error
/// ("prometheus answered HTTP 503"), no connection ("prometheus unreachable: …"),
/// a timeout ("prometheus timed out after 10s") and a body that is not Prometheus' JSON
/// ("malformed answer: …"). `evaluate` never throws.
///
/// 429, 5xx, connection errors and timeouts are retried with `retry` (keep it short: a
/// reconcile evaluates every check of every rollout); 4xx answers are final.
///
/// The `HTTPClient` is the caller's: this provider never shuts it down.
public final class PrometheusMetricsProvider: MetricsProvider {
    public let baseURL: String
    private let client: HTTPClient
    private let retry: RetryPolicy
    private let logger: Logger

    /// - Parameters:
    ///   - baseURL: Prometheus' address, e.g. `http://prometheus:9090` (a path prefix is kept).
    ///   - retry: attempts, backoff and the per-request timeout.
    public init(baseURL: String, client: HTTPClient, retry: RetryPolicy = .prometheusDefault, logger: Logger) {
        self.baseURL = baseURL
        self.client = client
        self.retry = retry
        self.logger = logger
    }

    public func evaluate(_ query: MetricQuery) async -> MetricResult {
        let result = await fetch(query)
        if case .noData(let reason) = result {
            logger.info("no data for health check", metadata: ["check": "\(query.check)", "reason": "\(reason)"])
        }
        return result
    }

    /// The URL of an instant query: `{base}/api/v1/query?query=…&time=…`.
    func queryURL(_ query: MetricQuery) -> String {
        HTTPTransport.join(baseURL, "/api/v1/query")
            + "?query=" + HTTPTransport.percentEncode(query.query)
            + "&time=" + Self.formatTime(query.time)
    }

    /// Unix seconds with milliseconds, e.g. `1700000000.123` (no exponent, no locale).
    static func formatTime(_ date: Date) -> String {
        let millis = Int64((date.timeIntervalSince1970 * 1000).rounded())
        let sign = millis < 0 ? "-" : ""
        let magnitude = millis.magnitude
        let fraction = String(magnitude % 1000)
        return sign + String(magnitude / 1000) + "." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }

    private func fetch(_ query: MetricQuery) async -> MetricResult {
        var request = HTTPClientRequest(url: queryURL(query))
        request.method = .GET
        request.headers.add(name: "Accept", value: "application/json")
        let client = self.client
        let logger = self.logger
        let answer: HTTPAnswer
        do {
            answer = try await retry.run { attempt, timeout -> AttemptOutcome<HTTPAnswer> in
                logger.debug("prometheus query", metadata: ["check": "\(query.check)", "attempt": "\(attempt)"])
                do {
                    let answer = try await HTTPTransport.send(request, client: client, timeout: timeout, logger: logger)
                    if answer.status == 429 || answer.status == 408 || (500...599).contains(answer.status) {
                        return .retryable(
                            reason: Self.httpErrorReason(answer),
                            retryAfter: HTTPTransport.retryAfter(answer))
                    }
                    return .success(answer)
                } catch let failure as TransportFailure {
                    let reason = Self.describe(failure)
                    guard failure.isRetryable else { throw PrometheusFailure(reason: reason) }
                    logger.debug("prometheus query failed", metadata: ["check": "\(query.check)", "reason": "\(reason)"])
                    return .retryable(reason: reason)
                }
            }
        } catch let exhausted as RetryExhausted {
            return .noData(reason: exhausted.attempts > 1 ? exhausted.description : exhausted.lastFailure)
        } catch let failure as PrometheusFailure {
            return .noData(reason: failure.reason)
        } catch is CancellationError {
            return .noData(reason: "prometheus query cancelled")
        } catch {
            return .noData(reason: "prometheus query failed: \(error)")
        }
        return Self.interpret(answer)
    }

    private struct PrometheusFailure: Error {
        var reason: String
    }

    private static func describe(_ failure: TransportFailure) -> String {
        switch failure {
        case .timedOut(let timeout): return "prometheus timed out after \(timeout.shortDescription)"
        case .unreachable(let detail): return "prometheus unreachable: \(detail)"
        case .connectionFailed(let detail): return "prometheus unreachable: \(detail)"
        case .fatal(let detail): return "prometheus query failed: \(detail)"
        }
    }

    /// "prometheus answered HTTP 503", with Prometheus' own error when the body carries one.
    private static func httpErrorReason(_ answer: HTTPAnswer) -> String {
        var reason = "prometheus answered HTTP \(answer.status)"
        if let envelope = try? JSONDecoder().decode(Envelope.self, from: Data(answer.body.readableBytesView)),
           envelope.status == "error" {
            reason += " (" + errorText(envelope) + ")"
        }
        return reason
    }

    private static func errorText(_ envelope: Envelope) -> String {
        let type = envelope.errorType ?? "error"
        if let message = envelope.error, !message.isEmpty {
            return "\(type): \(HTTPTransport.excerpt(message))"
        }
        return type
    }

    // MARK: Interpreting an answer

    /// The envelope of every answer of Prometheus' HTTP API.
    struct Envelope: Decodable {
        var status: String
        var data: DataField?
        var errorType: String?
        var error: String?

        struct DataField: Decodable {
            var resultType: String
            var result: AdapterJSON
        }
    }

    /// Turns a (non-transient) HTTP answer into a result.
    static func interpret(_ answer: HTTPAnswer) -> MetricResult {
        let envelope: Envelope
        do {
            envelope = try JSONDecoder().decode(Envelope.self, from: Data(answer.body.readableBytesView))
        } catch {
            if answer.status != 200 {
                return .noData(reason: "prometheus answered HTTP \(answer.status)")
            }
            return .noData(reason: "malformed answer: \(describe(decodingError: error))")
        }
        guard envelope.status == "success" else {
            if envelope.status == "error" {
                let prefix = answer.status == 200 ? "" : " (HTTP \(answer.status))"
                return .noData(reason: "prometheus error\(prefix) \(errorText(envelope))")
            }
            return .noData(reason: "malformed answer: status \"\(envelope.status)\"")
        }
        guard answer.status == 200 else {
            return .noData(reason: "prometheus answered HTTP \(answer.status)")
        }
        guard let data = envelope.data else {
            return .noData(reason: "malformed answer: no data field")
        }
        switch data.resultType {
        case "vector":
            guard case .array(let series) = data.result else {
                return .noData(reason: "malformed answer: a vector result that is not an array")
            }
            if series.isEmpty { return .noData(reason: "no data") }
            if series.count > 1 { return .noData(reason: "ambiguous: \(series.count) series") }
            guard case .object(let sample) = series[0], let value = sample["value"] else {
                return .noData(reason: "malformed answer: a sample without a value")
            }
            return sampleValue(value)
        case "scalar":
            return sampleValue(data.result)
        case "matrix", "string":
            return .noData(reason: "unsupported result type \(data.resultType): the query must give one instant value")
        default:
            return .noData(reason: "malformed answer: unknown result type \(data.resultType)")
        }
    }

    /// `[<unix time>, "<value>"]` → the value; NaN and ±Inf are no data.
    private static func sampleValue(_ pair: AdapterJSON) -> MetricResult {
        guard case .array(let items) = pair, items.count == 2, case .string(let text) = items[1] else {
            return .noData(reason: "malformed answer: a sample is not [time, \"value\"]")
        }
        switch text.lowercased() {
        case "nan": return .noData(reason: "value is NaN")
        case "+inf", "inf": return .noData(reason: "value is +Inf")
        case "-inf": return .noData(reason: "value is -Inf")
        default: break
        }
        guard let value = Double(text) else {
            return .noData(reason: "malformed answer: sample value \"\(HTTPTransport.excerpt(text, limit: 40))\" is not a number")
        }
        if value.isNaN { return .noData(reason: "value is NaN") }
        if value.isInfinite { return .noData(reason: value > 0 ? "value is +Inf" : "value is -Inf") }
        return .value(value)
    }

    private static func describe(decodingError error: Error) -> String {
        guard let decoding = error as? DecodingError else { return "not JSON" }
        switch decoding {
        case .keyNotFound(let key, _):
            return "missing field \(key.stringValue)"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return "unexpected type at \(path.isEmpty ? "top level" : path)"
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? "not JSON" : "invalid value"
        @unknown default:
            return "not Prometheus' JSON"
        }
    }
}

extension RetryPolicy {
    /// For metrics queries: 3 attempts, 100 ms … 1 s backoff, 10 s per request, 20 s in all.
    public static let prometheusDefault = RetryPolicy(
        maxAttempts: 3, baseDelay: .milliseconds(100), maxDelay: .seconds(1),
        budget: .seconds(20), requestTimeout: .seconds(10))
}

/// Any JSON value, for answers whose shape depends on a field.
enum AdapterJSON: Decodable, Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([AdapterJSON])
    case object([String: AdapterJSON])

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([AdapterJSON].self) {
            self = .array(value)
        } else if let value = try? container.decode([String: AdapterJSON].self) {
            self = .object(value)
        } else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a JSON value")
        }
    }
}
