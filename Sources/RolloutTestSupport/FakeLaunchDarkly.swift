import Foundation
import RolloutCore

/// A LaunchDarkly-shaped REST API v2 on 127.0.0.1 (an `HTTPTestServer`): the flag endpoints rolloutctl
/// calls, holding each flag in LaunchDarkly's REST representation (`key`, `_version`, `variations`
/// with `_id`s, `environments.<key>` with `on`, `fallthrough`, `offVariation`, `rules`, `targets`,
/// `contextTargets`, `salt`, `version`), so that the flag as held here can be handed to LaunchDarkly's
/// own SDK (scripts/python-evaluators `launchdarkly`):
///
/// - `GET   /api/v2/flags/{project}/{key}` → the flag (`?env=E`, repeatable, keeps those environments)
/// - `PATCH /api/v2/flags/{project}/{key}` with `Content-Type: application/json;
///   domain-model=launchdarkly.semanticpatch` and `{"environmentKey", "comment", "instructions"}`,
///   applied as LaunchDarkly documents semantic patches: all instructions or none; `turnFlagOn`,
///   `turnFlagOff`, `updateOffVariation` (`variationId`) and `updateFallthroughVariationOrRollout`
///   (`variationId`, or `rolloutWeights` {variationId: weight} summing to 100,000 with optional
///   `rolloutBucketBy`/`rolloutContextKind`); any other kind, an unknown variation id, weights that do
///   not sum to 100,000 or a missing `environmentKey` → 400 and nothing changes. Without the
///   semantic-patch media type the body is read as a JSON Patch, which an object is not → 400. Each
///   applied patch bumps the flag's `_version` and the environment's `version` and is recorded.
///
/// Calls need `Authorization: <token>` exactly (LaunchDarkly's form: a `Bearer` prefix is refused
/// here, so a client that adds one is caught). Faults are queued like `FakeUnleash`'s; `rateLimit(for:)`
/// answers 429 with `X-Ratelimit-Reset` (epoch milliseconds) until the window ends.
public final class FakeLaunchDarkly: Sendable {
    public struct WeightedVariation: Sendable, Equatable {
        public var variation: Int
        public var weight: Int

        public init(variation: Int, weight: Int) {
            self.variation = variation
            self.weight = weight
        }
    }

    /// What a fallthrough or a rule serves.
    public enum Serve: Sendable, Equatable {
        case variation(Int)
        case rollout([WeightedVariation], bucketBy: String?, contextKind: String?)
    }

    public struct Rule: Sendable, Equatable {
        public var id: String
        public var description: String?
        /// The clauses as JSON text.
        public var clauses: String
        public var serve: Serve

        public init(id: String = UUID().uuidString.lowercased(), description: String?, clauses: String, serve: Serve) {
            self.id = id
            self.description = description
            self.clauses = clauses
            self.serve = serve
        }
    }

    public struct Target: Sendable, Equatable {
        public var values: [String]
        public var variation: Int
        public var contextKind: String

        public init(values: [String], variation: Int, contextKind: String = "user") {
            self.values = values
            self.variation = variation
            self.contextKind = contextKind
        }
    }

    public struct Environment: Sendable, Equatable {
        public var on: Bool
        public var offVariation: Int?
        public var defaultRule: Serve
        public var rules: [Rule]
        public var targets: [Target]
        public var contextTargets: [Target]
        public var salt: String
        public var version: Int

        /// A new boolean flag's environment as LaunchDarkly creates it: off, serving `true` when on,
        /// `false` when off (variation 0 is `true`, 1 is `false`).
        public init(
            on: Bool = false, offVariation: Int? = 1, defaultRule: Serve = .variation(0), rules: [Rule] = [],
            targets: [Target] = [], contextTargets: [Target] = [],
            salt: String = UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased(), version: Int = 1
        ) {
            self.on = on
            self.offVariation = offVariation
            self.defaultRule = defaultRule
            self.rules = rules
            self.targets = targets
            self.contextTargets = contextTargets
            self.salt = salt
            self.version = version
        }
    }

