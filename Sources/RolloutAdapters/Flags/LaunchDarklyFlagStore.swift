import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import RolloutCore

/// The flag store behind `--flags launchdarkly+https://HOST?project=PROJECT` (SPEC §7.1 LaunchDarkly):
/// LaunchDarkly's REST API v2 (HOST is LaunchDarkly's API host or a relay in front of it).
/// Environments are LaunchDarkly environment keys.
///
/// - read: `GET /api/v2/flags/{project}/{flag}` (the flag with every environment), decoded by
///   `LaunchDarklyAnswer`: off → disabled; on with the false variation as fallthrough → 0; on with a
///   rollout rolloutctl writes → the true variation's weight / 1000. A flag that is not boolean is an
///   error; an off variation that is not the false one, or a fallthrough rolloutctl did not write, is
///   an error for the rollouts whose plans name that environment (`FlagSnapshot.errors`), never
///   overwritten; rules and individual targets serving `true` are warnings on every plan.
/// - apply: one semantic patch per environment change, `PATCH /api/v2/flags/{project}/{flag}` with
///   `Content-Type: application/json; domain-model=launchdarkly.semanticpatch` and
///   `{"environmentKey", "comment": "rolloutctl: rollout R, phase P, plan B (reason)", "instructions"}`:
///   `turnFlagOff`, or `turnFlagOn` + `updateFallthroughVariationOrRollout` with `rolloutWeights`
///   (true variation c × 1000, false the rest) and `rolloutBucketBy: "key"`. LaunchDarkly applies the
///   instructions of one patch together or not at all.
/// - The version is the flag's `_version`. A semantic patch carries no precondition (LaunchDarkly's
///   only one is JSON Patch's `test` op), so `apply` reads the flag right before the patch and throws
///   `.versionConflict` when `_version` moved since the caller's read (the caller re-reads and
///   re-decides, SPEC §7); LaunchDarkly's own 409 (a concurrent request) is the same conflict.
/// - The access token goes in `Authorization` as LaunchDarkly expects it (no `Bearer`); 401/403 are
///   never retried; 429 waits for `X-Ratelimit-Reset` (epoch milliseconds) within the retry budget;
///   408, 5xx and connection failures are retried as `RetryPolicy` says (each patch is idempotent:
///   an instruction does nothing when the flag is already in the state it asks for).
public final class LaunchDarklyFlagStore: FlagStore {
    /// `https://HOST` (the `launchdarkly+` prefix and the query removed).
    public let baseURL: String
    public let project: String
    private let token: String?
    private let logger: Logger
    private let service: FlagServiceCall

    /// The media type of a semantic patch.
    public static let semanticPatchContentType = "application/json; domain-model=launchdarkly.semanticpatch"

    public init(
        baseURL: String, project: String, token: String?, client: HTTPClient, retry: RetryPolicy = .default,
        logger: Logger, gate: ServiceGate = ServiceGate()
    ) {
        self.baseURL = baseURL
        self.project = project
        self.token = (token?.isEmpty ?? true) ? nil : token
        self.logger = logger
        self.service = FlagServiceCall(
            service: "LaunchDarkly", token: self.token, client: client, retry: retry, logger: logger,
            gate: gate)
    }

    /// Parses `launchdarkly+https://HOST[/prefix]?project=P` (or `launchdarkly+http`); the project is required.
    public static func parse(_ spec: String) -> (baseURL: String, project: String)? {
        guard spec.hasPrefix("launchdarkly+http://") || spec.hasPrefix("launchdarkly+https://"),
            var components = URLComponents(string: String(spec.dropFirst("launchdarkly+".count))),
            let host = components.host, !host.isEmpty,
            let project = components.queryItems?.first(where: { $0.name == "project" })?.value, !project.isEmpty
        else { return nil }
        components.query = nil
        components.fragment = nil
        guard let url = components.string else { return nil }
        return (url, project)
    }

    // MARK: FlagStore

    /// LaunchDarkly's weights are thousandths of a percent: a coverage finer than that is an error.
    public func planProblems(_ plan: Plan, path: String) -> [Diagnostic] {
        plan.phases.filter { LaunchDarklyAnswer.weight($0.coverage) == nil }.map { phase in
            Diagnostic(
                path: path, line: phase.coveragePosition.line, column: phase.coveragePosition.column,
                message: "coverage \(formatNumber(phase.coverage)) of phase \(phase.name): environment "
                    + "\(phase.environment) is a LaunchDarkly environment, whose rollout weights are "
                    + "thousandths of a percent (at most 3 decimals)")
        }
    }

