import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import RolloutCore

/// The flag store behind `--flags unleash+https://HOST/api?project=PROJECT` (SPEC §7.1): Unleash's
/// admin API, as its OpenAPI document describes it. Environments are Unleash environments.
///
/// - read: `GET {api}/admin/projects/{project}/features/{flag}` (the feature with its environments
///   and strategies). An environment is off → disabled; on with rolloutctl's strategy → its
///   `rollout`; on with no enabled strategy at all → 100 (Unleash serves everyone); on with only
///   other strategies → 0, with a warning. Every other enabled strategy on an environment is a
///   warning on every plan: it widens exposure and rolloutctl does not own it.
/// - apply: rolloutctl owns one `flexibleRollout` strategy per flag environment, titled `rolloutctl`,
///   `parameters: {rollout: "<whole percent>", stickiness: "default", groupId: <flag>}`, added with
///   `POST …/environments/{env}/strategies` when missing and replaced with `PUT …/strategies/{id}`;
///   the environment is switched with `POST …/environments/{env}/on` and `…/off`. Enabling sets the
///   strategy first (Unleash adds a 100% default strategy when an environment without one is turned
///   on); lowering and disabling lower exposure first. The flag is never created.
/// - Unleash has no If-Match on these endpoints: the version is a hash of the feature's
///   environments and strategies, and `apply` reads the feature again and throws
///   `.versionConflict` when it moved since the caller's read (the caller re-reads and re-decides).
/// - The token goes in `Authorization` as Unleash expects it (no `Bearer`); 401/403 are never
///   retried; 408, 429, 5xx and connection failures are retried as `RetryPolicy` says. Adding the
///   strategy is the one call that is not idempotent: before it is sent again, the feature is read
///   to see whether the lost attempt landed, so the strategy is never added twice.
public final class UnleashFlagStore: FlagStore {
    /// `https://HOST/api` (the `unleash+` prefix removed).
    public let apiURL: String
    public let project: String
    private let token: String?
    private let client: HTTPClient
    private let retry: RetryPolicy
    private let logger: Logger
    /// Idempotent calls with the retry policy.
    private let service: FlagServiceCall

    /// The title of the strategy rolloutctl owns.
    public static let strategyTitle = UnleashAnswer.strategyTitle

    typealias Strategy = UnleashAnswer.Strategy
    typealias Environment = UnleashAnswer.Environment
    typealias Feature = UnleashAnswer.Feature

    public init(
        apiURL: String, project: String, token: String?, client: HTTPClient, retry: RetryPolicy = .default,
        logger: Logger, gate: ServiceGate = ServiceGate()
    ) {
        self.apiURL = apiURL
        self.project = project
        self.token = (token?.isEmpty ?? true) ? nil : token
        self.client = client
        self.retry = retry
        self.logger = logger
        self.service = FlagServiceCall(
            service: "Unleash", token: self.token, client: client, retry: retry, logger: logger,
            gate: gate)
    }

    /// Parses `unleash+https://HOST/api?project=P` (or `unleash+http`); the project defaults to `default`.
    public static func parse(_ spec: String) -> (apiURL: String, project: String)? {
        guard spec.hasPrefix("unleash+http://") || spec.hasPrefix("unleash+https://"),
            var components = URLComponents(string: String(spec.dropFirst("unleash+".count))),
            let host = components.host, !host.isEmpty
        else { return nil }
        let project = components.queryItems?.first { $0.name == "project" }?.value ?? "default"
        guard !project.isEmpty else { return nil }
        components.query = nil
        components.fragment = nil
        guard let url = components.string else { return nil }
        return (url, project)
    }

    // MARK: FlagStore

    /// Unleash takes whole percents only: a fractional coverage is an error at the phase's coverage.
    public func planProblems(_ plan: Plan, path: String) -> [Diagnostic] {
        plan.phases.filter { $0.coverage != $0.coverage.rounded() }.map { phase in
            Diagnostic(
                path: path, line: phase.coveragePosition.line, column: phase.coveragePosition.column,
                message: "coverage \(formatNumber(phase.coverage)) of phase \(phase.name): environment "
                    + "\(phase.environment) is an Unleash environment, which takes whole percents only")
        }
    }

    public func read(flag: String) async throws -> FlagSnapshot {
        try await fetch(flag).snapshot(flag: flag)
    }

    public func apply(flag: String, patch: FlagPatch, ifMatch version: String) async throws -> FlagSnapshot {
        var feature = try await fetch(flag)
        guard feature.version == version else { throw FlagStoreError.versionConflict(flag: flag) }
        let targets = patch.environment.map { [$0] } ?? feature.environments.map(\.name)
        for name in targets {
            guard let environment = feature.environments.first(where: { $0.name == name }) else {
                throw FlagStoreError.notManaged(
                    "flag \(flag) has no environment \(name) in Unleash project "
                        + "\(project); add the environment to the project (rolloutctl never creates it)")
            }
            try await apply(flag: flag, environment: environment, patch: patch)
        }
        feature = try await fetch(flag)
        let updated = try feature.snapshot(flag: flag)
        logger.info(
            "flag updated",
            metadata: [
                "flag": "\(flag)", "environment": "\(patch.environment ?? "*")", "enabled": "\(patch.enabled)",
                "coverage": "\(patch.coverage.map(formatNumber) ?? "-")", "service": "unleash",
            ])
        return updated
    }

