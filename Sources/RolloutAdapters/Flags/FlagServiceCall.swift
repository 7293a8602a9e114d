import AsyncHTTPClient
import Foundation
import Logging
import RolloutCore

/// One idempotent call to a flag service over HTTP with the retry policy, shared by the HTTP flag
/// API, Unleash and LaunchDarkly: 408, 429, 5xx and retryable transport failures are retried
/// (honouring `Retry-After`; a 429 with `X-Ratelimit-Reset` waits for the reset in full when the
/// budget has room), the first other answer is returned, and a spent budget or a fatal failure is
/// `.unavailable`. Every message that leaves is scrubbed of the token.
struct FlagServiceCall {
    /// `flag service` or `Unleash`, for the log lines.
    var service: String
    var client: HTTPClient
    var retry: RetryPolicy
    var logger: Logger
    var scrub: @Sendable (String) -> String
    /// The service's bound on calls in flight, and the pause a 429 puts on every call (issue 22).
    var gate: ServiceGate

    /// A call whose messages are scrubbed of `token`.
    init(
        service: String, token: String?, client: HTTPClient, retry: RetryPolicy, logger: Logger,
        gate: ServiceGate = ServiceGate()
    ) {
        self.service = service
        self.client = client
        self.retry = retry
        self.logger = logger
        self.scrub = { redacting(token, in: $0) }
        self.gate = gate
    }

    func send(_ request: HTTPClientRequest, flag: String, operation: String) async throws -> HTTPAnswer {
        let (service, client, logger, scrub, gate, retry) = (
            self.service, self.client, self.logger, self.scrub, self.gate, self.retry
        )
        do {
            return try await retry.run { attempt, timeout -> AttemptOutcome<HTTPAnswer> in
                let context: Logger.Metadata = [
                    "operation": "\(operation)", "flag": "\(flag)", "attempt": "\(attempt)",
                ]
                logger.debug("\(service) request", metadata: context)
                let answer: HTTPAnswer
                do {
                    answer = try await gate.run {
                        try await HTTPTransport.send(request, client: client, timeout: timeout, logger: logger)
                    }
                } catch let failure as TransportFailure {
                    guard failure.isRetryable else {
                        throw FlagStoreError.unavailable(scrub(failure.reason))
                    }
                    logger.warning(
                        "\(service) request failed",
                        metadata: context.merging(["reason": "\(scrub(failure.reason))"]) { $1 })
                    return .retryable(reason: failure.reason)
                }
                if answer.status == 429 {
                    // The service is over its limit for every caller: every call of this run waits for the
                    // server's own wait (or the backoff), never longer than the whole retry budget.
                    let reset = HTTPTransport.rateLimitReset(answer, now: Date())
                    let retryAfter = HTTPTransport.retryAfter(answer)
                    await gate.pause(
                        for: min(reset ?? retryAfter ?? retry.backoffCap(beforeRetry: attempt), retry.budget))
                    if let reset {
                        let wait = max(reset, retryAfter ?? .zero)
                        logger.warning(
                            "\(service) rate limit reached; waiting for its reset",
                            metadata: context.merging(["status": "429", "wait": "\(wait.shortDescription)"]) { $1 })
                        return .rateLimited(reason: "HTTP 429 (rate limited)", wait: wait)
                    }
                }
                if answer.isTransient {
                    logger.warning(
                        "\(service) answered a transient error",
                        metadata: context.merging(["status": "\(answer.status)"]) { $1 })
                    return .retryable(reason: "HTTP \(answer.status)", retryAfter: HTTPTransport.retryAfter(answer))
                }
                return .success(answer)
            }
        } catch let exhausted as RetryExhausted {
            throw FlagStoreError.unavailable(scrub("\(operation) \(flag): \(exhausted.description)"))
        }
    }
}

extension FlagStoreError {
    /// What a flag service's answer that is not a success means, the same for every HTTP store: 401/403 refused
    /// credentials (never retried), 404 no such flag, `conflict` a moved version (412 for the flag API, 409 for
    /// LaunchDarkly, none for Unleash), anything else a bad answer with an excerpt of its body, scrubbed.
    static func failed(
        _ answer: HTTPAnswer, flag: String, conflict: Int?, scrub: (String) -> String
    ) -> FlagStoreError {
        switch answer.status {
        case 401, 403:
            return .unauthorized(status: answer.status)
        case 404:
            return .notFound(flag: flag)
        case conflict:
            return .versionConflict(flag: flag)
        default:
            let body = HTTPTransport.excerpt(answer.bodyString)
            return .invalidResponse(scrub(body.isEmpty ? "HTTP \(answer.status)" : "HTTP \(answer.status): \(body)"))
        }
    }
}
