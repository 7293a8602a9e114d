import Foundation
import RolloutCore

/// LaunchDarkly's REST API v2 flag representation (`GET /api/v2/flags/{project}/{flag}`), as
/// rolloutctl reads it, and the semantic patch it sends (SPEC §7.1 LaunchDarkly).
/// Foundation-only, so that a fuzz target can feed it any bytes (Fuzz/Targets/LaunchDarklyAnswerTarget.swift).
///
/// rolloutctl owns, per environment, the flag's `on` and its fallthrough (the default rule), and
/// reads the rest: a boolean flag (one `true` and one `false` variation), the off variation the false
/// one, a fallthrough that is the false variation or a rollout of the two bucketed by `key` (what
/// rolloutctl writes). Anything else is an error for the environment, never overwritten; rules and
/// individual targets that serve `true` are warnings.
enum LaunchDarklyAnswer {
    typealias Invalid = InvalidFlagAnswer

    /// LaunchDarkly's weights are thousandths of a percent; a rollout's weights sum to this.
    static let totalWeight = 100_000

    /// A percentage rollout: `rollout.variations[{variation, weight}]` and how it buckets.
    struct Rollout: Equatable {
        var weights: [(variation: Int, weight: Int)]
        var bucketBy: String?
        var contextKind: String?
        /// `rollout` (a percentage rollout) or `experiment`; nil when left out.
        var kind: String?
        var hasSeed: Bool

        static func == (a: Rollout, b: Rollout) -> Bool {
            a.weights.map { [$0.variation, $0.weight] } == b.weights.map { [$0.variation, $0.weight] }
                && a.bucketBy == b.bucketBy && a.contextKind == b.contextKind && a.kind == b.kind
                && a.hasSeed == b.hasSeed
        }

        /// The weight on `variation`, in thousandths of a percent.
        func weight(of variation: Int) -> Int {
            weights.filter { $0.variation == variation }.reduce(0) { $0 + $1.weight }
        }
    }

    /// What a fallthrough or a rule serves.
    enum Serve: Equatable {
        case variation(Int)
        case rollout(Rollout)

        /// Whether some contexts get `variation` (a fixed one, or a rollout weight above 0).
        func serves(_ variation: Int) -> Bool {
            switch self {
            case .variation(let index): return index == variation
            case .rollout(let rollout): return rollout.weight(of: variation) > 0
            }
        }
    }

    struct Environment {
        var key: String
        var on: Bool
        var offVariation: Int?
        var defaultRule: Serve?
        /// Each rule: its description (or its position) and what it serves.
        var rules: [(label: String, serve: Serve)]
        /// Individual targets: `(contextKind, variation, key count)` of `targets` and `contextTargets`.
        var targets: [(contextKind: String, variation: Int, count: Int)]
    }

    struct Flag {
        var key: String
        /// `_version`, as sent.
        var version: String
        /// The variations' values (each as the JSON the answer holds) and ids.
        var values: [JSONValue.Kind]
        var ids: [String?]
        var environments: [Environment]

