import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import RolloutCore

/// The flag store behind `--flags http(s)://…`: the flag API of SPEC §7 over HTTP.
///
/// - `read` is `GET {base}/api/v1/feature-flags/{key}`; the version is the body's `version`
///   (a number or a string), else the `ETag` header.
/// - `apply` is `PATCH {base}/api/v1/feature-flags/{key}` with `Authorization: Bearer <token>`,
///   `If-Match: "<version>"` and a JSON body; the answer is the updated flag.
/// - 404 → `.notFound`; 412 → `.versionConflict` (never retried here: the caller re-reads and
///   re-decides); 401/403 → `.unauthorized` (never retried); 429, 408, 5xx, connection errors
///   and timeouts are retried with `retry`, then `.unavailable`. Other answers → `.invalidResponse`.
///
/// A PATCH whose answer was lost (timeout, broken connection) is sent again with the same
/// `If-Match`: if the first one was applied, the version moved and the retry gets 412, so a
/// PATCH is never applied twice.
///
/// The token is sent in the `Authorization` header only. It never appears in an error or a
/// log line: headers are never logged, and every message built from an answer is scrubbed.
///
/// The `HTTPClient` is the caller's: this store never shuts it down. Create one per process
/// (`HTTPClient(eventLoopGroupProvider: .singleton)` or `HTTPClient.shared`) and shut it down
/// when the process is done with it.
public final class HTTPFlagStore: FlagStore {
    public let baseURL: String
    private let token: String?
    private let client: HTTPClient
    private let retry: RetryPolicy
    private let logger: Logger

    public init(baseURL: String, token: String?, client: HTTPClient, retry: RetryPolicy = .default, logger: Logger) {
        self.baseURL = baseURL
        self.token = (token?.isEmpty ?? true) ? nil : token
        self.client = client
        self.retry = retry
        self.logger = logger
    }

    // MARK: FlagStore

    public func read(flag: String) async throws -> FlagSnapshot {
        var request = HTTPClientRequest(url: flagURL(flag))
        request.method = .GET
        request.headers.add(name: "Accept", value: "application/json")
        addAuthorization(to: &request)
        let answer = try await send(request, flag: flag, operation: "GET")
        switch answer.status {
        case 200:
            return try decodeFlag(answer, flag: flag)
        default:
            throw failure(for: answer, flag: flag)
        }
    }

