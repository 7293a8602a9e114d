// fuzz-dictionary: json
// fuzz-module RolloutAdapters: Sources/RolloutAdapters/Flags/UnleashAnswer.swift
// fuzz-module RolloutAdapters: Sources/RolloutAdapters/Flags/FlagAPIAnswer.swift
// fuzz-module RolloutAdapters: Sources/RolloutAdapters/HTTP/TextExcerpt.swift
// fuzz-module RolloutAdapters: Sources/RolloutAdapters/Flags/FlagdFlagStore.swift
// fuzz-module RolloutAdapters: Sources/RolloutAdapters/Flags/AnsweredFlag.swift
// fuzz-module RolloutAdapters: Sources/RolloutAdapters/FileLock.swift Sources/RolloutAdapters/AtomicFile.swift
@testable import RolloutAdapters
@testable import RolloutCore

/// Unleash's admin API feature: any body gives a feature or a reason. A feature's snapshot
/// (or a "not managed" error) has a coverage in [0, 100] per environment, and the version
/// does not depend on the order of the environments.
enum UnleashAnswerTarget: FuzzTarget {
    static let name = "unleash-answer"

    static func run(_ bytes: [UInt8]) throws(FuzzViolation) {
        let feature: UnleashAnswer.Feature
        do {
            feature = try UnleashAnswer.Feature(body: bytes)
        } catch {
            try Fuzz.require(
                !error.detail.isEmpty && error.detail.count <= 400,
                "reason of \(error.detail.count) characters")
            return
        }
        try Fuzz.require(!feature.version.isEmpty, "a feature without a version")
        let snapshot: FlagSnapshot
        do {
            snapshot = try feature.snapshot(flag: "f")
        } catch {
            return  // two strategies titled rolloutctl, or one that is not a flexibleRollout: reported
        }
        for (environment, state) in snapshot.environments {
            try Fuzz.require(
                state.coverage.isFinite && (0...100).contains(state.coverage),
                "coverage \(state.coverage) of \(environment)")
        }
        var reversed = feature
        reversed.environments.reverse()
        try Fuzz.require(
            (try? reversed.snapshot(flag: "f"))?.environments == snapshot.environments,
            "the environments' order changes the snapshot")
    }
}
