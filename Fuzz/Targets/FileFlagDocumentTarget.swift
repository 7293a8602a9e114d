// fuzz-dictionary: json
// fuzz-module RolloutAdapters: Sources/RolloutAdapters/Flags/FileFlagDocument.swift
// fuzz-module RolloutAdapters: Sources/RolloutAdapters/Flags/FlagAPIAnswer.swift
// fuzz-module RolloutAdapters: Sources/RolloutAdapters/HTTP/TextExcerpt.swift
import Foundation

@testable import RolloutAdapters
@testable import RolloutCore

/// The `file:` store's file: any bytes give a document or a reason. A document's versions can be
/// raised by one (no overflow on the next write), its coverage lies in [0, 100], and it encodes
/// back (as the store writes it) to the same document.
enum FileFlagDocumentTarget: FuzzTarget {
    static let name = "file-flag-document"

    static func run(_ bytes: [UInt8]) throws(FuzzViolation) {
        let document: FileFlagDocument
        do {
            document = try FileFlagDocument.decode(bytes)
        } catch {
            try Fuzz.require(!error.detail.isEmpty, "an empty reason")
            return
        }
        for (key, flag) in document.flags {
            try Fuzz.require(flag.version >= 0 && flag.version <= 1 << 53, "flag \(key): version \(flag.version)")
            for (environment, state) in flag.environments {
                try Fuzz.require(
                    state.coverage.isFinite && (0...100).contains(state.coverage),
                    "flag \(key): coverage \(state.coverage) of \(environment)")
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let written = try? encoder.encode(document) else {
            throw FuzzViolation("a decoded document does not encode")
        }
        try Fuzz.require(
            (try? FileFlagDocument.decode(Array(written))) == document,
            "the written document reads back differently")
    }
}