    public func apply(flag: String, patch: FlagPatch, ifMatch version: String) async throws -> FlagSnapshot {
        var request = HTTPClientRequest(url: flagURL(flag))
        request.method = .PATCH
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "If-Match", value: Self.entityTag(version))
        addAuthorization(to: &request)
        request.body = .bytes(ByteBuffer(string: Self.patchBody(patch)))
        let answer = try await send(request, flag: flag, operation: "PATCH")
        switch answer.status {
        case 200:
            let updated = try decodeFlag(answer, flag: flag)
            logger.info(
                "flag updated",
                metadata: [
                    "flag": "\(flag)", "environment": "\(patch.environment ?? "*")",
                    "enabled": "\(patch.enabled)", "coverage": "\(patch.coverage.map(jsonNumber) ?? "-")",
                    "version": "\(updated.version)",
                ]
            )
            return updated
        default:
            throw failure(for: answer, flag: flag)
        }
    }

    // MARK: Requests

    /// Sends a request with the retry policy. Returns the first answer that is not
    /// transient (anything but 408, 429 and 5xx); throws `.unavailable` when retries are spent.
    private func send(_ request: HTTPClientRequest, flag: String, operation: String) async throws -> HTTPAnswer {
        let logger = self.logger
        let client = self.client
        do {
            return try await retry.run { attempt, timeout -> AttemptOutcome<HTTPAnswer> in
                logger.debug(
                    "flag service request",
                    metadata: ["method": "\(operation)", "flag": "\(flag)", "attempt": "\(attempt)"]
                )
                let answer: HTTPAnswer
                do {
                    answer = try await HTTPTransport.send(request, client: client, timeout: timeout, logger: logger)
                } catch let failure as TransportFailure {
                    let reason = failure.reason
                    guard failure.isRetryable else {
                        throw FlagStoreError.unavailable(self.scrub(reason))
                    }
                    logger.warning(
                        "flag service request failed",
                        metadata: ["method": "\(operation)", "flag": "\(flag)", "attempt": "\(attempt)",
                                   "reason": "\(self.scrub(reason))"]
                    )
                    return .retryable(reason: reason)
                }
                if answer.isTransient {
                    logger.warning(
                        "flag service answered a transient error",
                        metadata: ["method": "\(operation)", "flag": "\(flag)", "attempt": "\(attempt)",
                                   "status": "\(answer.status)"]
                    )
                    return .retryable(reason: "HTTP \(answer.status)", retryAfter: HTTPTransport.retryAfter(answer))
                }
                return .success(answer)
            }
        } catch let exhausted as RetryExhausted {
            throw FlagStoreError.unavailable(scrub("\(operation) \(flag): \(exhausted.description)"))
        }
    }

    private func failure(for answer: HTTPAnswer, flag: String) -> FlagStoreError {
        switch answer.status {
        case 404:
            return .notFound(flag: flag)
        case 412:
            return .versionConflict(flag: flag)
        case 401, 403:
            return .unauthorized(status: answer.status)
        default:
            let body = HTTPTransport.excerpt(answer.bodyString)
            let detail = body.isEmpty ? "HTTP \(answer.status)" : "HTTP \(answer.status): \(body)"
            return .invalidResponse(scrub(detail))
        }
    }

    private func addAuthorization(to request: inout HTTPClientRequest) {
        if let token {
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
        }
    }

    private func flagURL(_ flag: String) -> String {
        HTTPTransport.join(baseURL, "/api/v1/feature-flags/" + HTTPTransport.percentEncode(flag))
    }

    private func scrub(_ text: String) -> String { redacting(token, in: text) }


    // MARK: Encoding and decoding

    /// `"7"` for version `7`; a version already quoted (or weak) is sent as it is.
    static func entityTag(_ version: String) -> String {
        if version.hasPrefix("\"") || version.hasPrefix("W/\"") || version == "*" {
            return version
        }
        return "\"\(version)\""
    }

    /// The version inside an ETag: `"7"` → `7`, `W/"7"` → `7`.
    static func version(fromETag etag: String) -> String? {
        var tag = etag.trimmingCharacters(in: .whitespaces)
        if tag.hasPrefix("W/") { tag.removeFirst(2) }
        if tag.count >= 2, tag.hasPrefix("\""), tag.hasSuffix("\"") {
            tag = String(tag.dropFirst().dropLast())
        }
        return tag.isEmpty ? nil : tag
    }

    /// `{"environment":"production","enabled":true,"coverage":50}`; `environment` and
    /// `coverage` are left out when nil; integral coverage is written without ".0".
    static func patchBody(_ patch: FlagPatch) -> String {
        var fields: [String] = []
        if let environment = patch.environment {
            fields.append("\"environment\":\(jsonString(environment))")
        }
        fields.append("\"enabled\":\(patch.enabled ? "true" : "false")")
        if let coverage = patch.coverage {
            precondition(coverage.isFinite, "coverage must be a finite number")
            fields.append("\"coverage\":\(jsonNumber(coverage))")
        }
        return "{" + fields.joined(separator: ",") + "}"
    }

    private struct FlagBody: Decodable {
        var key: String?
        var version: Version?
        var environments: [String: FlagEnvironmentState]

        enum Version: Decodable {
            case text(String)

            init(from decoder: Decoder) throws {
                let container = try decoder.singleValueContainer()
                if let number = try? container.decode(Int64.self) {
                    self = .text(String(number))
                } else if let text = try? container.decode(String.self) {
                    self = .text(text)
                } else if let number = try? container.decode(Double.self) {
                    self = .text(jsonNumber(number))
                } else {
                    throw DecodingError.dataCorruptedError(
                        in: container, debugDescription: "version must be a number or a string")
                }
            }

            var text: String { if case .text(let t) = self { return t } else { return "" } }
        }
    }

    private func decodeFlag(_ answer: HTTPAnswer, flag: String) throws -> FlagSnapshot {
        let body: FlagBody
        do {
            body = try JSONDecoder().decode(FlagBody.self, from: Data(answer.body.readableBytesView))
        } catch {
            let excerpt = HTTPTransport.excerpt(answer.bodyString, limit: 120)
            throw FlagStoreError.invalidResponse(scrub("flag \(flag): \(Self.describe(decodingError: error)); body: \(excerpt)"))
        }
        let version = body.version?.text ?? answer.header("ETag").flatMap(Self.version(fromETag:))
        guard let version, !version.isEmpty else {
            throw FlagStoreError.invalidResponse("flag \(flag): the answer has neither a version nor an ETag")
        }
        for (environment, state) in body.environments where !state.coverage.isFinite || state.coverage < 0 || state.coverage > 100 {
            throw FlagStoreError.invalidResponse(
                "flag \(flag): coverage \(state.coverage) of environment \(environment) is not in [0, 100]")
        }
        return FlagSnapshot(key: body.key ?? flag, version: version, environments: body.environments)
    }

    private static func describe(decodingError error: Error) -> String {
        guard let decoding = error as? DecodingError else { return "not JSON" }
        func path(_ context: DecodingError.Context) -> String {
            let p = context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
            return p.isEmpty ? "" : " at \(p)"
        }
        switch decoding {
        case .keyNotFound(let key, let context):
            return "missing field \(key.stringValue)\(path(context))"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "unexpected type\(path(context))"
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? "not JSON" : "invalid value\(path(context))"
        @unknown default:
            return "not the flag API's JSON"
        }
    }
}
