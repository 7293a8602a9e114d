import Foundation
import RolloutCore

/// An in-memory flag service that speaks the flag API of SPEC §7 over real HTTP on
/// 127.0.0.1 (an `HTTPTestServer`), for tests of flag stores and of the reconciler.
///
/// - `GET /api/v1/feature-flags/{key}` → 200 `{"key","version","environments"}` with
///   `ETag: "<version>"`; 404 for an unknown flag.
/// - `PATCH /api/v1/feature-flags/{key}` needs `Authorization: Bearer <token>` (401 when it is
///   missing or wrong; no check when `token` is nil) and `If-Match: "<version>"` (428 when
///   missing, 412 when the version moved; `*` matches any). The body
///   `{"environment"?, "enabled", "coverage"?}` applies to one environment (created when
///   new), or to every environment when `environment` is absent. Each PATCH adds 1 to the
///   version and answers 200 with the updated flag. A bad body is 400.
/// - Faults: `inject(.status(500), times: 2)` makes the next two requests answer 500 before
///   the flag API is reached, `.delay(…)` answers late, `.drop` closes the connection.
///   A fault may be limited to one method (`on: "PATCH"`).
///
/// Every request is recorded (`requests`), and every PATCH that changed a flag is in
/// `appliedPatches`.
public final class FakeFlagService: Sendable {
    /// What an injected fault does to one request.
    public enum Fault: Sendable, Equatable {
        /// Answers this status with a small JSON error body (and `Retry-After` if given).
        case status(Int, retryAfterSeconds: Int? = nil)
        /// Waits, then serves the request normally.
        case delay(Duration)
        /// Closes the connection without answering.
        case drop

        /// 401, as for a bad token.
        public static let unauthorized = Fault.status(401)
        /// 500.
        public static let serverError = Fault.status(500)
        /// 503.
        public static let unavailable = Fault.status(503)
    }

    /// One flag as the fake service holds it.
    public struct Flag: Sendable, Equatable {
        public var version: Int
        public var environments: [String: FlagEnvironmentState]

        public init(version: Int = 1, environments: [String: FlagEnvironmentState]) {
            self.version = version
            self.environments = environments
        }
    }

    /// A PATCH the service applied.
    public struct AppliedPatch: Sendable, Equatable {
        public var flag: String
        public var environment: String?
        public var enabled: Bool
        public var coverage: Double?
        /// The flag's version after the PATCH.
        public var version: Int

        public init(flag: String, environment: String?, enabled: Bool, coverage: Double?, version: Int) {
            self.flag = flag
            self.environment = environment
            self.enabled = enabled
            self.coverage = coverage
            self.version = version
        }
    }

    private struct PendingFault: Sendable {
        var fault: Fault
        var method: String?
    }

    private struct State: Sendable {
        var flags: [String: Flag]
        /// GETs of the key answer with the flag of the value (a misrouted or mis-cached answer).
        var misrouted: [String: String] = [:]
        /// While set, every request waits (unanswered) until `release()`; counts the waiting ones.
        var held: Int?
        var faults: [PendingFault] = []
        var applied: [AppliedPatch] = []
        /// A delay before every answer (a slow service), on top of any injected fault.
        var everyCall: Duration?
    }

    /// The HTTP server underneath (requests, port, handler).
    public let server: HTTPTestServer
    /// The token PATCH requests must carry; nil: no check.
    public let token: String?
    /// Whether GET requests need the token too (default false, as the seed service).
    public let tokenRequiredForReads: Bool
    private let state: LockedBox<State>

    public init(token: String? = "test-token", tokenRequiredForReads: Bool = false, flags: [String: Flag] = [:]) {
        self.token = token
        self.tokenRequiredForReads = tokenRequiredForReads
        let state = LockedBox(State(flags: flags))
        self.state = state
        self.server = HTTPTestServer { request in
            if state.withLock({ $0.held != nil }) {
                state.withLock { $0.held! += 1 }
                while state.withLock({ $0.held != nil }) { try? await Task.sleep(for: .milliseconds(5)) }
            }
            return Self.handle(request, state: state, token: token, tokenRequiredForReads: tokenRequiredForReads)
        }
    }

    // MARK: Lifecycle

    public func start() async throws { try await server.start() }
    public func stop() async { await server.stop() }

    /// `http://127.0.0.1:<port>`, the value for `--flags`.
    public var baseURL: String { server.baseURL }
    public var port: Int { server.port }

    // MARK: Flags

