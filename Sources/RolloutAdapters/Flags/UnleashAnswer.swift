import Foundation
import RolloutCore

/// Unleash's admin API feature (`GET …/projects/{project}/features/{flag}`), as rolloutctl reads it:
/// environments, their switches and strategies, and the one strategy rolloutctl owns.
/// Foundation-only, so that a fuzz target can feed it any bytes (Fuzz/Targets/UnleashAnswerTarget.swift).
enum UnleashAnswer {
    /// The title of the strategy rolloutctl owns.
    static let strategyTitle = "rolloutctl"

    struct Strategy {
        var id: String
        var name: String
        var title: String?
        var disabled: Bool
        var parameters: [String: String]
        var constraintCount: Int
        var segmentCount: Int
        /// The strategy's bytes in the answer (for the version).
        var raw: String

        var isOurs: Bool { title == UnleashAnswer.strategyTitle }

        var rollout: Double? {
            guard let text = parameters["rollout"], let value = Double(text), (0...100).contains(value) else {
                return nil
            }
            return value
        }

        func isExactly(rollout: Int, flag: String) -> Bool {
            name == "flexibleRollout" && !disabled && constraintCount == 0 && segmentCount == 0
                && parameters["rollout"] == String(rollout) && parameters["stickiness"] == "default"
                && parameters["groupId"] == flag
        }
    }

    struct Environment {
        var name: String
        var enabled: Bool
        var strategies: [Strategy]

        /// rolloutctl's strategy, if any (two of them is an error: which one would it own?).
        func ours(flag: String) throws -> Strategy? {
            let owned = strategies.filter(\.isOurs)
            guard owned.count <= 1 else {
                throw FlagStoreError.notManaged(
                    "flag \(flag)[\(name)] has \(owned.count) strategies titled "
                        + "\"\(UnleashAnswer.strategyTitle)\"; remove all but one in Unleash")
            }
            guard let strategy = owned.first else { return nil }
            guard strategy.name == "flexibleRollout", strategy.rollout != nil else {
                throw FlagStoreError.notManaged(
                    "flag \(flag)[\(name)]: the strategy titled "
                        + "\"\(UnleashAnswer.strategyTitle)\" is not a flexibleRollout with a rollout of 0-100; "
                        + "rolloutctl leaves it untouched")
            }
            return strategy
        }
    }

    struct Feature {
        var environments: [Environment]
        var version: String
        /// The feature names the answer gives (its `name` and each environment's `featureName`):
        /// an answer naming another feature is not read as the one asked for (SPEC §6 [r3]).
        var names: Set<String> = []

        /// The feature in an answer's body, or why the body is not one.
        init(body bytes: [UInt8]) throws(InvalidFlagAnswer) {
            func invalid(_ detail: String) -> InvalidFlagAnswer { InvalidFlagAnswer(detail: detail) }
            guard let root = try? JSONParser.parse(bytes), case .array(let list)? = root["environments"]?.kind else {
                throw invalid("not an Unleash feature (no environments array)")
            }
            var environments: [Environment] = []
            var names: Set<String> = []
            var featureNames: Set<String> = []
            if case .string(let name)? = root["name"]?.kind { featureNames.insert(name) }
            for item in list {
                if case .string(let name)? = item["featureName"]?.kind { featureNames.insert(name) }
                guard case .string(let name)? = item["name"]?.kind,
                    case .bool(let enabled)? = item["enabled"]?.kind
                else {
                    throw invalid("an environment without name or enabled")
                }
                // Which of two same-named environments would be in force is the service's business:
                // reading either could under-report exposure, so the answer is refused.
                guard names.insert(name).inserted else {
                    throw invalid("environment \(name) appears twice")
                }
                var strategies: [Strategy] = []
                if case .array(let items)? = item["strategies"]?.kind {
                    for strategy in items {
                        guard case .string(let strategyName)? = strategy["name"]?.kind else {
                            throw invalid("a strategy without a name in environment \(name)")
                        }
                        var parameters: [String: String] = [:]
                        if case .object(let members)? = strategy["parameters"]?.kind {
                            for member in members {
                                switch member.value.kind {
                                case .string(let text): parameters[member.key] = text
                                case .number(let number): parameters[member.key] = formatNumber(number)
                                default: break
                                }
                            }
                        }
                        var id = ""
                        if case .string(let text)? = strategy["id"]?.kind { id = text }
                        var title: String?
                        if case .string(let text)? = strategy["title"]?.kind { title = text }
                        var disabled = false
                        if case .bool(true)? = strategy["disabled"]?.kind { disabled = true }
                        strategies.append(
                            Strategy(
                                id: id, name: strategyName, title: title, disabled: disabled, parameters: parameters,
                                constraintCount: strategy["constraints"]?.count ?? 0,
                                segmentCount: strategy["segments"]?.count ?? 0,
                                raw: String(decoding: bytes[strategy.byteRange], as: UTF8.self)))
                    }
                }
                environments.append(Environment(name: name, enabled: enabled, strategies: strategies))
            }
            self.environments = environments
            self.names = featureNames
            // What rolloutctl decides on: each environment's switch and strategies (not lastSeenAt
            // or metrics counts, which move on their own).
            let canonical: String = environments.sorted { $0.name < $1.name }.map { environment -> String in
                let strategies = environment.strategies.map(\.raw).joined(separator: ",")
                return "\(environment.name)=\(environment.enabled)[\(strategies)]"
            }.joined(separator: ";")
            version = FlagdFlagStore.version(ArraySlice(canonical.utf8))
        }

        /// Throws when the answer names a feature other than `flag`.
        func check(about flag: String, scrub: (String) -> String) throws {
            if let other = names.sorted().first(where: { $0 != flag }) {
                throw FlagStoreError.answerAboutAnotherFlag(asked: flag, answered: scrub(other), service: "Unleash")
            }
        }

        func snapshot(flag: String) throws -> FlagSnapshot {
            try check(about: flag, scrub: { $0 })
            var states: [String: FlagEnvironmentState] = [:]
            var warnings: [FlagWarning] = []
            for environment in environments {
                let ours = try environment.ours(flag: flag)
                let others = environment.strategies.filter { !$0.isOurs && !$0.disabled }
                for other in others {
                    let label = other.title.map { "\"\($0)\" (\(other.name))" } ?? other.name
                    warnings.append(
                        FlagWarning(
                            environment: environment.name,
                            message: "Unleash strategy \(label) "
                                + "is enabled too: it widens exposure beyond rolloutctl's coverage, "
                                + "and rolloutctl does not own it"))
                }
                if !environment.enabled {
                    states[environment.name] = .disabled
                } else if let ours, !ours.disabled, let rollout = ours.rollout {
                    states[environment.name] = FlagEnvironmentState(enabled: true, coverage: rollout)
                } else if others.isEmpty {
                    // On without an enabled strategy: Unleash's SDKs serve it to everyone.
                    states[environment.name] = FlagEnvironmentState(enabled: true, coverage: 100)
                } else {
                    states[environment.name] = FlagEnvironmentState(enabled: true, coverage: 0)
                }
            }
            return FlagSnapshot(key: flag, version: version, environments: states, warnings: warnings)
        }
    }
}

extension JSONValue {
    /// The value of an object's member, or nil.
    subscript(key: String) -> JSONValue? {
        guard case .object(let members) = kind else { return nil }
        return members.first { $0.key == key }?.value
    }

    /// The element count of an array (0 for anything else).
    var count: Int {
        guard case .array(let elements) = kind else { return 0 }
        return elements.count
    }
}