    public struct Variation: Sendable, Equatable {
        public var id: String
        /// The value as JSON text (`true`, `"blue"`).
        public var value: String

        public init(id: String = UUID().uuidString.lowercased(), value: String) {
            self.id = id
            self.value = value
        }
    }

    public struct Flag: Sendable, Equatable {
        public var key: String
        public var kind: String
        public var variations: [Variation]
        public var version: Int
        public var environments: [String: Environment]

        /// A boolean flag (variation 0 `true`, 1 `false`) with these environments, as created.
        public init(key: String, environments: [String]) {
            self.key = key
            kind = "boolean"
            variations = [Variation(value: "true"), Variation(value: "false")]
            version = 1
            self.environments = Dictionary(
                uniqueKeysWithValues: environments.map { ($0, Environment(salt: Self.salt(key, $0))) })
        }

        /// A salt as LaunchDarkly makes one (32 hex digits), fixed per flag and environment so that a
        /// test's buckets are the same on every run.
        public static func salt(_ key: String, _ environment: String) -> String {
            func fnv(_ text: String, _ basis: UInt64) -> UInt64 {
                text.utf8.reduce(basis) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
            }
            let text = key + "." + environment
            return [fnv(text, 0xcbf2_9ce4_8422_2325), fnv(text, 0x8422_2325_cbf2_9ce4)]
                .map { String($0, radix: 16) }.map { String(repeating: "0", count: 16 - $0.count) + $0 }.joined()
        }

        public init(
            key: String, kind: String, variations: [Variation], version: Int, environments: [String: Environment]
        ) {
            self.key = key
            self.kind = kind
            self.variations = variations
            self.version = version
            self.environments = environments
        }
    }

    /// One applied semantic patch: the flag, the environment, the comment and the body as sent.
    public struct Patch: Sendable, Equatable {
        public var flag: String
        public var environment: String
        public var comment: String?
        public var body: String
        /// The instructions' kinds, in order.
        public var kinds: [String]
    }

    private struct State: Sendable {
        var project: String
        var flags: [String: Flag] = [:]
        var faults: [(status: Int, method: String?)] = []
        var patches: [Patch] = []
        var rateLimitedUntil: Date?
        var rateLimited = 0
        /// Runs once, right after the n-th GET is answered (a change made between read and write).
        var afterRead: (remaining: Int, change: @Sendable (inout [String: Flag]) -> Void)?
        /// Answers to GET, by flag key, replaced by this body (an answer about another flag).
        var answerOverride: [String: String] = [:]
    }

    public let server: HTTPTestServer
    public let token: String
    private let state: LockedBox<State>

    public init(project: String = "default", token: String = "api-ld-access-token") {
        self.token = token
        let state = LockedBox(State(project: project))
        self.state = state
        server = HTTPTestServer { request in Self.handle(request, state: state, token: token) }
    }

    public func start() async throws { try await server.start() }
    public func stop() async { await server.stop() }

    /// The `--flags` value: `launchdarkly+http://127.0.0.1:<port>?project=<project>`.
    public var flagsURL: String { "launchdarkly+" + server.baseURL + "?project=" + state.withLock { $0.project } }

    public func setFlag(_ flag: Flag) { state.withLock { $0.flags[flag.key] = flag } }
    public func flag(_ key: String) -> Flag? { state.withLock { $0.flags[key] } }

    /// The flag as `GET /api/v2/flags/{project}/{key}` answers it (what LaunchDarkly's SDK is handed).
    public func flagJSON(_ key: String) -> String? {
        state.withLock { s in s.flags[key].map { Self.render($0, environments: nil) } }
    }

    /// Edits the state directly (a person in LaunchDarkly's UI); the flag's `_version` is bumped.
    public func edit(_ key: String, _ change: (inout Flag) -> Void) {
        state.withLock { s in
            guard var flag = s.flags[key] else { return }
            change(&flag)
            flag.version += 1
            s.flags[key] = flag
        }
    }