        /// The flag in an answer's body, or why the body is not one. The answer must be about `flag`.
        init(body bytes: [UInt8], flag: String) throws(Invalid) {
            let root = try FlagJSON.members(try FlagJSON.parse(bytes), "the answer")
            guard let keyValue = FlagJSON.field("key", of: root) else {
                throw Invalid(detail: "the answer names no flag (no \"key\")")
            }
            guard case .string(let key) = keyValue.kind else {
                throw Invalid("\"key\" is \(keyValue.typeName), not a string", at: keyValue.position)
            }
            guard key == flag else {
                throw Invalid("the answer is about flag \(key), not \(flag)", at: keyValue.position)
            }
            self.key = key
            guard let versionValue = FlagJSON.field("_version", of: root) else {
                throw Invalid(detail: "missing field _version")
            }
            version = try LaunchDarklyAnswer.integerText(versionValue, bytes, "_version")
            guard let variationsValue = FlagJSON.field("variations", of: root),
                case .array(let variations) = variationsValue.kind
            else {
                throw Invalid(detail: "missing array variations")
            }
            values = []
            ids = []
            for variation in variations {
                let fields = try FlagJSON.members(variation, "a variation")
                guard let value = FlagJSON.field("value", of: fields) else {
                    throw Invalid("a variation without a value", at: variation.position)
                }
                values.append(value.kind)
                var id: String?
                if case .string(let text)? = FlagJSON.field("_id", of: fields)?.kind { id = text }
                ids.append(id)
            }
            guard let environmentsValue = FlagJSON.field("environments", of: root) else {
                throw Invalid(detail: "missing field environments")
            }
            environments = []
            let count = variations.count
            for member in try FlagJSON.members(environmentsValue, "environments") {
                environments.append(
                    try LaunchDarklyAnswer.environment(member.key, member.value, bytes, variations: count))
            }
        }

        /// The index of the variation whose value is `value`, when exactly one has it.
        func index(of value: Bool) -> Int? {
            let found = values.indices.filter { values[$0] == .bool(value) }
            return found.count == 1 ? found[0] : nil
        }

        /// A boolean flag: exactly two variations, `true` and `false`.
        var isBoolean: Bool { values.count == 2 && index(of: true) != nil && index(of: false) != nil }

        /// Why rolloutctl cannot drive this flag at all, or nil.
        var flagProblem: String? {
            guard isBoolean else {
                let shown = values.prefix(4).map(LaunchDarklyAnswer.describe).joined(separator: ", ")
                return "flag \(key) in LaunchDarkly is not a boolean flag (its variations are \(shown)"
                    + (values.count > 4 ? ", …" : "") + "); rolloutctl drives boolean flags only"
            }
            return nil
        }

        /// The snapshot: per environment its state, its warnings and its errors.
        /// Throws `.notManaged` when the flag is not boolean (an error for every rollout of the flag).
        func snapshot() throws(FlagStoreError) -> FlagSnapshot {
            if let flagProblem { throw FlagStoreError.notManaged(flagProblem) }
            guard let on = index(of: true), let off = index(of: false) else {
                throw FlagStoreError.notManaged("flag \(key) in LaunchDarkly is not a boolean flag")
            }
            var states: [String: FlagEnvironmentState] = [:]
            var warnings: [FlagWarning] = []
            var errors: [FlagWarning] = []
            for environment in environments {
                let reading = environment.reading(trueIndex: on, falseIndex: off)
                states[environment.key] = reading.state
                if let error = reading.error {
                    errors.append(FlagWarning(environment: environment.key, message: error))
                }
                warnings += environment.widening(trueIndex: on).map {
                    FlagWarning(environment: environment.key, message: $0)
                }
            }
            return FlagSnapshot(key: key, version: version, environments: states, warnings: warnings, errors: errors)
        }
    }

    // MARK: Reading one environment

