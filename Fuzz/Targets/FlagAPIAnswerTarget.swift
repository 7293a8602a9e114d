// fuzz-dictionary: json
// fuzz-module RolloutAdapters: Sources/RolloutAdapters/Flags/FlagAPIAnswer.swift
// fuzz-module RolloutAdapters: Sources/RolloutAdapters/HTTP/TextExcerpt.swift
@testable import RolloutAdapters
@testable import RolloutCore

/// The flag API's answer (SPEC §7): any body gives a flag or a short reason. A flag has a
/// version, and every coverage is a number in [0, 100] (what a plan diffs against).
enum FlagAPIAnswerTarget: FuzzTarget {
    static let name = "flag-api-answer"

    static func run(_ bytes: [UInt8]) throws(FuzzViolation) {
        for etag in [nil, "W/\"7\"", "\"\""] as [String?] {
            let flag: FlagSnapshot
            do {
                flag = try FlagAPIAnswer.snapshot(body: bytes, etag: etag, flag: "f")
            } catch {
                try Fuzz.require(
                    !error.detail.isEmpty && error.detail.count <= 400,
                    "reason of \(error.detail.count) characters")
                continue
            }
            try Fuzz.require(!flag.version.isEmpty, "a flag without a version")
            for (environment, state) in flag.environments {
                try Fuzz.require(
                    state.coverage.isFinite && (0...100).contains(state.coverage),
                    "coverage \(state.coverage) of \(environment)")
            }
        }
    }
}
