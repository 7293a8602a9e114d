import Foundation
import RolloutCore

/// An in-memory Unleash server on 127.0.0.1 (an `HTTPTestServer`) that implements the admin
/// endpoints rolloutctl calls, as Unleash's OpenAPI document describes them, and serves
/// `/api/client/features` from the same state, so Unleash's own SDK can evaluate what rolloutctl
/// wrote:
///
/// - `GET  /api/admin/projects/{p}/features/{f}` → the feature with `environments[].strategies`
/// - `POST /api/admin/projects/{p}/features/{f}/environments/{e}/strategies` → adds a strategy
/// - `PUT  /api/admin/projects/{p}/features/{f}/environments/{e}/strategies/{id}` → replaces it
/// - `POST /api/admin/projects/{p}/features/{f}/environments/{e}/on` and `/off`; as Unleash does,
///   turning on an environment without an enabled strategy adds a 100% `flexibleRollout` first
/// - `GET  /api/client/features` (client token `PROJECT:ENV.secret`) → `{"version": 2, "features": [...]}`
///   for the token's environment, disabled strategies left out; `POST /api/client/register` and
///   `/api/client/metrics` → 202.
///
/// Admin calls need `Authorization: <adminToken>` exactly (Unleash's form: a `Bearer` prefix is
/// refused here, so a client that adds one is caught). Faults are queued like `FakeFlagService`'s.
public final class FakeUnleash: Sendable {
    public struct Strategy: Sendable, Equatable {
        public var id: String
        public var name: String
        public var title: String?
        public var disabled: Bool
        public var parameters: [String: String]
        public var constraints: String

        public init(
            id: String = UUID().uuidString.lowercased(), name: String = "flexibleRollout", title: String?,
            disabled: Bool = false, parameters: [String: String], constraints: String = "[]"
        ) {
            self.id = id
            self.name = name
            self.title = title
            self.disabled = disabled
            self.parameters = parameters
            self.constraints = constraints
        }
    }

    public struct Environment: Sendable, Equatable {
        public var name: String
        public var enabled: Bool
        public var strategies: [Strategy]

        public init(name: String, enabled: Bool = false, strategies: [Strategy] = []) {
            self.name = name
            self.enabled = enabled
            self.strategies = strategies
        }
    }

    /// One admin write the server applied (method and path).
    public struct Write: Sendable, Equatable {
        public var method: String
        public var path: String
    }

    private struct State: Sendable {
        var project: String
        var features: [String: [Environment]] = [:]
        /// Admin GETs of the key answer with the feature of the value (a misrouted answer).
        var misrouted: [String: String] = [:]
        var faults: [(status: Int, method: String?)] = []
        var writes: [Write] = []
        /// Runs once, right after the n-th admin GET is answered (a hand edit between read and write).
        var afterRead: (remaining: Int, change: @Sendable (inout [String: [Environment]]) -> Void)?
    }

    public let server: HTTPTestServer
    public let adminToken: String
    private let state: LockedBox<State>

    public init(project: String = "default", adminToken: String = "unleash-admin-token") {
        self.adminToken = adminToken
        let state = LockedBox(State(project: project))
        self.state = state
        server = HTTPTestServer { request in Self.handle(request, state: state, adminToken: adminToken) }
    }

    public func start() async throws { try await server.start() }
    public func stop() async { await server.stop() }

    /// `http://127.0.0.1:<port>/api`, what the SDK takes as its URL.
    public var apiURL: String { server.baseURL + "/api" }
    /// The `--flags` value: `unleash+http://127.0.0.1:<port>/api?project=<project>`.
    public var flagsURL: String { "unleash+" + apiURL + "?project=" + state.withLock { $0.project } }
    /// A client token for one environment (`PROJECT:ENV.secret`, Unleash's format).
    public func clientToken(environment: String) -> String {
        state.withLock { "\($0.project):\(environment).client-secret" }
    }

    /// Creates a feature with these environments (all off, no strategies, unless given).
    public func setFeature(_ name: String, environments: [Environment]) {
        state.withLock { $0.features[name] = environments }
    }

    public func feature(_ name: String) -> [Environment]? { state.withLock { $0.features[name] } }

    /// Edits the state directly (a person in Unleash's UI).
    public func edit(_ change: (inout [String: [Environment]]) -> Void) { state.withLock { change(&$0.features) } }