    static func environment(_ key: String, _ value: JSONValue, _ bytes: [UInt8], variations: Int) throws(Invalid)
        -> Environment
    {
        let fields = try FlagJSON.members(value, "environment \(key)")
        guard case .bool(let on)? = FlagJSON.field("on", of: fields)?.kind else {
            throw Invalid("environment \(key) has no boolean \"on\"", at: value.position)
        }
        var offVariation: Int?
        if let off = FlagJSON.field("offVariation", of: fields), off.kind != .null {
            offVariation = try variationIndex(off, bytes, "offVariation of \(key)", count: variations)
        }
        var defaultRule: Serve?
        if let value = FlagJSON.field("fallthrough", of: fields), value.kind != .null {
            defaultRule = try serve(value, bytes, "the fallthrough of \(key)", count: variations)
        }
        var rules: [(String, Serve)] = []
        if let list = FlagJSON.field("rules", of: fields), list.kind != .null {
            guard case .array(let items) = list.kind else {
                throw Invalid("rules of \(key) is \(list.typeName), not an array", at: list.position)
            }
            for (position, rule) in items.enumerated() {
                let ruleFields = try FlagJSON.members(rule, "a rule of \(key)")
                var label = "rule \(position + 1)"
                if case .string(let text)? = FlagJSON.field("description", of: ruleFields)?.kind, !text.isEmpty {
                    label += " (\"\(TextExcerpt.excerpt(text, limit: 60))\")"
                }
                rules.append((label, try serve(rule, bytes, "\(label) of \(key)", count: variations)))
            }
        }
        var targets: [(String, Int, Int)] = []
        for name in ["targets", "contextTargets"] {
            guard let list = FlagJSON.field(name, of: fields), list.kind != .null else { continue }
            guard case .array(let items) = list.kind else {
                throw Invalid("\(name) of \(key) is \(list.typeName), not an array", at: list.position)
            }
            for target in items {
                let targetFields = try FlagJSON.members(target, "a target of \(key)")
                guard let variation = FlagJSON.field("variation", of: targetFields) else {
                    throw Invalid("a target of \(key) without a variation", at: target.position)
                }
                let index = try variationIndex(variation, bytes, "a target's variation in \(key)", count: variations)
                var kind = "user"
                if case .string(let text)? = FlagJSON.field("contextKind", of: targetFields)?.kind { kind = text }
                var keys = 0
                if case .array(let values)? = FlagJSON.field("values", of: targetFields)?.kind { keys = values.count }
                targets.append((kind, index, keys))
            }
        }
        return Environment(
            key: key, on: on, offVariation: offVariation, defaultRule: defaultRule, rules: rules, targets: targets)
    }

    /// `{"variation": i}` or `{"rollout": {"variations": [{"variation": i, "weight": w}], "bucketBy": …}}`.
    static func serve(_ value: JSONValue, _ bytes: [UInt8], _ what: String, count: Int) throws(Invalid) -> Serve {
        let fields = try FlagJSON.members(value, what)
        if let variation = FlagJSON.field("variation", of: fields), variation.kind != .null {
            return .variation(try variationIndex(variation, bytes, "the variation of \(what)", count: count))
        }
        guard let rolloutValue = FlagJSON.field("rollout", of: fields), rolloutValue.kind != .null else {
            throw Invalid("\(what) has neither a variation nor a rollout", at: value.position)
        }
        let rollout = try FlagJSON.members(rolloutValue, "the rollout of \(what)")
        guard let list = FlagJSON.field("variations", of: rollout), case .array(let items) = list.kind else {
            throw Invalid("the rollout of \(what) has no variations array", at: rolloutValue.position)
        }
        var weights: [(Int, Int)] = []
        for item in items {
            let itemFields = try FlagJSON.members(item, "a weighted variation of \(what)")
            guard let variation = FlagJSON.field("variation", of: itemFields),
                let weight = FlagJSON.field("weight", of: itemFields)
            else {
                throw Invalid("a weighted variation of \(what) without variation or weight", at: item.position)
            }
            let index = try variationIndex(variation, bytes, "a weighted variation of \(what)", count: count)
            guard case .number(let number) = weight.kind, number == number.rounded(),
                (0...Double(totalWeight)).contains(number)
            else {
                throw Invalid(
                    "a weight of \(what) is not a whole number in [0, \(totalWeight)]", at: weight.position)
            }
            weights.append((index, Int(number)))
        }
        func text(_ name: String) throws(Invalid) -> String? {
            guard let value = FlagJSON.field(name, of: rollout), value.kind != .null else { return nil }
            guard case .string(let text) = value.kind else {
                throw Invalid("\(name) of \(what) is \(value.typeName), not a string", at: value.position)
            }
            return text
        }
        let seed = FlagJSON.field("seed", of: rollout)
        return .rollout(
            Rollout(
                weights: weights, bucketBy: try text("bucketBy"), contextKind: try text("contextKind"),
                kind: try text("kind"), hasSeed: seed != nil && seed?.kind != .null))
    }

