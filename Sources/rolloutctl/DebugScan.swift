import ArgumentParser
import Foundation
import RolloutGit
import RolloutKit

/// `rolloutctl debug scan`: one full repository load (tree, files, approval history scan), timed.
struct DebugScan: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scan",
        abstract: "Load the repository and evaluate approvals; print what the history scan did and how long it took.")

    @OptionGroup var repository: RepositoryOptions

    @Option(name: .long, help: "The history scan cache file (read, then rewritten). Default: none (a cold scan).")
    var cache: String?

    @Flag(name: .long, help: "Print one JSON object.")
    var json = false

    @Flag(name: .long, help: "Also time the phases separately (tree and files; history scan without cache).")
    var phases = false

    func run() throws {
        if phases { try timePhases() }
        let clock = ContinuousClock()
        let start = clock.now
        let loaded: LoadedRepository
        do {
            let repo = try GitRepository(path: repository.repo)
            loaded = try RepositoryReader.load(repository: repo, ref: repository.ref, cacheFile: cache)
        } catch {
            printError("rolloutctl: \(error)")
            throw ExitCode(1)
        }
        let elapsed = clock.now - start
        let milliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        let statuses = loaded.approvals.values.flatMap { $0 }
        let stats = loaded.scanStatistics
        let fields: [(String, String)] = [
            ("revision", loaded.revision),
            ("rollouts", String(loaded.snapshot.rollouts.count)),
            ("approvals", String(statuses.count)),
            ("counted", String(statuses.filter(\.counted).count)),
            ("commitsWalked", String(stats.commitsWalked)),
            ("commitsDescribed", String(stats.commitsDescribed)),
            ("usedCache", String(stats.usedCache)),
            ("cacheDiscarded", String(stats.cacheDiscarded)),
            ("elapsedMs", String(format: "%.1f", milliseconds)),
            ("peakRssKiB", String(peakResidentKiB() ?? -1)),
        ]
        if json {
            print("{" + fields.map { key, value in
                let quoted = ["revision"].contains(key) ? "\"\(value)\"" : value
                return "\"\(key)\": \(quoted)"
            }.joined(separator: ", ") + "}")
        } else {
            print(fields.map { "\($0.0)=\($0.1)" }.joined(separator: " "))
        }
    }

    private func timePhases() throws {
        let clock = ContinuousClock()
        func ms(_ d: Swift.Duration) -> String {
            String(format: "%.1f", Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15)
        }
        let repo = try GitRepository(path: repository.repo)
        var start = clock.now
        let (_, commit) = try RepositoryReader.resolve(repository: repo, ref: repository.ref)
        let files = try repo.listFiles(commit: commit, under: ["rollouts", "policies"])
        let listed = clock.now - start
        start = clock.now
        let snapshot = try RepositoryReader.snapshot(repository: repo, commit: commit)
        let snapshotTime = clock.now - start
        var tracked: [String: String] = [:]
        for rollout in snapshot.rollouts {
            if let blob = rollout.planBlob { tracked[rollout.planPath] = blob }
            for approval in rollout.approvals { tracked[approval.path] = approval.blobID }
        }
        start = clock.now
        let (_, statistics) = try HistoryScanner(repository: repo).scan(tip: commit, tracked: tracked, cache: nil)
        let scanTime = clock.now - start
        print("phases: listFiles(\(files.count))=\(ms(listed))ms snapshot(list+read+decode)=\(ms(snapshotTime))ms "
            + "historyScan(walked \(statistics.commitsWalked), described \(statistics.commitsDescribed))=\(ms(scanTime))ms")
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