    /// Edits the state right after the `after`-th next GET is answered.
    public func editAfterRead(_ after: Int = 1, _ change: @escaping @Sendable (inout [String: Flag]) -> Void) {
        state.withLock { $0.afterRead = (after, change) }
    }

    /// Answers `status` to the next `times` requests (of `method` only, when given).
    public func inject(status: Int, times: Int = 1, on method: String? = nil) {
        state.withLock { s in for _ in 0..<times { s.faults.append((status, method)) } }
    }

    /// Answers every request 429 with `X-Ratelimit-Reset` until `duration` from now has passed.
    /// Returns the instant the window ends.
    @discardableResult
    public func rateLimit(for duration: Duration) -> Date {
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        let until = Date().addingTimeInterval(seconds)
        state.withLock { $0.rateLimitedUntil = until }
        return until
    }

    /// How many requests were answered 429 by the rate limit.
    public var rateLimitedCount: Int { state.withLock { $0.rateLimited } }

    /// GET of `key` answers this body instead (e.g. a flag with another key).
    public func answerGet(_ key: String, with body: String) { state.withLock { $0.answerOverride[key] = body } }

    /// The semantic patches applied, in order.
    public var patches: [Patch] { state.withLock { $0.patches } }
    public var requests: [TestRequest] { server.requests }

    // MARK: Serving

