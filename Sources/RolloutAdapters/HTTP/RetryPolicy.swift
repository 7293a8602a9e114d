import Foundation
import RolloutCore

/// How an HTTP adapter retries a call that failed for a transient reason (429, 5xx,
/// connection errors, timeouts): at most `maxAttempts` attempts, full-jitter exponential
/// backoff between them, each attempt limited to `requestTimeout`, and the whole call
/// (attempts and waits together) limited to `budget`.
///
/// Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): the wait before
/// retry *n* (n = 1 for the wait after the first attempt) is a uniformly random duration in
/// `0 ... min(maxDelay, baseDelay * 2^(n-1))`. A `Retry-After` the server sent replaces the
/// random wait when it is shorter than `maxDelay`, and otherwise caps at `maxDelay`. A rate limit
/// whose reset the server announced (`AttemptOutcome.rateLimited`) is waited for in full when the
/// budget has room for it, and ends the call at once when it has not.
///
/// `sleep` and `random` are injectable so tests need not wait for real.
public struct RetryPolicy: Sendable {
    /// Attempts in all, the first one included (at least 1).
    public var maxAttempts: Int
    /// The cap of the first backoff window.
    public var baseDelay: Duration
    /// The largest backoff window.
    public var maxDelay: Duration
    /// The longest one call may take, attempts and waits included. No new attempt starts
    /// once it is spent, and an attempt never runs past it.
    public var budget: Duration
    /// The longest one attempt (one HTTP request, answer body included) may take.
    public var requestTimeout: Duration
    /// Waits between attempts. Defaults to `Task.sleep(for:)`.
    public var sleep: @Sendable (Duration) async throws -> Void
    /// A uniform random number in `0 ..< 1`. Defaults to the system generator.
    public var random: @Sendable () -> Double

    public init(
        maxAttempts: Int = 4,
        baseDelay: Duration = .milliseconds(200),
        maxDelay: Duration = .seconds(5),
        budget: Duration = .seconds(30),
        requestTimeout: Duration = .seconds(10),
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) },
        random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }
    ) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = max(.zero, baseDelay)
        self.maxDelay = max(.zero, maxDelay)
        self.budget = max(.zero, budget)
        self.requestTimeout = max(.zero, requestTimeout)
        self.sleep = sleep
        self.random = random
    }

    /// 4 attempts, 200 ms … 5 s backoff, 10 s per request, 30 s in all.
    public static let `default` = RetryPolicy()

    /// The upper bound of the backoff window before retry `retry` (1-based):
    /// `min(maxDelay, baseDelay * 2^(retry-1))`.
    public func backoffCap(beforeRetry retry: Int) -> Duration {
        let exponent = min(max(retry - 1, 0), 30)
        let cap = baseDelay.seconds * Double(1 << exponent)
        return .seconds(min(cap, maxDelay.seconds))
    }

    /// The full-jitter wait before retry `retry` (1-based): uniform in `0 ... backoffCap`.
    public func delay(beforeRetry retry: Int) -> Duration {
        let r = min(max(random(), 0), 1)
        return .seconds(backoffCap(beforeRetry: retry).seconds * r)
    }

    /// Runs `operation` until it succeeds, throws, or the policy is spent.
    ///
    /// `operation` receives the 1-based attempt number and the time it may take (the
    /// per-request timeout, shortened to what is left of the budget). It returns
    /// `.success` to finish, `.retryable` for a transient failure, and throws for a failure
    /// that must not be retried (the error is passed through unchanged).
    ///
    /// - Throws: `RetryExhausted` with the last transient failure when no attempt is left,
    ///   `CancellationError` when the task is cancelled, or what `operation` threw.
    public func run<T: Sendable>(
        _ operation: (_ attempt: Int, _ timeout: Duration) async throws -> AttemptOutcome<T>
    ) async throws -> T {
        let clock = ContinuousClock()
        let start = clock.now
        var attempt = 0
        var lastFailure = "no attempt was made"
        while true {
            attempt += 1
            try Task.checkCancellation()
            let remaining = budget - (clock.now - start)
            let timeout = min(requestTimeout, max(remaining, .milliseconds(1)))
            switch try await operation(attempt, timeout) {
            case .success(let value):
                return value
            case .retryable(let reason, let retryAfter):
                lastFailure = reason
                guard attempt < maxAttempts else {
                    throw RetryExhausted(attempts: attempt, lastFailure: lastFailure, budgetSpent: false)
                }
                var wait = delay(beforeRetry: attempt)
                if let retryAfter {
                    wait = min(max(retryAfter, .zero), maxDelay)
                }
                let left = budget - (clock.now - start)
                // Waiting must leave time for a useful attempt; otherwise stop now.
                guard left > wait + .milliseconds(1) else {
                    throw RetryExhausted(attempts: attempt, lastFailure: lastFailure, budgetSpent: true)
                }
                if wait > .zero {
                    try await sleep(wait)
                }
            case .rateLimited(let reason, let wait):
                // The server said when its limit resets: wait for it in full (a retry sooner would be
                // refused again), as long as the budget leaves time for an attempt after it.
                lastFailure = reason
                guard attempt < maxAttempts else {
                    throw RetryExhausted(attempts: attempt, lastFailure: lastFailure, budgetSpent: false)
                }
                let left = budget - (clock.now - start)
                guard left > wait + .milliseconds(1) else {
                    throw RetryExhausted(attempts: attempt, lastFailure: lastFailure, budgetSpent: true)
                }
                if wait > .zero {
                    try await sleep(wait)
                }
            }
        }
    }
}

/// What one attempt of `RetryPolicy.run` came to.
public enum AttemptOutcome<T: Sendable>: Sendable {
    case success(T)
    /// A transient failure: retried while the policy allows. `reason` is shown to the user
    /// when no attempt is left; `retryAfter` is the server's `Retry-After`, if any.
    case retryable(reason: String, retryAfter: Duration? = nil)
    /// A rate limit whose reset the server announced (LaunchDarkly's `X-Ratelimit-Reset`): the next
    /// attempt waits `wait` in full, not capped at `maxDelay`, when the budget has room for it.
    case rateLimited(reason: String, wait: Duration)
}

/// Every attempt `RetryPolicy.run` was allowed failed transiently.
public struct RetryExhausted: Error, Sendable, Equatable, CustomStringConvertible {
    public var attempts: Int
    /// The reason of the last failure, e.g. "HTTP 503" or "timed out after 2s".
    public var lastFailure: String
    /// True when the time budget, not the attempt count, ended the retries.
    public var budgetSpent: Bool

    public var description: String {
        let tries = attempts == 1 ? "1 attempt" : "\(attempts) attempts"
        return budgetSpent
            ? "\(lastFailure) (\(tries), retry budget spent)"
            : "\(lastFailure) (\(tries))"
    }
}

extension Duration {
    /// The duration in seconds, as a Double.
    var seconds: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) / 1e18
    }

    /// A short human form: "2s", "0.3s", "1.25s".
    var shortDescription: String {
        // Milliseconds at most: a timeout is never finer.
        formatNumber((seconds * 1000).rounded() / 1000) + "s"
    }
}