    /// Edits the state right after the `after`-th next admin GET is answered.
    public func editAfterRead(_ after: Int = 1, _ change: @escaping @Sendable (inout [String: [Environment]]) -> Void) {
        state.withLock { $0.afterRead = (after, change) }
    }

    /// From now on, an admin GET of feature `asked` answers with the feature `answered` (its own
    /// name in the body), as a misrouting proxy would.
    public func answer(_ asked: String, with answered: String) {
        state.withLock { $0.misrouted[asked] = answered }
    }

    /// Answers `status` to the next `times` requests (of `method` only, when given).
    public func inject(status: Int, times: Int = 1, on method: String? = nil) {
        state.withLock { s in for _ in 0..<times { s.faults.append((status, method)) } }
    }

    /// Forgets every queued fault.
    public func clearFaults() { state.withLock { $0.faults.removeAll() } }

    /// The admin writes applied, in order.
    public var writes: [Write] { state.withLock { $0.writes } }
    public var requests: [TestRequest] { server.requests }

    // MARK: Serving

    private static func handle(_ request: TestRequest, state: LockedBox<State>, adminToken: String) -> TestResponse {
        let fault = state.withLock { s -> Int? in
            guard let index = s.faults.firstIndex(where: { $0.method == nil || $0.method == request.method }) else {
                return nil
            }
            return s.faults.remove(at: index).status
        }
        if let fault { return .json(fault, #"{"message":"injected fault"}"#) }
        let parts = request.path.split(separator: "/").map { TestRequest.decode(String($0), plusIsSpace: false) }
        if parts.starts(with: ["api", "client"]) {
            return client(request, parts: Array(parts.dropFirst(2)), state: state)
        }
        guard parts.count >= 6, parts.starts(with: ["api", "admin", "projects"]), parts[4] == "features" else {
            return .json(404, #"{"message":"no such route"}"#)
        }
        guard request.header("Authorization") == adminToken else {
            return .json(401, #"{"message":"You must log in to use Unleash."}"#)
        }
        let project = parts[3]
        let feature = parts[5]
        let rest = Array(parts.dropFirst(6))
        let response = state.withLock { s -> TestResponse in
            guard project == s.project, var environments = s.features[feature] else {
                return .json(404, #"{"message":"Could not find feature"}"#)
            }
            if request.method == "GET", rest.isEmpty {
                if let other = s.misrouted[feature], let answered = s.features[other] {
                    return .json(200, featureJSON(other, project: project, answered))
                }
                return .json(200, featureJSON(feature, project: project, environments))
            }
            guard rest.count >= 2, rest[0] == "environments",
                let index = environments.firstIndex(where: { $0.name == rest[1] })
            else {
                return .json(404, #"{"message":"Could not find environment"}"#)
            }
            let action = Array(rest.dropFirst(2))
            var answer = TestResponse.json(404, #"{"message":"no such route"}"#)
            switch (request.method, action.count, action.first) {
            case ("POST", 1, "on"?):
                if !environments[index].strategies.contains(where: { !$0.disabled }) {
                    environments[index].strategies.append(
                        Strategy(
                            title: nil, parameters: ["rollout": "100", "stickiness": "default", "groupId": feature]))
                }
                environments[index].enabled = true
                answer = .json(200, featureJSON(feature, project: project, environments))
            case ("POST", 1, "off"?):
                environments[index].enabled = false
                answer = .json(200, featureJSON(feature, project: project, environments))
            case ("POST", 1, "strategies"?):
                guard let strategy = decodeStrategy(request.body, id: UUID().uuidString.lowercased()) else {
                    return .json(400, #"{"message":"invalid strategy"}"#)
                }
                environments[index].strategies.append(strategy)
                answer = .json(200, strategyJSON(strategy).render(pretty: false))
            case ("PUT", 2, "strategies"?):
                guard let position = environments[index].strategies.firstIndex(where: { $0.id == action[1] }) else {
                    return .json(404, #"{"message":"Could not find strategy"}"#)
                }
                guard let strategy = decodeStrategy(request.body, id: action[1]) else {
                    return .json(400, #"{"message":"invalid strategy"}"#)
                }
                environments[index].strategies[position] = strategy
                answer = .json(200, strategyJSON(strategy).render(pretty: false))
            default:
                return answer
            }
            s.features[feature] = environments
            s.writes.append(Write(method: request.method, path: request.path))
            return answer
        }
        if request.method == "GET" {
            state.withLock { s in
                guard let pending = s.afterRead else { return }
                if pending.remaining <= 1 {
                    pending.change(&s.features)
                    s.afterRead = nil
                } else {
                    s.afterRead = (pending.remaining - 1, pending.change)
                }
            }
        }
        return response
    }

    private static func client(_ request: TestRequest, parts: [String], state: LockedBox<State>) -> TestResponse {
        guard let token = request.header("Authorization"), let colon = token.firstIndex(of: ":"),
            let dot = token[colon...].firstIndex(of: ".")
        else {
            return .json(401, #"{"message":"client token required"}"#)
        }
        let environment = String(token[token.index(after: colon)..<dot])
        switch (request.method, parts) {
        case ("GET", ["features"]):
            let features = state.withLock { $0.features }
            let items = features.keys.sorted().compactMap { name -> JSONOutput? in
                guard let env = features[name]?.first(where: { $0.name == environment }) else { return nil }
                let strategies = env.strategies.filter { !$0.disabled }.map { strategy -> JSONOutput in
                    .object([
                        ("name", .string(strategy.name)), ("constraints", constraintsJSON(strategy)),
                        ("parameters", parameters(strategy.parameters)), ("variants", .array([])),
                    ])
                }
                return .object([
                    ("name", .string(name)), ("type", .string("release")), ("enabled", .bool(env.enabled)),
                    ("stale", .bool(false)), ("impressionData", .bool(false)),
                    ("strategies", .array(strategies)), ("variants", .array([])),
                ])
            }
            return .json(
                200,
                JSONOutput.object([
                    ("version", .int(2)), ("features", .array(items)),
                    ("query", .object([])),
                ]).render(pretty: false))
        case ("POST", ["register"]), ("POST", ["metrics"]):
            return TestResponse(status: 202)
        default:
            return .json(404, #"{"message":"no such route"}"#)
        }
    }

    // MARK: JSON

    private static func decodeStrategy(_ body: [UInt8], id: String) -> Strategy? {
        guard let value = try? JSONParser.parse(body), case .object(let members) = value.kind else { return nil }
        func field(_ key: String) -> JSONValue? { members.first { $0.key == key }?.value }
        guard case .string(let name)? = field("name")?.kind else { return nil }
        var title: String?
        if case .string(let text)? = field("title")?.kind { title = text }
        var disabled = false
        if case .bool(true)? = field("disabled")?.kind { disabled = true }
        var parameters: [String: String] = [:]
        if case .object(let items)? = field("parameters")?.kind {
            for item in items {
                guard case .string(let text) = item.value.kind else { return nil }
                parameters[item.key] = text
            }
        }
        var constraints = "[]"
        if let value = field("constraints") { constraints = String(decoding: body[value.byteRange], as: UTF8.self) }
        return Strategy(
            id: id, name: name, title: title, disabled: disabled, parameters: parameters,
            constraints: constraints)
    }

    private static func featureJSON(_ name: String, project: String, _ environments: [Environment]) -> String {
        let items = environments.enumerated().map { offset, env -> JSONOutput in
            .object([
                ("name", .string(env.name)), ("featureName", .string(name)), ("environment", .string(env.name)),
                ("type", .string("production")), ("enabled", .bool(env.enabled)), ("sortOrder", .int(offset)),
                ("strategies", .array(env.strategies.map(strategyJSON))),
                ("lastSeenAt", .string(RFC3339.format(Date()))),
            ])
        }
        return JSONOutput.object([
            ("name", .string(name)), ("project", .string(project)), ("type", .string("release")),
            ("stale", .bool(false)), ("archived", .bool(false)),
            ("environments", .array(items)),
        ]).render(pretty: false)
    }

    private static func strategyJSON(_ strategy: Strategy) -> JSONOutput {
        .object([
            ("id", .string(strategy.id)), ("name", .string(strategy.name)),
            ("title", strategy.title.map { .string($0) } ?? .null), ("disabled", .bool(strategy.disabled)),
            ("constraints", constraintsJSON(strategy)), ("parameters", parameters(strategy.parameters)),
            ("segments", .array([])), ("variants", .array([])),
        ])
    }

    /// The constraints as they were sent (kept as text; an unreadable text is no constraint).
    private static func constraintsJSON(_ strategy: Strategy) -> JSONOutput {
        (try? JSONParser.parse(Array(strategy.constraints.utf8))).map(JSONOutput.init) ?? .array([])
    }

    private static func parameters(_ values: [String: String]) -> JSONOutput {
        .object(values.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })
    }
}
