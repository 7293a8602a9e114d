import ArgumentParser
import Foundation
import RolloutCore
import RolloutGit
import RolloutKit

/// `rolloutctl debug scan`: one full repository load (tree, files, approval history scan), timed.
/// `elapsedMs` is the whole load; `approvalScanMs` the approval history scan within it (cache read,
/// history walk and commit facts, cache write), without the tip snapshot that every command reads anyway.
struct DebugScan: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scan",
        abstract: "Load the repository and evaluate approvals; print what the history scan did and how long it took.")

    @OptionGroup var repository: RepositoryOptions

    @Option(name: .long, help: "The history scan cache file (read, then rewritten). Default: none (a cold scan).")
    var cache: String?

    @Flag(name: .long, help: "Print one JSON object.")
    var json = false

    @Flag(
        name: .long,
        help:
            ArgumentHelp(
                "Also print the load's phases: snapshot (tip files read and decoded), cache read, history scan "
                    + "(walk and commit facts), cache write, approval evaluation.")
    )
    var phases = false

    func run() throws {
        let clock = ContinuousClock()
        let start = clock.now
        let loaded: LoadedRepository
        do {
            let repo = try GitRepository(path: repository.repo)
            loaded = try RepositoryReader.load(repository: repo, ref: repository.ref, cacheFile: cache)
        } catch {
            printFailure(error)
            throw ExitCode(1)
        }
        let elapsed = clock.now - start
        let statuses = loaded.approvals.values.flatMap { $0 }
        let stats = loaded.scanStatistics
        let timings = loaded.timings
        var fields: [(String, String)] = [
            ("revision", loaded.revision),
            ("rollouts", String(loaded.snapshot.rollouts.count)),
            ("approvals", String(statuses.count)),
            ("counted", String(statuses.filter(\.counted).count)),
            ("commitsWalked", String(stats.commitsWalked)),
            ("commitsDescribed", String(stats.commitsDescribed)),
            ("foldersRead", String(stats.foldersRead)),
            ("usedCache", String(stats.usedCache)),
            ("cacheDiscarded", String(stats.cacheDiscarded)),
            ("elapsedMs", Self.ms(elapsed)),
            // The approval history scan alone: cache read + history walk and commit facts + cache write.
            ("approvalScanMs", Self.ms(timings.approvalScan)),
            ("peakRssKiB", String(peakResidentKiB() ?? -1)),
        ]
        if phases {
            fields += [
                ("snapshotMs", Self.ms(timings.snapshot)),
                ("cacheReadMs", Self.ms(timings.cacheRead)),
                ("historyScanMs", Self.ms(timings.historyScan)),
                ("cacheWriteMs", Self.ms(timings.cacheWrite)),
                ("evaluateMs", Self.ms(timings.evaluate)),
            ]
        }
        if json {
            // The same fields, typed: the revision is text, the flags booleans, the rest numbers.
            print(
                JSONOutput.object(
                    fields.map { key, value in
                        if key == "revision" { return (key, .string(value)) }
                        if let flag = Bool(value) { return (key, .bool(flag)) }
                        return (key, Double(value).map { .number($0) } ?? .string(value))
                    }
                ).render(pretty: false))
        } else {
            print(fields.map { "\($0.0)=\($0.1)" }.joined(separator: " "))
        }
    }

    private static func ms(_ duration: Swift.Duration) -> String {
        String(
            format: "%.1f", Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15)
    }

    /// VmHWM from /proc/self/status (Linux), in KiB.
    private func peakResidentKiB() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        }
        return nil
    }
}