    private static func handle(_ request: TestRequest, state: LockedBox<State>, token: String) -> TestResponse {
        let now = Date()
        let limit = state.withLock { s -> Date? in
            guard let until = s.rateLimitedUntil, now < until else { return nil }
            s.rateLimited += 1
            return until
        }
        if let limit {
            let reset = Int64((limit.timeIntervalSince1970 * 1000).rounded(.up))
            return .json(
                429, #"{"code":"rate_limited","message":"You've exceeded the API rate limit. Try again later."}"#,
                headers: [("X-Ratelimit-Reset", String(reset)), ("X-Ratelimit-Route-Remaining", "0")])
        }
        let fault = state.withLock { s -> Int? in
            guard let index = s.faults.firstIndex(where: { $0.method == nil || $0.method == request.method }) else {
                return nil
            }
            return s.faults.remove(at: index).status
        }
        if let fault { return .json(fault, #"{"code":"injected","message":"injected fault"}"#) }
        let parts = request.path.split(separator: "/").map { TestRequest.decode(String($0), plusIsSpace: false) }
        guard parts.count == 5, parts.starts(with: ["api", "v2", "flags"]) else {
            return .json(404, #"{"code":"not_found","message":"Unknown resource"}"#)
        }
        guard request.header("Authorization") == token else {
            return .json(401, #"{"code":"unauthorized","message":"Invalid access token"}"#)
        }
        let (project, key) = (parts[3], parts[4])
        let response = state.withLock { s -> TestResponse in
            guard project == s.project, let flag = s.flags[key] else {
                return .json(404, #"{"code":"not_found","message":"Unknown resource"}"#)
            }
            switch request.method {
            case "GET":
                if let override = s.answerOverride[key] { return .json(200, override) }
                let filter = request.query.map(Self.environmentFilter)
                return .json(200, render(flag, environments: filter?.isEmpty == false ? filter : nil))
            case "PATCH":
                guard let contentType = request.header("Content-Type"),
                    contentType.contains("domain-model=launchdarkly.semanticpatch")
                else {
                    return .json(400, #"{"code":"invalid_request","message":"Invalid JSON Patch: not an array"}"#)
                }
                switch apply(request.body, to: flag) {
                case .failure(let message):
                    return .json(
                        400,
                        JSONOutput.object([("code", .string("invalid_request")), ("message", .string(message))])
                            .render(pretty: false))
                case .success(let (updated, patch)):
                    s.flags[key] = updated
                    s.patches.append(patch)
                    return .json(200, render(updated, environments: nil))
                }
            default:
                return .json(405, #"{"code":"method_not_allowed","message":"Method not allowed"}"#)
            }
        }
        if request.method == "GET" {
            state.withLock { s in
                guard let pending = s.afterRead else { return }
                if pending.remaining <= 1 {
                    pending.change(&s.flags)
                    s.afterRead = nil
                } else {
                    s.afterRead = (pending.remaining - 1, pending.change)
                }
            }
        }
        return response
    }

    private static func environmentFilter(_ query: String) -> [String] {
        query.split(separator: "&").compactMap { pair -> String? in
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, parts[0] == "env" else { return nil }
            return TestRequest.decode(parts[1])
        }
    }

    private enum Outcome {
        case success((Flag, Patch))
        case failure(String)
    }

    /// One semantic patch, all instructions or none.
    private static func apply(_ body: [UInt8], to flag: Flag) -> Outcome {
        guard let value = try? JSONParser.parse(body), case .object(let members) = value.kind else {
            return .failure("the body is not a JSON object")
        }
        func field(_ key: String) -> JSONValue? { members.first { $0.key == key }?.value }
        guard case .array(let instructions)? = field("instructions")?.kind, !instructions.isEmpty else {
            return .failure("instructions are required")
        }
        var comment: String?
        if case .string(let text)? = field("comment")?.kind { comment = text }
        guard case .string(let environmentKey)? = field("environmentKey")?.kind else {
            return .failure("environmentKey is required for these instructions")
        }
        guard var environment = flag.environments[environmentKey] else {
            return .failure("environment \(environmentKey) not found")
        }
        var kinds: [String] = []
        for instruction in instructions {
            guard case .object(let fields) = instruction.kind,
                case .string(let kind)? = fields.first(where: { $0.key == "kind" })?.value.kind
            else {
                return .failure("an instruction without a kind")
            }
            func parameter(_ key: String) -> JSONValue? { fields.first { $0.key == key }?.value }
            kinds.append(kind)
            switch kind {
            case "turnFlagOn":
                environment.on = true
            case "turnFlagOff":
                environment.on = false
            case "updateOffVariation":
                guard case .string(let id)? = parameter("variationId")?.kind,
                    let index = flag.variations.firstIndex(where: { $0.id == id })
                else {
                    return .failure("updateOffVariation: unknown variationId")
                }
                environment.offVariation = index
            case "updateFallthroughVariationOrRollout":
                if case .string(let id)? = parameter("variationId")?.kind {
                    guard let index = flag.variations.firstIndex(where: { $0.id == id }) else {
                        return .failure("updateFallthroughVariationOrRollout: unknown variationId \(id)")
                    }
                    environment.defaultRule = .variation(index)
                    continue
                }
                guard case .object(let weights)? = parameter("rolloutWeights")?.kind else {
                    return .failure("updateFallthroughVariationOrRollout needs variationId or rolloutWeights")
                }
                var byIndex: [Int: Int] = [:]
                for weight in weights {
                    guard let index = flag.variations.firstIndex(where: { $0.id == weight.key }) else {
                        return .failure("rolloutWeights: unknown variation id \(weight.key)")
                    }
                    guard case .number(let number) = weight.value.kind, number == number.rounded(),
                        (0...100_000).contains(number)
                    else {
                        return .failure("rolloutWeights: a weight is not a whole number in [0, 100000]")
                    }
                    byIndex[index] = Int(number)
                }
                let sum = byIndex.values.reduce(0, +)
                guard sum == 100_000 else {
                    return .failure("rolloutWeights must sum to 100000, not \(sum)")
                }
                var bucketBy: String?
                if case .string(let text)? = parameter("rolloutBucketBy")?.kind { bucketBy = text }
                var contextKind: String?
                if case .string(let text)? = parameter("rolloutContextKind")?.kind { contextKind = text }
                environment.defaultRule = .rollout(
                    flag.variations.indices.map { WeightedVariation(variation: $0, weight: byIndex[$0] ?? 0) },
                    bucketBy: bucketBy, contextKind: contextKind ?? "user")
            default:
                return .failure("unknown instruction kind \(kind)")
            }
        }
        var updated = flag
        environment.version += 1
        updated.environments[environmentKey] = environment
        updated.version += 1
        let patch = Patch(
            flag: flag.key, environment: environmentKey, comment: comment,
            body: String(decoding: body, as: UTF8.self), kinds: kinds)
        return .success((updated, patch))
    }

    // MARK: JSON

    private static func render(_ flag: Flag, environments filter: [String]?) -> String {
        let keys = flag.environments.keys.sorted().filter { filter?.contains($0) ?? true }
        let variations = flag.variations.map { variation -> JSONOutput in
            .object([
                ("_id", .string(variation.id)),
                ("value", (try? JSONParser.parse(Array(variation.value.utf8))).map(JSONOutput.init) ?? .null),
            ])
        }
        let environments = keys.map { key -> (String, JSONOutput) in
            let environment = flag.environments[key]!
            return (
                key,
                .object([
                    ("on", .bool(environment.on)), ("archived", .bool(false)), ("salt", .string(environment.salt)),
                    ("sel", .string(environment.salt.prefix(8).description)),
                    ("lastModified", .int(1_764_547_200_000)), ("version", .int(environment.version)),
                    ("targets", .array(environment.targets.map(targetJSON))),
                    ("contextTargets", .array(environment.contextTargets.map(targetJSON))),
                    ("rules", .array(environment.rules.map(ruleJSON))),
                    ("fallthrough", serveJSON(environment.defaultRule)),
                    ("offVariation", environment.offVariation.map { .int($0) } ?? .null),
                    ("prerequisites", .array([])),
                    ("_site", .object([("href", .string("/default/\(key)/features/\(flag.key)"))])),
                    ("_environmentName", .string(key.capitalized)),
                    ("trackEvents", .bool(false)), ("trackEventsFallthrough", .bool(false)),
                ])
            )
        }
        return JSONOutput.object([
            ("name", .string(flag.key)), ("kind", .string(flag.kind)), ("key", .string(flag.key)),
            ("_version", .int(flag.version)), ("creationDate", .int(1_764_547_200_000)),
            ("variations", .array(variations)), ("temporary", .bool(true)), ("tags", .array([])),
            (
                "_links",
                .object([("self", .object([("href", .string("/api/v2/flags/default/\(flag.key)"))]))])
            ),
            ("archived", .bool(false)), ("deprecated", .bool(false)),
            ("defaults", .object([("onVariation", .int(0)), ("offVariation", .int(1))])),
            ("environments", .object(environments)),
        ]).render(pretty: false)
    }

    private static func serveJSON(_ serve: Serve) -> JSONOutput {
        switch serve {
        case .variation(let index):
            return .object([("variation", .int(index))])
        case .rollout(let weights, let bucketBy, let contextKind):
            var rollout: [(String, JSONOutput)] = [
                (
                    "variations",
                    .array(
                        weights.map {
                            .object([("variation", .int($0.variation)), ("weight", .int($0.weight))])
                        })
                )
            ]
            if let bucketBy { rollout.append(("bucketBy", .string(bucketBy))) }
            if let contextKind { rollout.append(("contextKind", .string(contextKind))) }
            return .object([("rollout", .object(rollout))])
        }
    }

    private static func ruleJSON(_ rule: Rule) -> JSONOutput {
        var fields: [(String, JSONOutput)] = [("_id", .string(rule.id))]
        if case .object(let serve) = serveJSON(rule.serve) { fields += serve }
        fields.append(
            ("clauses", (try? JSONParser.parse(Array(rule.clauses.utf8))).map(JSONOutput.init) ?? .array([])))
        fields.append(("trackEvents", .bool(false)))
        if let description = rule.description { fields.append(("description", .string(description))) }
        return .object(fields)
    }

    private static func targetJSON(_ target: Target) -> JSONOutput {
        .object([
            ("values", .array(target.values.map { .string($0) })), ("variation", .int(target.variation)),
            ("contextKind", .string(target.contextKind)),
        ])
    }
}