    private func apply(flag: String, environment: Environment, patch: FlagPatch) async throws {
        let ours = try environment.ours(flag: flag)
        guard patch.enabled else {
            if environment.enabled { try await toggle(flag: flag, environment: environment.name, on: false) }
            return
        }
        let coverage = patch.coverage ?? ours?.rollout ?? 100
        guard coverage == coverage.rounded(), (0...100).contains(coverage) else {
            throw FlagStoreError.notManaged(
                "coverage \(formatNumber(coverage)) for \(flag)[\(environment.name)]: "
                    + "Unleash takes whole percents only")
        }
        let rollout = Int(coverage)
        if let ours {
            if !ours.isExactly(rollout: rollout, flag: flag) {
                try await replaceStrategy(ours.id, flag: flag, environment: environment.name, rollout: rollout)
            }
        } else {
            try await addStrategy(flag: flag, environment: environment.name, rollout: rollout)
        }
        if !environment.enabled { try await toggle(flag: flag, environment: environment.name, on: true) }
    }

    // MARK: Calls

    private var featurePath: String { "/admin/projects/\(HTTPTransport.percentEncode(project))/features/" }

    private func featureURL(_ flag: String) -> String {
        HTTPTransport.join(apiURL, featurePath + HTTPTransport.percentEncode(flag))
    }

    private func environmentURL(_ flag: String, _ environment: String) -> String {
        featureURL(flag) + "/environments/" + HTTPTransport.percentEncode(environment)
    }

    private func fetch(_ flag: String) async throws -> Feature {
        let answer = try await service.send(request(featureURL(flag), "GET"), flag: flag, operation: "GET")
        guard answer.status == 200 else { throw FlagStoreError.failed(answer, flag: flag, conflict: nil, scrub: scrub) }
        let feature: Feature
        do {
            feature = try Feature(body: Array(answer.body.readableBytesView))
        } catch {
            let body = HTTPTransport.excerpt(answer.bodyString, limit: 120)
            throw FlagStoreError.invalidResponse(scrub("flag \(flag): \(error.detail); body: \(body)"))
        }
        // Checked here, so that no decision (apply's version check included) is made on another feature.
        try feature.check(about: flag, scrub: scrub)
        return feature
    }

    private func toggle(flag: String, environment: String, on: Bool) async throws {
        let url = environmentURL(flag, environment) + (on ? "/on" : "/off")
        let answer = try await service.send(request(url, "POST"), flag: flag, operation: "POST \(on ? "on" : "off")")
        guard (200...299).contains(answer.status) else {
            throw FlagStoreError.failed(answer, flag: flag, conflict: nil, scrub: scrub)
        }
    }

    private func replaceStrategy(_ id: String, flag: String, environment: String, rollout: Int) async throws {
        let url = environmentURL(flag, environment) + "/strategies/" + HTTPTransport.percentEncode(id)
        let answer = try await service.send(
            request(url, "PUT", body: Self.strategyBody(flag: flag, rollout: rollout)),
            flag: flag, operation: "PUT strategy")
        guard (200...299).contains(answer.status) else {
            throw FlagStoreError.failed(answer, flag: flag, conflict: nil, scrub: scrub)
        }
    }

    /// The one call that is not idempotent: an attempt whose answer was lost is checked by reading
    /// the feature before the next one, so the strategy is never added twice.
    private func addStrategy(flag: String, environment: String, rollout: Int) async throws {
        let url = environmentURL(flag, environment) + "/strategies"
        let request = request(url, "POST", body: Self.strategyBody(flag: flag, rollout: rollout))
        let client = self.client
        let logger = self.logger
        let answer: HTTPAnswer?
        do {
            answer = try await retry.run { attempt, timeout -> AttemptOutcome<HTTPAnswer?> in
                if attempt > 1,
                    let landed = try await self.fetch(flag).environments.first(where: { $0.name == environment }),
                    try landed.ours(flag: flag) != nil
                {
                    return .success(nil)
                }
                do {
                    let answer = try await HTTPTransport.send(request, client: client, timeout: timeout, logger: logger)
                    if answer.isTransient {
                        return .retryable(reason: "HTTP \(answer.status)", retryAfter: HTTPTransport.retryAfter(answer))
                    }
                    return .success(answer)
                } catch let failure as TransportFailure where failure.isRetryable {
                    return .retryable(reason: failure.reason)
                } catch let failure as TransportFailure {
                    throw FlagStoreError.unavailable(self.scrub(failure.reason))
                }
            }
        } catch let exhausted as RetryExhausted {
            throw FlagStoreError.unavailable(scrub("POST strategy \(flag): \(exhausted.description)"))
        }
        if let answer, !(200...299).contains(answer.status) {
            throw FlagStoreError.failed(answer, flag: flag, conflict: nil, scrub: scrub)
        }
    }

    private func request(_ url: String, _ method: String, body: String? = nil) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url)
        request.method = .init(rawValue: method)
        request.headers.add(name: "Accept", value: "application/json")
        if let token { request.headers.add(name: "Authorization", value: token) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        return request
    }

    private func scrub(_ text: String) -> String { redacting(token, in: text) }

    /// The strategy rolloutctl writes (create and replace take the same body).
    static func strategyBody(flag: String, rollout: Int) -> String {
        JSONOutput.object([
            ("name", .string("flexibleRollout")),
            ("title", .string(strategyTitle)),
            ("disabled", .bool(false)),
            ("constraints", .array([])),
            (
                "parameters",
                .object([
                    ("rollout", .string(String(rollout))),
                    ("stickiness", .string("default")),
                    ("groupId", .string(flag)),
                ])
            ),
        ]).render(pretty: false)
    }
}
