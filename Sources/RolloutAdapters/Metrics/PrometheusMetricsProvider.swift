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
                    if answer.isTransient {
                        return .retryable(
                            reason: Self.httpErrorReason(answer),
                            retryAfter: HTTPTransport.retryAfter(answer))
                    }
                    return .success(answer)
                } catch let failure as TransportFailure {
                    let reason = Self.describe(failure)
                    guard failure.isRetryable else { throw PrometheusFailure(reason: reason) }
                    logger.debug(
                        "prometheus query failed", metadata: ["check": "\(query.check)", "reason": "\(reason)"])
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
        if case .success(let envelope) = PrometheusAnswer.Envelope.read(Array(answer.body.readableBytesView)),
            envelope.status == "error"
        {
            reason += " (" + PrometheusAnswer.errorText(envelope) + ")"
        }
        return reason
    }

    // MARK: Interpreting an answer (PrometheusAnswer.swift, Foundation only, so that it can be fuzzed)

    /// Turns a (non-transient) HTTP answer into a result.
    static func interpret(_ answer: HTTPAnswer) -> MetricResult {
        PrometheusAnswer.interpret(status: answer.status, body: Array(answer.body.readableBytesView))
    }
}

extension RetryPolicy {
    /// For metrics queries: 3 attempts, 100 ms … 1 s backoff, 10 s per request, 20 s in all.
    public static let prometheusDefault = RetryPolicy(
        maxAttempts: 3, baseDelay: .milliseconds(100), maxDelay: .seconds(1),
        budget: .seconds(20), requestTimeout: .seconds(10))
}