    /// Creates or replaces a flag.
    public func setFlag(_ key: String, version: Int = 1, environments: [String: FlagEnvironmentState]) {
        state.withLock { $0.flags[key] = Flag(version: version, environments: environments) }
    }

    /// Removes a flag (later requests get 404).
    public func removeFlag(_ key: String) {
        state.withLock { _ = $0.flags.removeValue(forKey: key) }
    }

    /// The flag as the service holds it now.
    public func flag(_ key: String) -> Flag? {
        state.withLock { $0.flags[key] }
    }

    /// Every flag.
    public var flags: [String: Flag] { state.withLock { $0.flags } }

    /// Changes a flag behind the client's back (as another writer would): sets one
    /// environment (when given) and adds 1 to the version, so an `If-Match` of the old version gets 412.
    public func changeConcurrently(_ key: String, environment: String? = nil, to newState: FlagEnvironmentState? = nil)
    {
        state.withLock { s in
            guard var flag = s.flags[key] else { return }
            if let environment, let newState { flag.environments[environment] = newState }
            flag.version += 1
            s.flags[key] = flag
        }
    }

    // MARK: Faults

    /// From now on every request waits, unanswered, until `release()`: a flag service that hangs.
    public func hold() { state.withLock { $0.held = $0.held ?? 0 } }

    /// Answers every request held since `hold()`, and the later ones at once.
    public func release() { state.withLock { $0.held = nil } }

    /// How many requests arrived since `hold()` (0 when not holding).
    public var heldRequests: Int { state.withLock { $0.held ?? 0 } }

    /// From now on, a GET of `asked` answers with the flag `answered` (its own key in the body),
    /// as a misrouting proxy or a wrongly keyed cache would.
    public func answer(_ asked: String, with answered: String) {
        state.withLock { $0.misrouted[asked] = answered }
    }

    /// Queues `fault` for the next `times` requests (of `method` only, when given).
    public func inject(_ fault: Fault, times: Int = 1, on method: String? = nil) {
        state.withLock { s in
            for _ in 0..<max(0, times) {
                s.faults.append(PendingFault(fault: fault, method: method?.uppercased()))
            }
        }
    }

    /// Forgets every queued fault.
    public func clearFaults() { state.withLock { $0.faults.removeAll() } }

    /// Answers every request `delay` late (nil: at once), as a slow service does.
    public func delayEveryCall(_ delay: Duration?) { state.withLock { $0.everyCall = delay } }

    /// How many faults are still queued.
    public var pendingFaults: Int { state.withLock { $0.faults.count } }

    // MARK: What happened

    /// Every request received, faulted ones included.
    public var requests: [TestRequest] { server.requests }

    /// The PATCH requests received, faulted and refused ones included.
    public var patchRequests: [TestRequest] { server.requests.filter { $0.method == "PATCH" } }

    /// The PATCHes that changed a flag, in order.
    public var appliedPatches: [AppliedPatch] { state.withLock { $0.applied } }

    // MARK: The API

    private static let prefix = "/api/v1/feature-flags/"