    public func read(flag: String) async throws -> FlagSnapshot {
        try await fetch(flag).snapshot()
    }

    public func apply(flag: String, patch: FlagPatch, ifMatch version: String) async throws -> FlagSnapshot {
        var current = try await fetch(flag)
        guard current.version == version else { throw FlagStoreError.versionConflict(flag: flag) }
        var snapshot = try current.snapshot()
        guard let trueIndex = current.index(of: true), let falseIndex = current.index(of: false),
            let trueID = current.ids[trueIndex], let falseID = current.ids[falseIndex]
        else {
            throw FlagStoreError.invalidResponse(
                "flag \(flag): the true and false variations need their _id to be written by semantic patch")
        }
        let targets = patch.environment.map { [$0] } ?? current.environments.map(\.key).sorted()
        for name in targets {
            guard let environment = current.environments.first(where: { $0.key == name }) else {
                throw FlagStoreError.notManaged(
                    "flag \(flag) has no environment \(name) in LaunchDarkly project \(project); "
                        + "add the environment there (rolloutctl never creates it)")
            }
            if !patch.enabled, !environment.on { continue }
            // Turning off lowers exposure whatever the default rule is, as long as off serves false;
            // anything else waits until a person fixes what rolloutctl does not own.
            if let refusal = snapshot.errors.first(where: { $0.environment == name }),
                patch.enabled || environment.offVariation != falseIndex
            {
                throw FlagStoreError.notManaged("\(flag)[\(name)]: \(refusal.message)")
            }
            let state = environment.reading(trueIndex: trueIndex, falseIndex: falseIndex).state
            let coverage = patch.coverage ?? (state.enabled && state.coverage > 0 ? state.coverage : 100)
            guard
                let instructions = LaunchDarklyAnswer.instructions(
                    enabled: patch.enabled, coverage: coverage, trueID: trueID, falseID: falseID)
            else {
                throw FlagStoreError.notManaged(
                    "coverage \(formatNumber(coverage)) for \(flag)[\(name)]: LaunchDarkly's rollout weights "
                        + "are thousandths of a percent")
            }
            let body = LaunchDarklyAnswer.patchBody(
                environment: name, comment: LaunchDarklyAnswer.comment(patch.context), instructions: instructions)
            current = try await send(flag: flag, body: body)
            snapshot = try current.snapshot()
            logger.info(
                "flag updated",
                metadata: [
                    "flag": "\(flag)", "environment": "\(name)", "enabled": "\(patch.enabled)",
                    "coverage": "\(patch.coverage.map(formatNumber) ?? "-")", "service": "launchdarkly",
                    "version": "\(current.version)",
                ])
        }
        return snapshot
    }

    // MARK: Calls

    private func flagURL(_ flag: String) -> String {
        HTTPTransport.join(
            baseURL,
            "/api/v2/flags/\(HTTPTransport.percentEncode(project))/\(HTTPTransport.percentEncode(flag))")
    }

    private func fetch(_ flag: String) async throws -> LaunchDarklyAnswer.Flag {
        let answer = try await service.send(request(flagURL(flag), "GET"), flag: flag, operation: "GET")
        guard answer.status == 200 else { throw FlagStoreError.failed(answer, flag: flag, conflict: 409, scrub: scrub) }
        return try decode(answer, flag: flag)
    }

    private func send(flag: String, body: String) async throws -> LaunchDarklyAnswer.Flag {
        var request = request(flagURL(flag), "PATCH")
        request.headers.add(name: "Content-Type", value: Self.semanticPatchContentType)
        request.body = .bytes(ByteBuffer(string: body))
        let answer = try await service.send(request, flag: flag, operation: "PATCH semantic patch")
        guard answer.status == 200 else { throw FlagStoreError.failed(answer, flag: flag, conflict: 409, scrub: scrub) }
        return try decode(answer, flag: flag)
    }

    private func decode(_ answer: HTTPAnswer, flag: String) throws -> LaunchDarklyAnswer.Flag {
        do {
            return try LaunchDarklyAnswer.Flag(body: Array(answer.body.readableBytesView), flag: flag)
        } catch {
            let body = HTTPTransport.excerpt(answer.bodyString, limit: 120)
            throw FlagStoreError.invalidResponse(scrub("flag \(flag): \(error.detail); body: \(body)"))
        }
    }

    private func request(_ url: String, _ method: String) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url)
        request.method = .init(rawValue: method)
        request.headers.add(name: "Accept", value: "application/json")
        if let token { request.headers.add(name: "Authorization", value: token) }
        return request
    }

    private func scrub(_ text: String) -> String { redacting(token, in: text) }
}
