// fuzz-dictionary: json
// fuzz-module RolloutAdapters: Sources/RolloutAdapters/Flags/LaunchDarklyAnswer.swift
// fuzz-module RolloutAdapters: Sources/RolloutAdapters/Flags/FlagAPIAnswer.swift
// fuzz-module RolloutAdapters: Sources/RolloutAdapters/HTTP/TextExcerpt.swift
@testable import RolloutAdapters
@testable import RolloutCore

/// LaunchDarkly's flag representation: any body gives a flag or a short reason, and a flag is always
/// the one asked for. Of its snapshot: every coverage is in [0, 100]; an environment read as disabled
/// without an error really serves false when off (its off variation is the false one); an environment
/// read without an error is written back by one semantic patch whose weights sum to 100,000 and give
/// the true variation exactly the coverage read; the environments' order changes nothing.
enum LaunchDarklyAnswerTarget: FuzzTarget {
    static let name = "launchdarkly-answer"

    static func run(_ bytes: [UInt8]) throws(FuzzViolation) {
        let flag: LaunchDarklyAnswer.Flag
        do {
            flag = try LaunchDarklyAnswer.Flag(body: bytes, flag: "f")
        } catch {
            try Fuzz.require(
                !error.detail.isEmpty && error.detail.count <= 400, "reason of \(error.detail.count) characters")
            return
        }
        try Fuzz.require(flag.key == "f", "an answer about \(flag.key) read as flag f")
        try Fuzz.require(!flag.version.isEmpty && flag.version.allSatisfy(\.isNumber), "version \(flag.version)")
        let snapshot: FlagSnapshot
        do {
            snapshot = try flag.snapshot()
        } catch {
            try Fuzz.require(!flag.isBoolean, "a boolean flag refused: \(error)")
            return
        }
        try Fuzz.require(flag.isBoolean, "a flag that is not boolean read")
        let trueIndex = flag.index(of: true) ?? -1
        let falseIndex = flag.index(of: false) ?? -1
        let refused = Set(snapshot.errors.map(\.environment))
        for environment in flag.environments {
            guard let state = snapshot.environments[environment.key] else {
                throw FuzzViolation("environment \(environment.key) missing from the snapshot")
            }
            try Fuzz.require(
                state.coverage.isFinite && (0...100).contains(state.coverage),
                "coverage \(state.coverage) of \(environment.key)")
            guard !refused.contains(environment.key) else { continue }
            if !state.enabled {
                try Fuzz.require(
                    environment.offVariation == falseIndex, "\(environment.key) disabled but off serves another")
                continue
            }
            guard let weight = LaunchDarklyAnswer.weight(state.coverage),
                let instructions = LaunchDarklyAnswer.instructions(
                    enabled: true, coverage: state.coverage, trueID: "t", falseID: "u"),
                case .object(let members) = instructions.last,
                case .object(let weights)? = members.first(where: { $0.0 == "rolloutWeights" })?.1
            else {
                throw FuzzViolation("coverage \(state.coverage) of \(environment.key) cannot be written back")
            }
            let sum = weights.reduce(0.0) { total, entry in
                if case .number(let value) = entry.1 { return total + value }
                return total
            }
            try Fuzz.require(sum == 100_000, "weights written back sum to \(sum)")
            if case .rollout(let rollout)? = environment.defaultRule {
                try Fuzz.require(rollout.weight(of: trueIndex) == weight, "coverage read ≠ the true weight")
            }
        }
        for remark in snapshot.warnings + snapshot.errors {
            try Fuzz.require(
                flag.environments.contains { $0.key == remark.environment },
                "a remark about an environment the flag lacks")
        }
        var reversed = flag
        reversed.environments.reverse()
        let again = try? reversed.snapshot()
        try Fuzz.require(
            again?.environments == snapshot.environments && Set(again?.errors ?? []) == Set(snapshot.errors),
            "the environments' order changes the snapshot")
    }
}
