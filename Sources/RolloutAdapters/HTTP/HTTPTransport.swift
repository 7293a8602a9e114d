import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import RolloutCore

/// One HTTP answer, read whole: status, headers and body.
struct HTTPAnswer: Sendable {
    var status: Int
    var headers: [(name: String, value: String)]
    var body: ByteBuffer

    var bodyString: String { String(buffer: body) }

    /// The first value of a header, compared case-insensitively.
    func header(_ name: String) -> String? {
        let lowered = name.lowercased()
        return headers.first { $0.name.lowercased() == lowered }?.value
    }

    /// 408, 429 and 5xx: the answers a retry may cure (every HTTP adapter retries exactly these).
    static func isTransient(_ status: Int) -> Bool { status == 408 || status == 429 || (500...599).contains(status) }
    var isTransient: Bool { Self.isTransient(status) }
}

/// Why an HTTP attempt got no answer at all.
enum TransportFailure: Error, Sendable, Equatable {
    /// No answer (head and body) within the attempt's time.
    case timedOut(Duration)
    /// No connection could be made (refused, no route, name not resolved, connect timeout).
    case unreachable(String)
    /// The connection broke or another transient transport error happened.
    case connectionFailed(String)
    /// A failure that retrying cannot cure (client shut down, invalid URL, answer too large).
    case fatal(String)

    var isRetryable: Bool {
        if case .fatal = self { return false }
        return true
    }
}

extension TransportFailure {
    /// `timed out after 5s`, `unreachable: …`: the words a flag store's error uses.
    var reason: String {
        switch self {
        case .timedOut(let timeout): return "timed out after \(timeout.shortDescription)"
        case .unreachable(let detail): return "unreachable: \(detail)"
        case .connectionFailed(let detail): return "connection failed: \(detail)"
        case .fatal(let detail): return detail
        }
    }
}

/// Removes a token from a message (an answer could echo it back): no secret in output or logs.
func redacting(_ token: String?, in text: String) -> String {
    guard let token, !token.isEmpty else { return text }
    return text.replacingOccurrences(of: token, with: "[redacted]")
}

enum HTTPTransport {
    /// The largest answer body read (1 MiB): flag and query answers are small.
    static let maxBodyBytes = 1 << 20