    /// A variation index: a whole number naming one of the flag's `count` variations.
    static func variationIndex(_ value: JSONValue, _ bytes: [UInt8], _ what: String, count: Int) throws(Invalid) -> Int
    {
        guard case .number(let number) = value.kind, number == number.rounded(), number >= 0, number < Double(count)
        else {
            throw Invalid("\(what) is not the index of one of the flag's \(count) variations", at: value.position)
        }
        return Int(number)
    }

    /// A variation's value in a message: `true`, `"blue"`, `3`, `an object`.
    static func describe(_ kind: JSONValue.Kind) -> String {
        switch kind {
        case .bool(let flag): return flag ? "true" : "false"
        case .string(let text): return JSONOutput.quote(TextExcerpt.excerpt(text, limit: 40))
        case .number(let number): return formatNumber(number)
        case .null: return "null"
        case .object: return "an object"
        case .array: return "an array"
        }
    }

    /// A non-negative integer as the answer writes it (exact beyond 2^53).
    static func integerText(_ value: JSONValue, _ bytes: [UInt8], _ what: String) throws(Invalid) -> String {
        let text = String(decoding: bytes[value.byteRange], as: UTF8.self)
        guard case .number = value.kind, !text.isEmpty, text.allSatisfy(\.isASCII), text.allSatisfy(\.isNumber) else {
            throw Invalid("\(what) is not a whole number", at: value.position)
        }
        return text
    }
}

extension LaunchDarklyAnswer.Environment {
    /// The state this environment serves, and why rolloutctl must not drive it (nil when it may).
    /// When it must not, the state is the widest reading: what the environment can serve at most.
    func reading(trueIndex: Int, falseIndex: Int) -> (state: FlagEnvironmentState, error: String?) {
        let everyone = FlagEnvironmentState(enabled: true, coverage: 100)
        guard offVariation == falseIndex else {
            let serves =
                offVariation == nil
                ? "no off variation (turned off, it serves each application's fallback value)"
                : "the off variation is the true one (turned off, it serves true to everyone)"
            return (
                offVariation == nil && !on ? .disabled : everyone,
                "LaunchDarkly has \(serves); make the false variation the off variation: a rollback must never "
                    + "serve true"
            )
        }
        guard on else { return (.disabled, nil) }
        switch defaultRule {
        case nil:
            return (everyone, "LaunchDarkly's default rule (fallthrough) is missing")
        case .variation(let index)?:
            if index == falseIndex { return (FlagEnvironmentState(enabled: true, coverage: 0), nil) }
            return (
                everyone,
                "LaunchDarkly's default rule serves the true variation to everyone; rolloutctl did not write it "
                    + "and leaves it untouched (serve false or a rollout by key, or turn the flag off)"
            )
        case .rollout(let rollout)?:
            let coverage = Double(rollout.weight(of: trueIndex)) / 1000
            if let problem = rollout.problem(trueIndex: trueIndex, falseIndex: falseIndex) {
                return (
                    FlagEnvironmentState(enabled: true, coverage: min(max(coverage, 0), 100)),
                    "LaunchDarkly's default rule is a rollout rolloutctl did not write (\(problem)); "
                        + "rolloutctl leaves it untouched"
                )
            }
            return (FlagEnvironmentState(enabled: true, coverage: coverage), nil)
        }
    }

