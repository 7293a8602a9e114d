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
    /// Idempotent calls with the retry policy.
    private let service: FlagServiceCall

    /// - Parameter gate: the bound on calls in flight to this service and its 429 pause (`ServiceGate`).
    public init(
        baseURL: String, token: String?, client: HTTPClient, retry: RetryPolicy = .default, logger: Logger,
        gate: ServiceGate = ServiceGate()
    ) {
        self.baseURL = baseURL
        self.token = (token?.isEmpty ?? true) ? nil : token
        self.client = client
        self.retry = retry
        self.logger = logger
        self.service = FlagServiceCall(
            service: "flag service", token: self.token, client: client, retry: retry, logger: logger,
            gate: gate)
    }

    // MARK: FlagStore

    public func read(flag: String) async throws -> FlagSnapshot {
        var request = HTTPClientRequest(url: flagURL(flag))
        request.method = .GET
        request.headers.add(name: "Accept", value: "application/json")
        addAuthorization(to: &request)
        let answer = try await service.send(request, flag: flag, operation: "GET")
        switch answer.status {
        case 200:
            return try decodeFlag(answer, flag: flag)
        default:
            throw FlagStoreError.failed(answer, flag: flag, conflict: 412, scrub: scrub)
        }
    }

    public func apply(flag: String, patch: FlagPatch, ifMatch version: String) async throws -> FlagSnapshot {
        var request = HTTPClientRequest(url: flagURL(flag))
        request.method = .PATCH
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "If-Match", value: FlagAPIAnswer.entityTag(version))
        addAuthorization(to: &request)
        request.body = .bytes(ByteBuffer(string: FlagAPIAnswer.patchBody(patch)))
        let answer = try await service.send(request, flag: flag, operation: "PATCH")
        switch answer.status {
        case 200:
            let updated = try decodeFlag(answer, flag: flag)
            logger.info(
                "flag updated",
                metadata: [
                    "flag": "\(flag)", "environment": "\(patch.environment ?? "*")",
                    "enabled": "\(patch.enabled)", "coverage": "\(patch.coverage.map(formatNumber) ?? "-")",
                    "version": "\(updated.version)",
                ]
            )
            return updated
        default:
            throw FlagStoreError.failed(answer, flag: flag, conflict: 412, scrub: scrub)
        }
    }

    // MARK: Requests

    private func addAuthorization(to request: inout HTTPClientRequest) {
        if let token {
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
        }
    }

    private func flagURL(_ flag: String) -> String {
        HTTPTransport.join(baseURL, "/api/v1/feature-flags/" + HTTPTransport.percentEncode(flag))
    }

    private func scrub(_ text: String) -> String { redacting(token, in: text) }

    // MARK: Decoding

    /// The flag in a 200 answer, which must be about `flag` (SPEC §6 [r3]).
    private func decodeFlag(_ answer: HTTPAnswer, flag: String) throws -> FlagSnapshot {
        let snapshot: FlagSnapshot
        do {
            snapshot = try FlagAPIAnswer.snapshot(
                body: Array(answer.body.readableBytesView), etag: answer.header("ETag"), flag: flag)
        } catch {
            let excerpt = HTTPTransport.excerpt(answer.bodyString, limit: 120)
            throw FlagStoreError.invalidResponse(scrub("flag \(flag): \(error.detail); body: \(excerpt)"))
        }
        return try snapshot.answering(flag, service: "the flag service", scrub: scrub)
    }
}
