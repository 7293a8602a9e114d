import Foundation
import Testing

/// Every fuzz target, by the name of its input folder. A new target is one file in Fuzz/Targets
/// and one line here.
let fuzzTargets: [any FuzzTarget.Type] = [
    JSONParserTarget.self, PlanTarget.self, ApprovalTarget.self, ApproversPolicyTarget.self, HealthSetTarget.self,
    PolicyApprovalTarget.self, AllowedSignersTarget.self, SSHSignatureTarget.self, SSHKeyTarget.self,
    DurationTarget.self, RFC3339Target.self, CommitHeaderTarget.self, TreeEntriesTarget.self,
    HistoryCacheTarget.self, PrometheusAnswerTarget.self, FlagAPIAnswerTarget.self, UnleashAnswerTarget.self,
    LaunchDarklyAnswerTarget.self, FileFlagDocumentTarget.self, FlagdFileTarget.self,
]

/// Replays the corpus (seeded from the project's files) and every input a fuzzer ever crashed on
/// through the same entry points libFuzzer calls: a trap fails the test run, a broken invariant
/// fails the test.
@Suite struct FuzzReplayTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()

    static func inputs(of name: String) -> [URL] {
        ["corpus", "regressions"].flatMap { folder -> [URL] in
            let directory = root.appendingPathComponent(folder).appendingPathComponent(name)
            let files =
                (try? FileManager.default.contentsOfDirectory(
                    at: directory,
                    includingPropertiesForKeys: nil)) ?? []
            return files.filter { !$0.lastPathComponent.hasPrefix(".") }.sorted { $0.path < $1.path }
        }
    }

    @Test(arguments: fuzzTargets.map { $0.name })
    func replaysItsInputs(target name: String) throws {
        let target = try #require(fuzzTargets.first { $0.name == name })
        let inputs = Self.inputs(of: name)
        #expect(!inputs.isEmpty, "Fuzz/corpus/\(name) holds no seed")
        for input in inputs {
            let bytes = try [UInt8](Data(contentsOf: input))
            do {
                try target.run(bytes)
            } catch {
                Issue.record("\(input.path): \(error)")
            }
        }
    }

    @Test func everyTargetHasItsOwnFolders() {
        let names = fuzzTargets.map { $0.name }
        #expect(Set(names).count == names.count)
        for folder in ["corpus", "regressions"] {
            let directory = Self.root.appendingPathComponent(folder)
            let folders = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
            for extra in folders where !extra.hasPrefix(".") && !names.contains(extra) {
                Issue.record("Fuzz/\(folder)/\(extra) belongs to no fuzz target")
            }
        }
    }
}