    /// The rules and individual targets that serve `true`: they widen exposure beyond the coverage.
    func widening(trueIndex: Int) -> [String] {
        var messages: [String] = []
        for rule in rules where rule.serve.serves(trueIndex) {
            messages.append(
                "LaunchDarkly targeting \(rule.label) serves true: it widens exposure beyond rolloutctl's "
                    + "coverage, and rolloutctl does not own it")
        }
        let targeted = targets.filter { $0.variation == trueIndex && $0.count > 0 }
        let keys = targeted.reduce(0) { $0 + $1.count }
        if keys > 0 {
            let kinds = Set(targeted.map(\.contextKind)).sorted().joined(separator: ", ")
            messages.append(
                "LaunchDarkly individual targets serve true to \(keys) \(kinds) "
                    + "key\(keys == 1 ? "" : "s"): they widen exposure beyond rolloutctl's coverage, "
                    + "and rolloutctl does not own them")
        }
        return messages
    }
}

extension LaunchDarklyAnswer.Rollout {
    /// Why this is not a rollout rolloutctl writes, or nil: a percentage rollout over the true and
    /// false variations, bucketed by `key` of the `user` context kind, no seed, weights summing to 100,000.
    func problem(trueIndex: Int, falseIndex: Int) -> String? {
        if let kind, kind != "rollout" { return "its kind is \(kind)" }
        if let bucketBy, bucketBy != "key" { return "bucketed by \(bucketBy), not key" }
        if let contextKind, contextKind != "user" { return "bucketed on context kind \(contextKind), not user" }
        if hasSeed { return "it has a seed of its own" }
        if weights.contains(where: { $0.variation != trueIndex && $0.variation != falseIndex }) {
            return "it serves a variation that is neither true nor false"
        }
        let sum = weights.reduce(0) { $0 + $1.weight }
        if sum != LaunchDarklyAnswer.totalWeight {
            return "its weights sum to \(sum), not \(LaunchDarklyAnswer.totalWeight)"
        }
        return nil
    }
}

// MARK: Writing

extension LaunchDarklyAnswer {
    /// The semantic patch instructions that bring one environment to `enabled`/`coverage`:
    /// `turnFlagOff`, or `turnFlagOn` and a fallthrough rollout of the true variation at
    /// `coverage × 1000` (the false variation the rest), bucketed by `key`. Nil when the weights
    /// would not be whole thousandths of a percent.
    static func instructions(enabled: Bool, coverage: Double, trueID: String, falseID: String) -> [JSONOutput]? {
        guard enabled else { return [.object([("kind", .string("turnFlagOff"))])] }
        guard let weight = weight(coverage) else { return nil }
        return [
            .object([("kind", .string("turnFlagOn"))]),
            .object([
                ("kind", .string("updateFallthroughVariationOrRollout")),
                (
                    "rolloutWeights",
                    .object([
                        (trueID, .int(weight)), (falseID, .int(totalWeight - weight)),
                    ])
                ),
                ("rolloutBucketBy", .string("key")),
            ]),
        ]
    }

    /// `coverage` in thousandths of a percent, when it is a whole number of them in [0, 100,000].
    static func weight(_ coverage: Double) -> Int? {
        let scaled = coverage * 1000
        guard scaled.isFinite, (0...Double(totalWeight)).contains(scaled) else { return nil }
        let rounded = scaled.rounded()
        guard abs(scaled - rounded) < 1e-6 else { return nil }
        return Int(rounded)
    }

    /// `rolloutctl: rollout R, phase P, plan B (reason)`: what LaunchDarkly's audit log shows.
    static func comment(_ context: FlagChangeContext?) -> String {
        guard let context else { return "rolloutctl" }
        var parts = ["rollout \(context.rollout)"]
        if let phase = context.phase { parts.append("phase \(phase)") }
        parts.append("plan \(context.planBlob)")
        return "rolloutctl: " + parts.joined(separator: ", ") + " (\(context.reason))"
    }

    /// The body of one semantic patch: `{"environmentKey", "comment", "instructions"}`.
    static func patchBody(environment: String, comment: String, instructions: [JSONOutput]) -> String {
        JSONOutput.object([
            ("environmentKey", .string(environment)),
            ("comment", .string(comment)),
            ("instructions", .array(instructions)),
        ]).render(pretty: false)
    }
}
