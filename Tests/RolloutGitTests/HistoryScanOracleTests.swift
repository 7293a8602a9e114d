import Foundation
import RolloutCore
import RolloutGit
import RolloutKit
import RolloutTestSupport
import Testing

/// The history scanner against an independent answer computed with the `git` program, on a
/// randomly grown repository (merges, squashes, removals, re-additions, reverts, removed rollouts,
/// force-pushes), cold and through a chain of cached scans. Guards any optimisation of the walk.
@Suite struct HistoryScanOracleTests {
    typealias F = RolloutFixtures

    /// A small deterministic generator (the same history on every run).
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 33
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
        mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
    }

    /// What `git` says: for each tracked path at `tip`, the first-parent commit where its blob
    /// first appears (from its last addition) and, for a merge, the merged side's introducer.
    static func oracle(_ fixture: GitFixture, tip: String) throws -> [String: IntroducingCommit] {
        var trees: [String: [String: String]] = [:]  // commit → path → blob (tracked paths only)
        func tree(_ commit: String) throws -> [String: String] {
            if let cached = trees[commit] { return cached }
            var files: [String: String] = [:]
            for line in try fixture.git("ls-tree", "-r", commit, "--", "rollouts").split(separator: "\n") {
                // <mode> SP <type> SP <object> TAB <path>
                let parts = line.split(separator: "\t", maxSplits: 1)
                let meta = parts[0].split(separator: " ")
                let path = String(parts[1])
                if HistoryScanner.isTracked(path) { files[path] = String(meta[2]) }
            }
            trees[commit] = files
            return files
        }
        func firstParents(_ commit: String) throws -> [String] {
            try fixture.git("rev-list", "--first-parent", commit).split(separator: "\n").map(String.init)
        }
        func parents(_ commit: String) throws -> [String] {
            try fixture.git("rev-list", "--parents", "-n", "1", commit).split(separator: " ").dropFirst().map(String.init)
        }
        let line = try firstParents(tip)
        var result: [String: IntroducingCommit] = [:]
        for (path, blob) in try tree(tip) {
            var index = 0
            while index + 1 < line.count, try tree(line[index + 1])[path] == blob { index += 1 }
            let commit = line[index]
            var approval = commit
            var viaMerge = false
            for side in try parents(commit).dropFirst() {
                var candidate: String?
                for sideCommit in try firstParents(side) {
                    guard try tree(sideCommit)[path] == blob else { break }
                    candidate = sideCommit
                }
                if let candidate {
                    approval = candidate
                    viaMerge = true
                    break
                }
            }
            result[path] = IntroducingCommit(blob: blob, firstParentCommit: commit, commit: approval, viaMerge: viaMerge)
        }
        return result
    }

    static func tracked(_ fixture: GitFixture, tip: String) throws -> [String: String] {
        var files: [String: String] = [:]
        for line in try fixture.git("ls-tree", "-r", tip, "--", "rollouts").split(separator: "\n") {
            let parts = line.split(separator: "\t", maxSplits: 1)
            let path = String(parts[1])
            if HistoryScanner.isTracked(path) { files[path] = String(parts[0].split(separator: " ")[2]) }
        }
        return files
    }

    /// Grows a repository by `steps` random operations on main (some through branches).
    static func grow(_ fixture: GitFixture, steps: Int, random: inout Random, rollouts: inout [String],
                     removed: inout [String: String]) throws {
        let people = [F.dana, F.quinn, F.erin, F.pat, F.robin]
        func approvalFile(_ rollout: String) -> (String, String) {
            let person = random.pick(people)
            let phase = random.pick(["canary-10", "production"])
            let path = "rollouts/\(rollout)/approvals/\(phase)/\(person.email.prefix(4))-\(random.below(4)).json"
            return (path, F.approval(rollout: rollout, phase: phase, role: "sre", approver: person.email,
                                     plan: String(repeating: "0", count: 39) + String(random.below(10))))
        }
        func existingApprovals() throws -> [String] {
            try fixture.git("ls-files", "rollouts").split(separator: "\n").map(String.init).filter { $0.contains("/approvals/") }
        }
        for _ in 0..<steps {
            let step = random.below(1_000_000)
            let author = random.pick(people)
            switch rollouts.isEmpty ? 0 : random.below(12) {
            case 0 where rollouts.count < 8:
                let name = "r\(rollouts.count)-\(random.below(1000))"
                rollouts.append(name)
                try fixture.commitFiles(["rollouts/\(name)/plan.json": F.plan(name: name)], "Add \(name)", author: author)
            case 1, 2:
                let name = random.pick(rollouts)
                try fixture.commitFiles(["rollouts/\(name)/plan.json": F.plan(name: name, description: "rev \(random.below(3))")],
                                        "Edit \(name)", author: author)
            case 3, 4:
                let (path, text) = approvalFile(random.pick(rollouts))
                try fixture.commitFiles([path: text], "Approve directly", author: author)
            case 5, 6:
                // A pull request of one or two commits, main possibly moving on, merged with a merge commit.
                let (path, text) = approvalFile(random.pick(rollouts))
                try fixture.git("checkout", "-q", "-b", "pr-\(step)", "main")
                try fixture.commitFiles([path: text], "Approve", author: author)
                if random.below(2) == 0 {
                    try fixture.commitFiles(["notes/\(step).txt": "x"], "Notes", author: author)
                }
                if random.below(3) == 0 {
                    let (other, otherText) = approvalFile(random.pick(rollouts))
                    try fixture.commitFiles([other: otherText], "Second approval on the branch", author: random.pick(people))
                }
                try fixture.git("checkout", "-q", "main")
                if random.below(2) == 0 { try fixture.commitFiles(["main/\(step).txt": "y"], "Main moves on") }
                try fixture.git("merge", "-q", "--no-ff", "-m", "Merge pr-\(step)", "pr-\(step)", author: F.service)
            case 7:
                let (path, text) = approvalFile(random.pick(rollouts))
                try fixture.git("checkout", "-q", "-b", "sq-\(step)", "main")
                try fixture.commitFiles([path: text], "Approve", author: author)
                try fixture.git("checkout", "-q", "main")
                try fixture.git("merge", "-q", "--squash", "sq-\(step)")
                try fixture.commit("Squashed", author: F.service)
            case 8:
                let files = try existingApprovals()
                guard !files.isEmpty else { continue }
                let path = random.pick(files)
                removed[path] = try String(contentsOfFile: fixture.path + "/" + path, encoding: .utf8)
                try fixture.remove(path)
                try fixture.commit("Remove \(path)", author: author)
            case 9:
                // Add a removed file back with the very same bytes.
                guard !removed.isEmpty else { continue }
                let path = random.pick(removed.keys.sorted())
                let text = removed.removeValue(forKey: path)!
                guard rollouts.contains(String(path.split(separator: "/")[1])),
                      !FileManager.default.fileExists(atPath: fixture.path + "/" + path) else { continue }
                try fixture.commitFiles([path: text], "Re-add \(path)", author: author)
            case 10 where rollouts.count > 2:
                let name = rollouts.remove(at: random.below(rollouts.count))
                try fixture.remove("rollouts/\(name)")
                try fixture.commit("Remove \(name)", author: author)
            default:
                try fixture.commitFiles(["docs/\(step % 3).md": "\(step)"], "Docs", author: author)
            }
        }
    }

    /// The rollouts-level comparison skips the bytes two trees share (common prefix and suffix) and
    /// resynchronises on entry boundaries: changes at the first and last entries, additions and
    /// removals at both ends, names that sort around each other ("a", "a-1", "a.1", "a0"),
    /// neighbouring folders with identical contents (repeated bytes), a file among the folders,
    /// a folder replaced by a file and back, against git after every commit, cold and cached.
    @Test func rolloutsTreeEdgesMatchGit() throws {
        let fixture = try GitFixture()
        func folder(_ name: String, plan: String? = nil, approval: String? = nil) -> [String: String] {
            let same = name.hasPrefix("d")  // d1, d2, d3: identical trees
            return ["rollouts/\(name)/plan.json": plan ?? (same ? "{}\n" : "{\"name\": \"\(name)\"}\n"),
                    "rollouts/\(name)/approvals/p/x.json": approval ?? (same ? "{\"x\": 1}\n" : "{\"x\": \"\(name)\"}\n")]
        }
        var initial: [String: String] = [:]
        for name in ["a", "a-1", "a.1", "a0", "ab", "b", "d1", "d2", "d3", "m", "z", "zz"] {
            initial.merge(folder(name)) { $1 }
        }
        try fixture.commitFiles(initial, "Initial")
        let steps: [(String, () throws -> Void)] = [
            ("edit first", { try fixture.commitFiles(folder("a", plan: "{\"v\": 2}\n"), "1") }),
            ("edit last", { try fixture.commitFiles(folder("zz", approval: "{\"v\": 2}\n"), "2") }),
            ("edit middle", { try fixture.commitFiles(folder("m", plan: "{\"v\": 2}\n"), "3") }),
            ("edit first and last", {
                try fixture.commitFiles(folder("a", plan: "{\"v\": 3}\n").merging(folder("zz", plan: "{\"v\": 3}\n")) { $1 }, "4")
            }),
            ("remove first", { try fixture.remove("rollouts/a"); try fixture.commit("5") }),
            ("remove last", { try fixture.remove("rollouts/zz"); try fixture.commit("6") }),
            ("add a new first", { try fixture.commitFiles(folder("0"), "7") }),
            ("add a new last", { try fixture.commitFiles(folder("zzz"), "8") }),
            ("re-add the old first, same bytes", { try fixture.commitFiles(folder("a", plan: "{\"v\": 3}\n"), "9") }),
            ("remove between identical neighbours", { try fixture.remove("rollouts/d2"); try fixture.commit("10") }),
            ("add it back identical", { try fixture.commitFiles(folder("d2"), "11") }),
            ("make it differ", { try fixture.commitFiles(folder("d2", approval: "{\"x\": 2}\n"), "12") }),
            ("make it identical again", { try fixture.commitFiles(folder("d2"), "13") }),
            ("a file among the folders", { try fixture.commitFiles(["rollouts/a.md": "x\n"], "14") }),
            ("outside rollouts", { try fixture.commitFiles(["docs/x.md": "x\n"], "15") }),
            ("a folder becomes a file", { try fixture.remove("rollouts/b"); try fixture.commitFiles(["rollouts/b": "b\n"], "16") }),
            ("and a folder again", { try fixture.remove("rollouts/b"); try fixture.commitFiles(folder("b"), "17") }),
            ("several at once", {
                try fixture.remove("rollouts/0")
                try fixture.remove("rollouts/a.md")
                try fixture.commitFiles(folder("a-1", plan: "{\"v\": 4}\n").merging(folder("a0", approval: "{\"v\": 4}\n")) { $1 }
                    .merging(folder("y")) { $1 }.merging(folder("zzz", plan: "{\"v\": 4}\n")) { $1 }, "18")
            }),
            ("remove all but one", {
                for name in try fixture.git("ls-tree", "--name-only", "HEAD", "rollouts/").split(separator: "\n")
                where name != "rollouts/m" { try fixture.remove(String(name)) }
                try fixture.commit("19")
            }),
            ("and fill again", { try fixture.commitFiles(initial, "20") }),
        ]
        var cache: HistoryScan?
        for (label, step) in steps {
            try step()
            let tip = try fixture.head()
            let expected = try Self.oracle(fixture, tip: tip)
            let repository = try GitRepository(path: fixture.path)
            let tipID = try #require(ObjectID(hex: tip))
            let tracked = try Self.tracked(fixture, tip: tip)
            let (cold, _) = try HistoryScanner(repository: repository).scan(tip: tipID, tracked: tracked, cache: nil)
            #expect(cold.entries == expected, "\(label)")
            for (path, entry) in expected where cold.entries[path] != entry {
                Issue.record("\(label) \(path): scanner \(String(describing: cold.entries[path])), git \(entry)")
            }
            let (warm, _) = try HistoryScanner(repository: repository).scan(tip: tipID, tracked: tracked, cache: cache)
            #expect(warm.entries == expected, "\(label), with cache")
            cache = warm
        }
    }

    @Test func scannerMatchesGitColdAndThroughTheCache() throws {
        let fixture = try GitFixture()
        try fixture.commitFiles(["policies/approvers.json": F.policy(identity: "author")], "Policies")
        var random = Random(state: 42)
        var rollouts: [String] = []
        var removed: [String: String] = [:]
        let cacheDir = try TemporaryDirectory()
        var cache: HistoryScan?
        var checkedPaths = 0
        var mergedIntroducers = 0
        for round in 0..<12 {
            if round == 7 {
                // A force-push: main goes back three first-parent commits behind the cached tip.
                try fixture.git("reset", "-q", "--hard", "HEAD~3")
                rollouts = try fixture.git("ls-tree", "--name-only", "HEAD", "rollouts/").split(separator: "\n")
                    .map { String($0.split(separator: "/")[1]) }
            }
            try Self.grow(fixture, steps: 8, random: &random, rollouts: &rollouts, removed: &removed)
            let tip = try fixture.head()
            let expected = try Self.oracle(fixture, tip: tip)
            let repository = try GitRepository(path: fixture.path)
            let tipID = try #require(ObjectID(hex: tip))
            let tracked = try Self.tracked(fixture, tip: tip)
            #expect(Set(tracked.keys) == Set(expected.keys))

            let (cold, _) = try HistoryScanner(repository: repository).scan(tip: tipID, tracked: tracked, cache: nil)
            #expect(cold.entries == expected, "round \(round)")
            for (path, entry) in expected where cold.entries[path] != entry {
                Issue.record("round \(round) \(path): scanner \(String(describing: cold.entries[path])), git \(entry)")
            }
            let (warm, statistics) = try HistoryScanner(repository: repository).scan(tip: tipID, tracked: tracked, cache: cache)
            #expect(warm.entries == expected, "round \(round) with cache")
            #expect(warm.commits == cold.commits, "round \(round)")
            if round == 7 { #expect(statistics.cacheDiscarded) }
            cache = warm
            checkedPaths += expected.count
            mergedIntroducers += expected.values.filter(\.viaMerge).count

            // The full load agrees too (cache file path).
            let viaFile = try RepositoryReader.load(repository: repository, ref: nil, cacheFile: cacheDir.file("scan.json"))
            let coldLoad = try RepositoryReader.load(repository: repository, ref: nil, cacheFile: nil)
            #expect(viaFile.approvals == coldLoad.approvals)
        }
        // The history exercised what it should.
        #expect(checkedPaths > 100)
        #expect(mergedIntroducers > 10)
        _ = cacheDir
    }
}