    /// Sends `request` and reads the whole answer within `timeout`.
    ///
    /// AsyncHTTPClient's deadline covers the wait for the answer's head only; a server that
    /// stalls in the middle of a body is cut off here by a second timer a little later.
    ///
    /// - Throws: `TransportFailure`, or `CancellationError` when the task is cancelled.
    static func send(
        _ request: HTTPClientRequest,
        client: HTTPClient,
        timeout: Duration,
        logger: Logger
    ) async throws -> HTTPAnswer {
        do {
            return try await withThrowingTaskGroup(of: HTTPAnswer?.self) { group in
                group.addTask {
                    let response = try await client.execute(request, timeout: TimeAmount(timeout), logger: logger)
                    let body = try await response.body.collect(upTo: maxBodyBytes)
                    let headers = response.headers.map { (name: $0.name, value: $0.value) }
                    return HTTPAnswer(status: Int(response.status.code), headers: headers, body: body)
                }
                group.addTask {
                    // The guard timer: AsyncHTTPClient's own deadline normally fires first.
                    try await Task.sleep(for: timeout + .milliseconds(250))
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let answer = first else {
                    throw TransportFailure.timedOut(timeout)
                }
                return answer
            }
        } catch let failure as TransportFailure {
            throw failure
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw classify(error, timeout: timeout)
        }
    }

    /// Sorts a transport error into timeout, unreachable, broken connection or fatal.
    static func classify(_ error: Error, timeout: Duration) -> TransportFailure {
        if let refused = findConnectionRefused(error) {
            return .unreachable(refused)
        }
        if let httpError = error as? HTTPClientError {
            switch httpError {
            case .deadlineExceeded, .readTimeout, .writeTimeout, .getConnectionFromPoolTimeout:
                return .timedOut(timeout)
            case .connectTimeout, .tlsHandshakeTimeout, .socksHandshakeTimeout, .httpProxyHandshakeTimeout:
                return .unreachable("connect timed out")
            case .remoteConnectionClosed, .cancelled:
                return .connectionFailed("the connection was closed before an answer arrived")
            case .alreadyShutdown:
                return .fatal("the HTTP client is shut down")
            case .invalidURL, .emptyHost, .emptyScheme:
                return .fatal("invalid URL")
            default:
                return .connectionFailed(String(describing: httpError))
            }
        }
        if let channelError = error as? ChannelError {
            switch channelError {
            case .connectTimeout:
                return .unreachable("connect timed out")
            default:
                return .connectionFailed(String(describing: channelError))
            }
        }
        if error is NIOTooManyBytesError {
            return .fatal("the answer is larger than \(maxBodyBytes) bytes")
        }
        let typeName = String(reflecting: type(of: error))
        if typeName.contains("NIOConnectionError") || typeName.contains("ConnectionError") {
            return .unreachable(String(describing: error))
        }
        if let ioError = error as? IOError {
            return .connectionFailed(ioError.description)
        }
        return .connectionFailed(String(describing: error))
    }

    /// Finds a "connection refused" anywhere in the error (NIOPosix' `NIOConnectionError`
    /// carries one `IOError` per address tried; an IP literal gives an `IOError` directly).
    private static func findConnectionRefused(_ error: Error) -> String? {
        func search(_ value: Any, depth: Int) -> Bool {
            if let io = value as? IOError, io.errnoCode == ECONNREFUSED { return true }
            guard depth < 4 else { return false }
            for child in Mirror(reflecting: value).children {
                if search(child.value, depth: depth + 1) { return true }
            }
            return false
        }
        return search(error, depth: 0) ? "connection refused" : nil
    }

    /// Parses `Retry-After` given in seconds (the HTTP-date form is ignored).
    static func retryAfter(_ answer: HTTPAnswer) -> Duration? {
        guard let value = answer.header("Retry-After")?.trimmingCharacters(in: .whitespaces),
            let seconds = Double(value), seconds.isFinite, seconds >= 0
        else { return nil }
        // A server's number: capped at a day before the conversion (1e300 would trap in Int64()).
        return .milliseconds(Int64(min(seconds, 86_400) * 1000))
    }

    /// How long until the rate limit an answer announces resets: `X-Ratelimit-Reset` (LaunchDarkly's,
    /// epoch milliseconds) minus `now`, at least zero, capped at a minute; nil without the header.
    static func rateLimitReset(_ answer: HTTPAnswer, now: Date) -> Duration? {
        guard let value = answer.header("X-Ratelimit-Reset")?.trimmingCharacters(in: .whitespaces),
            let reset = Double(value), reset.isFinite
        else { return nil }
        let milliseconds = min(max(reset - now.timeIntervalSince1970 * 1000, 0), 60_000)
        return .milliseconds(Int64(milliseconds.rounded(.up)))
    }

    /// `base` without trailing slashes, followed by `path` (which starts with "/").
    static func join(_ base: String, _ path: String) -> String {
        var base = base
        while base.hasSuffix("/") { base.removeLast() }
        return base + path
    }

    /// Percent-encodes everything but RFC 3986's unreserved characters.
    static func percentEncode(_ text: String) -> String {
        let unreserved = CharacterSet(
            charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")
        return text.addingPercentEncoding(withAllowedCharacters: unreserved) ?? text
    }

    /// A short, single-line excerpt of an answer body for error messages.
    static func excerpt(_ text: String, limit: Int = 200) -> String { TextExcerpt.excerpt(text, limit: limit) }
}

/// The HTTP client rolloutctl's adapters are meant to share (one per process).
public enum RolloutHTTPClient {
    /// An `HTTPClient` on the shared event loops, set for the flag API and Prometheus:
    /// - redirects are not followed (a redirect must not carry the bearer token elsewhere;
    ///   a 3xx is reported as an invalid answer);
    /// - a refused connection fails the attempt at once instead of being retried by the
    ///   connection pool until the request's deadline, so `RetryPolicy` alone decides;
    /// - connecting takes at most `connectTimeout`.
    ///
    /// The caller owns it: `try await client.shutdown()` when done.
    public static func make(connectTimeout: Duration = .seconds(5)) -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.timeout.connect = TimeAmount(connectTimeout)
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.decompression = .disabled
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }
}
