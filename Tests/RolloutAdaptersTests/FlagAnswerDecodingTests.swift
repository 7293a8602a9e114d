import Foundation
import Testing

@testable import RolloutAdapters
@testable import RolloutCore

/// The flag stores' answer and file decoders (Foundation-only, fuzzed in Fuzz/Targets): what they
/// refuse because reading it either way could under-report exposure, and where they say it is.
@Suite struct FlagAnswerDecodingTests {
    @Test func aFlagAnswerWithAnEnvironmentTwiceIsRefusedWithItsPosition() {
        let body =
            #"{"version": 3, "environments": {"production": {"enabled": false, "coverage": 0},"#
            + "\n" + #" "production": {"enabled": true, "coverage": 100}}}"#
        #expect {
            try FlagAPIAnswer.snapshot(body: Array(body.utf8), etag: nil, flag: "f")
        } throws: { error in
            let detail = (error as? InvalidFlagAnswer)?.detail ?? ""
            return detail.contains("line 2, column 2") && detail.contains("duplicate key \"production\"")
        }
    }

    @Test func aFlagAnswerKeepsIntegerVersionsExactly() throws {
        let body = #"{"version": 9007199254740993, "environments": {"production": {"enabled": true, "coverage": 10}}}"#
        let flag = try FlagAPIAnswer.snapshot(body: Array(body.utf8), etag: "\"1\"", flag: "f")
        #expect(flag.version == "9007199254740993")
        #expect(flag.environments["production"] == FlagEnvironmentState(enabled: true, coverage: 10))
        let etagOnly = try FlagAPIAnswer.snapshot(
            body: Array(#"{"environments": {}}"#.utf8), etag: "W/\"12\"",
            flag: "f")
        #expect(etagOnly.version == "12")
    }

    @Test func aFlagAnswerOutsideZeroToHundredIsRefused() {
        let body = #"{"version": 1, "environments": {"production": {"enabled": true, "coverage": 1e300}}}"#
        #expect(throws: InvalidFlagAnswer.self) {
            try FlagAPIAnswer.snapshot(body: Array(body.utf8), etag: nil, flag: "f")
        }
    }

    @Test func anUnleashFeatureWithAnEnvironmentTwiceIsRefused() throws {
        let input = try Data(
            contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                .appendingPathComponent("../../Fuzz/regressions/unleash-answer/duplicate-environment.json").standardized
        )
        #expect(throws: InvalidFlagAnswer(detail: "environment canary appears twice")) {
            try UnleashAnswer.Feature(body: Array(input))
        }
    }

    @Test func aFlagFileWhoseVersionWouldOverflowIsRefused() throws {
        let file = #"{"flags": {"f": {"version": 9223372036854775807, "environments": {}}}}"#
        #expect {
            try FileFlagDocument.decode(Array(file.utf8))
        } throws: { error in
            (error as? InvalidFlagAnswer)?.detail.hasPrefix("line 1, column 29: flag f: \"version\"") == true
        }
        let fine = #"{"flags": {"f": {"version": 4, "environments": {"canary": {"enabled": true, "coverage": 10}}}}}"#
        #expect(try FileFlagDocument.decode(Array(fine.utf8)).flags["f"]?.version == 4)
    }

    @Test func aFlagdFileEditChangesOnlyItsFlag() throws {
        let file = """
            {"flags": {
              "a": {"variants": {"on": true, "off": false}, "defaultVariant": "off"},
              "b": {"variants": {"yes": true, "no": false}, "defaultVariant": "yes", "state": "ENABLED"}
            }}
            """
        let edit = try FlagdFlagStore.edit(Array(file.utf8), flag: "a", enabled: true, coverage: 12.5, path: "f.json")
        #expect(edit.written.current == FlagEnvironmentState(enabled: true, coverage: 12.5))
        let text = String(decoding: edit.bytes, as: UTF8.self)
        #expect(
            text.contains(
                #""b": {"variants": {"yes": true, "no": false}, "defaultVariant": "yes", "state": "ENABLED"}"#))
    }
}