    private static func handle(
        _ request: TestRequest, state: LockedBox<State>, token: String?, tokenRequiredForReads: Bool
    ) -> TestResponse {
        // A queued fault comes first.
        let fault = state.withLock { s -> Fault? in
            guard let index = s.faults.firstIndex(where: { $0.method == nil || $0.method == request.method }) else {
                return nil
            }
            return s.faults.remove(at: index).fault
        }
        var delay = state.withLock { $0.everyCall }
        switch fault {
        case .status(let status, let retryAfter)?:
            var headers: [(name: String, value: String)] = []
            if let retryAfter { headers.append(("Retry-After", String(retryAfter))) }
            return .json(status, #"{"error":"injected fault","status":\#(status)}"#, headers: headers)
        case .drop?:
            return .drop
        case .delay(let d)?:
            delay = d
        case nil:
            break
        }
        var response = route(request, state: state, token: token, tokenRequiredForReads: tokenRequiredForReads)
        if let delay { response.delay = delay }
        return response
    }

    private static func route(
        _ request: TestRequest, state: LockedBox<State>, token: String?, tokenRequiredForReads: Bool
    ) -> TestResponse {
        guard request.path.hasPrefix(prefix), request.path.count > prefix.count,
            !request.path.dropFirst(prefix.count).contains("/")
        else {
            return error(404, "no such route: \(request.path)")
        }
        let key = request.lastPathSegment
        switch request.method {
        case "GET":
            if tokenRequiredForReads, let failure = checkToken(request, token: token) { return failure }
            let answered = state.withLock { $0.misrouted[key] } ?? key
            guard let flag = state.withLock({ $0.flags[answered] }) else {
                return error(404, "flag \(answered) not found")
            }
            return flagResponse(answered, flag)
        case "PATCH":
            if let failure = checkToken(request, token: token) { return failure }
            return patch(key, request, state: state)
        default:
            return TestResponse(
                status: 405, headers: [("Allow", "GET, PATCH"), ("Content-Type", "application/json")],
                body: #"{"error":"method not allowed"}"#)
        }
    }

    private static func checkToken(_ request: TestRequest, token: String?) -> TestResponse? {
        guard let token else { return nil }
        guard request.header("Authorization") == "Bearer \(token)" else {
            return TestResponse(
                status: 401, headers: [("WWW-Authenticate", "Bearer"), ("Content-Type", "application/json")],
                body: #"{"error":"unauthorized"}"#)
        }
        return nil
    }

    private static func patch(_ key: String, _ request: TestRequest, state: LockedBox<State>) -> TestResponse {
        guard let ifMatch = request.header("If-Match") else {
            return error(428, "If-Match is required")
        }
        // Parse the body before taking the lock.
        guard case .object(let members)? = (try? JSONParser.parse([UInt8](request.body)))?.kind else {
            return error(400, "the body must be a JSON object")
        }
        var object: [String: JSONValue.Kind] = [:]
        for member in members { object[member.key] = member.value.kind }
        let allowed: Set<String> = ["environment", "enabled", "coverage"]
        if let unknown = object.keys.sorted().first(where: { !allowed.contains($0) }) {
            return error(400, "unknown field \(unknown)")
        }
        guard case .bool(let enabled)? = object["enabled"] else {
            return error(400, "enabled must be true or false")
        }
        var environment: String?
        switch object["environment"] {
        case nil, .null?: break
        case .string(let text)? where !text.isEmpty: environment = text
        default: return error(400, "environment must be a string")
        }
        var coverage: Double?
        switch object["coverage"] {
        case nil, .null?: break
        case .number(let number)? where number.isFinite && number >= 0 && number <= 100: coverage = number
        default: return error(400, "coverage must be a number in [0, 100]")
        }
        enum Outcome {
            case notFound, conflict
            case applied(Flag)
        }
        let outcome = state.withLock { s -> Outcome in
            guard var flag = s.flags[key] else { return .notFound }
            guard matches(ifMatch, version: flag.version) else { return .conflict }
            let targets = environment.map { [$0] } ?? Array(flag.environments.keys)
            for name in targets {
                var env = flag.environments[name] ?? .disabled
                env.enabled = enabled
                if let coverage { env.coverage = coverage }
                flag.environments[name] = env
            }
            flag.version += 1
            s.flags[key] = flag
            s.applied.append(
                AppliedPatch(
                    flag: key, environment: environment, enabled: enabled,
                    coverage: coverage, version: flag.version))
            return .applied(flag)
        }
        switch outcome {
        case .notFound: return error(404, "flag \(key) not found")
        case .conflict: return error(412, "version mismatch: re-read the flag")
        case .applied(let flag): return flagResponse(key, flag)
        }
    }

    /// `"7"`, `W/"7"`, `7`, `*`, or a list of them.
    private static func matches(_ ifMatch: String, version: Int) -> Bool {
        for candidate in ifMatch.split(separator: ",") {
            var tag = candidate.trimmingCharacters(in: .whitespaces)
            if tag == "*" { return true }
            if tag.hasPrefix("W/") { tag.removeFirst(2) }
            if tag.count >= 2, tag.hasPrefix("\""), tag.hasSuffix("\"") { tag = String(tag.dropFirst().dropLast()) }
            if tag == String(version) { return true }
        }
        return false
    }

    /// The flag's JSON, as the API answers it.
    public static func flagJSON(_ key: String, _ flag: Flag) -> String {
        let environments = flag.environments.sorted { $0.key < $1.key }.map { name, env -> (String, JSONOutput) in
            (name, .object([("enabled", .bool(env.enabled)), ("coverage", .number(env.coverage))]))
        }
        return JSONOutput.object([
            ("key", .string(key)), ("version", .int(flag.version)),
            ("environments", .object(environments)),
        ]).render(pretty: false)
    }

    private static func flagResponse(_ key: String, _ flag: Flag) -> TestResponse {
        .json(200, flagJSON(key, flag), headers: [("ETag", "\"\(flag.version)\"")])
    }

    private static func error(_ status: Int, _ message: String) -> TestResponse {
        .json(status, JSONOutput.object([("error", .string(message))]).render(pretty: false))
    }
}
