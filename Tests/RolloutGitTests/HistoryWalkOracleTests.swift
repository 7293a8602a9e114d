import Foundation
import RolloutCore
import RolloutGit
import RolloutTestSupport
import Testing

/// The history walk against an independent answer computed with the `git` program by SPEC §4.1's
/// definitions, on a randomly grown repository (merges, squashes, removals, re-additions, replayed
/// approval commits, reverts, removed rollouts, force-pushes), cold and through a chain of cached
/// walks. Guards any optimisation of the walk.
@Suite struct HistoryWalkOracleTests {
    typealias F = RolloutFixtures

    /// A small deterministic generator (the same history on every run).
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 33
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
        mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
    }

    /// The answer for one tracked path, as the walk gives it.
    struct Answer: Equatable, CustomStringConvertible {
        var mergePoint: String
        var viaMerge: Bool
        var approvalCommit: String?
        /// plan.json only: the makers since creation, sorted.
        var makers: [String]?

        var description: String {
            "M=\(mergePoint.prefix(7)) merge=\(viaMerge) approval=\(approvalCommit?.prefix(7) ?? "none")"
                + (makers.map { " makers=\($0.map { $0.prefix(7) })" } ?? "")
        }
    }

    /// What `git` says, by SPEC §4.1's definitions: for each tracked path at `tip`, M (the latest
    /// first-parent commit holding its blob while its first parent does not), the approval commit
    /// (M, or the one non-merge commit of `git rev-list M^2… --not M^1` that adds the blob), and for a
    /// plan its makers since creation.
    static func oracle(_ fixture: GitFixture, tip: String) throws -> [String: Answer] {
        var trees: [String: [String: String]] = [:]  // commit → path → blob (tracked paths only)
        func tree(_ commit: String) throws -> [String: String] {
            if let cached = trees[commit] { return cached }
            var files: [String: String] = [:]
            for line in try fixture.git("ls-tree", "-r", commit, "--", "rollouts").split(separator: "\n") {
                // <mode> SP <type> SP <object> TAB <path>
                let parts = line.split(separator: "\t", maxSplits: 1)
                let meta = parts[0].split(separator: " ")
                let path = String(parts[1])
                if TrackedPaths.isTracked(path) { files[path] = String(meta[2]) }
            }
            trees[commit] = files
            return files
        }
        func parents(_ commit: String) throws -> [String] {
            try fixture.git("rev-list", "--parents", "-n", "1", commit).split(separator: " ").dropFirst().map(
                String.init)
        }
        func mergedSide(_ merge: String) throws -> [String] {
            let ps = try parents(merge)
            return try fixture.git(["rev-list"] + ps.dropFirst() + ["--not", ps[0]]).split(separator: "\n").map(
                String.init)
        }
        let line = try fixture.git("rev-list", "--first-parent", tip).split(separator: "\n").map(String.init)
        func blob(_ path: String, at index: Int) throws -> String? {
            index < line.count ? try tree(line[index])[path] : nil
        }
        var result: [String: Answer] = [:]
        for (path, blob) in try tree(tip) {
            var index = 0
            while index + 1 < line.count, try tree(line[index + 1])[path] == blob { index += 1 }
            let merge = line[index]
            let isMerge = try parents(merge).count > 1
            var approval: String? = merge
            if isMerge {
                var found: [String] = []
                for side in try mergedSide(merge) {
                    let ps = try parents(side)
                    guard ps.count <= 1, try tree(side)[path] == blob else { continue }
                    if try ps.first.map({ try tree($0)[path] }) ?? nil != blob { found.append(side) }
                }
                approval = found.count == 1 ? found[0] : nil
            }
            var answer = Answer(mergePoint: merge, viaMerge: isMerge, approvalCommit: approval)
            if TrackedPaths.isPlan(path) {
                var creation = 0
                while creation + 1 < line.count, try tree(line[creation + 1])[path] != nil { creation += 1 }
                var makers: [String] = []
                for k in stride(from: creation, through: 0, by: -1) {
                    let commit = line[k]
                    let own = try tree(commit)[path]
                    guard try own != self.blobBefore(path, k, line, tree) || k == creation else { continue }
                    let ps = try parents(commit)
                    guard ps.count > 1 else {
                        makers.append(commit)
                        continue
                    }
                    for side in try mergedSide(commit) {
                        let sp = try parents(side)
                        let parentBlob = try sp.first.map { try tree($0)[path] } ?? nil
                        if try tree(side)[path] != parentBlob { makers.append(side) }
                    }
                    if try !ps.contains(where: { try tree($0)[path] == own }) { makers.append(commit) }
                }
                answer.makers = makers.sorted()
            }
            result[path] = answer
        }
        return result
    }

    private static func blobBefore(
        _ path: String, _ k: Int, _ line: [String],
        _ tree: (String) throws -> [String: String]
    ) throws -> String? {
        k + 1 < line.count ? try tree(line[k + 1])[path] : nil
    }

    /// The walk's answers in the oracle's shape.
    static func answers(_ index: HistoryIndex) -> [String: Answer] {
        var result: [String: Answer] = [:]
        for (path, evidence) in index.evidence where path.hasPrefix("rollouts/") {
            result[path] = Answer(
                mergePoint: evidence.mergePoint, viaMerge: evidence.viaMerge,
                approvalCommit: evidence.approvalCommit?.id)
        }
        for (path, history) in index.planHistories {
            result[path] = Answer(
                mergePoint: history.changeCommit, viaMerge: false, approvalCommit: nil,
                makers: history.makers.map(\.commit.id).sorted())
        }
        return result
    }

    /// The oracle's answers, with plan entries reduced to what the walk reports for plans.
    static func expected(_ oracle: [String: Answer]) -> [String: Answer] {
        oracle.mapValues { answer in
            guard answer.makers != nil else { return answer }
            return Answer(mergePoint: answer.mergePoint, viaMerge: false, approvalCommit: nil, makers: answer.makers)
        }
    }

    static func walk(
        _ repository: GitRepository, tip: ObjectID, tracked: [String: String],
        cache: WalkState?
    ) throws -> (HistoryIndex, HistoryWalker) {
        let walker = try HistoryWalker(repository: repository, cache: cache, policyRoot: nil)
        return (try walker.walk(to: tip, tracked: tracked), walker)
    }

    static func tracked(_ fixture: GitFixture, tip: String) throws -> [String: String] {
        var files: [String: String] = [:]
        for line in try fixture.git("ls-tree", "-r", tip, "--", "rollouts").split(separator: "\n") {
            let parts = line.split(separator: "\t", maxSplits: 1)
            let path = String(parts[1])
            if TrackedPaths.isTracked(path) { files[path] = String(parts[0].split(separator: " ")[2]) }
        }
        return files
    }

    /// Replay: a branch from an older commit that still has a since-removed approval file, merged with
    /// that file kept (a merge made by hand). Its approval commit is already on main, so the merged
    /// side has no commit that adds the file.
    static func replay(
        _ fixture: GitFixture, step: Int, removed: inout [String: String], rollouts: [String],
        author: GitFixture.Person
    ) throws {
        guard
            let (path, text) = removed.sorted(by: { $0.key < $1.key }).first(where: {
                rollouts.contains(String($0.key.split(separator: "/")[1]))
                    && !FileManager.default.fileExists(atPath: fixture.path + "/" + $0.key)
            })
        else { return }
        let old = try fixture.git("rev-list", "-n", "1", "main", "--", path).trimmingCharacters(
            in: .whitespacesAndNewlines)
        guard !old.isEmpty else { return }
        try fixture.git("checkout", "-q", "-b", "replay-\(step)", "\(old)^")
        try fixture.commitFiles(["notes/replay-\(step).txt": "z"], "Unrelated", author: author)
        try fixture.git("checkout", "-q", "main")
        try fixture.git("merge", "-q", "--no-ff", "--no-commit", "replay-\(step)", author: F.service)
        try fixture.write(path, text)
        try fixture.git("add", "-A")
        try fixture.commit("Merge replay-\(step)", author: F.service)
        removed[path] = nil
    }

    /// Grows a repository by `steps` random operations on main (some through branches).
    static func grow(
        _ fixture: GitFixture, steps: Int, random: inout Random, rollouts: inout [String],
        removed: inout [String: String]
    ) throws {
        let people = [F.dana, F.quinn, F.erin, F.pat, F.robin]
        func approvalFile(_ rollout: String) -> (String, String) {
            let person = random.pick(people)
            let phase = random.pick(["canary-10", "production"])
            let path = "rollouts/\(rollout)/approvals/\(phase)/\(person.email.prefix(4))-\(random.below(4)).json"
            return (
                path,
                F.approval(
                    rollout: rollout, phase: phase, role: "sre", approver: person.email,
                    plan: String(repeating: "0", count: 39) + String(random.below(10)))
            )
        }
        func existingApprovals() throws -> [String] {
            try fixture.git("ls-files", "rollouts").split(separator: "\n").map(String.init).filter {
                $0.contains("/approvals/")
            }
        }
        for _ in 0..<steps {
            let step = random.below(1_000_000)
            let author = random.pick(people)
            switch rollouts.isEmpty ? 0 : random.below(13) {
            case 0 where rollouts.count < 8:
                let name = "r\(rollouts.count)-\(random.below(1000))"
                rollouts.append(name)
                try fixture.commitFiles(
                    ["rollouts/\(name)/plan.json": F.plan(name: name)], "Add \(name)", author: author)
            case 1, 2:
                let name = random.pick(rollouts)
                try fixture.commitFiles(
                    ["rollouts/\(name)/plan.json": F.plan(name: name, description: "rev \(random.below(3))")],
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
                    try fixture.commitFiles(
                        [other: otherText], "Second approval on the branch", author: random.pick(people))
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
                    !FileManager.default.fileExists(atPath: fixture.path + "/" + path)
                else { continue }
                try fixture.commitFiles([path: text], "Re-add \(path)", author: author)
            case 11:
                try replay(fixture, step: step, removed: &removed, rollouts: rollouts, author: author)
            case 10 where rollouts.count > 2 && random.below(2) == 0:
                // Revert the last change of a plan (its content goes back to an earlier blob).
                let name = random.pick(rollouts)
                let path = "rollouts/\(name)/plan.json"
                let last = try fixture.git("rev-list", "-n", "1", "--first-parent", "main", "--", path)
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                guard !last.isEmpty, (try? fixture.git("revert", "--no-edit", last)) != nil else {
                    _ = try? fixture.git("revert", "--abort")
                    continue
                }
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
            return [
                "rollouts/\(name)/plan.json": plan ?? (same ? "{}\n" : "{\"name\": \"\(name)\"}\n"),
                "rollouts/\(name)/approvals/p/x.json": approval ?? (same ? "{\"x\": 1}\n" : "{\"x\": \"\(name)\"}\n"),
            ]
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
            (
                "edit first and last",
                {
                    try fixture.commitFiles(
                        folder("a", plan: "{\"v\": 3}\n").merging(folder("zz", plan: "{\"v\": 3}\n")) { $1 }, "4")
                }
            ),
            (
                "remove first",
                {
                    try fixture.remove("rollouts/a")
                    try fixture.commit("5")
                }
            ),
            (
                "remove last",
                {
                    try fixture.remove("rollouts/zz")
                    try fixture.commit("6")
                }
            ),
            ("add a new first", { try fixture.commitFiles(folder("0"), "7") }),
            ("add a new last", { try fixture.commitFiles(folder("zzz"), "8") }),
            ("re-add the old first, same bytes", { try fixture.commitFiles(folder("a", plan: "{\"v\": 3}\n"), "9") }),
            (
                "remove between identical neighbours",
                {
                    try fixture.remove("rollouts/d2")
                    try fixture.commit("10")
                }
            ),
            ("add it back identical", { try fixture.commitFiles(folder("d2"), "11") }),
            ("make it differ", { try fixture.commitFiles(folder("d2", approval: "{\"x\": 2}\n"), "12") }),
            ("make it identical again", { try fixture.commitFiles(folder("d2"), "13") }),
            ("a file among the folders", { try fixture.commitFiles(["rollouts/a.md": "x\n"], "14") }),
            ("outside rollouts", { try fixture.commitFiles(["docs/x.md": "x\n"], "15") }),
            (
                "a folder becomes a file",
                {
                    try fixture.remove("rollouts/b")
                    try fixture.commitFiles(["rollouts/b": "b\n"], "16")
                }
            ),
            (
                "and a folder again",
                {
                    try fixture.remove("rollouts/b")
                    try fixture.commitFiles(folder("b"), "17")
                }
            ),
            (
                "several at once",
                {
                    try fixture.remove("rollouts/0")
                    try fixture.remove("rollouts/a.md")
                    try fixture.commitFiles(
                        folder("a-1", plan: "{\"v\": 4}\n").merging(folder("a0", approval: "{\"v\": 4}\n")) { $1 }
                            .merging(folder("y")) { $1 }.merging(folder("zzz", plan: "{\"v\": 4}\n")) { $1 }, "18")
                }
            ),
            (
                "remove all but one",
                {
                    for name in try fixture.git("ls-tree", "--name-only", "HEAD", "rollouts/").split(separator: "\n")
                    where name != "rollouts/m" { try fixture.remove(String(name)) }
                    try fixture.commit("19")
                }
            ),
            ("and fill again", { try fixture.commitFiles(initial, "20") }),
        ]
        var cache: WalkState?
        for (label, step) in steps {
            try step()
            let tip = try fixture.head()
            let expected = Self.expected(try Self.oracle(fixture, tip: tip))
            let repository = try GitRepository(path: fixture.path)
            let tipID = try #require(ObjectID(hex: tip))
            let tracked = try Self.tracked(fixture, tip: tip)
            let (cold, _) = try Self.walk(repository, tip: tipID, tracked: tracked, cache: nil)
            let coldAnswers = Self.answers(cold)
            #expect(coldAnswers == expected, "\(label)")
            for (path, entry) in expected where coldAnswers[path] != entry {
                Issue.record("\(label) \(path): walk \(String(describing: coldAnswers[path])), git \(entry)")
            }
            let (warm, walker) = try Self.walk(repository, tip: tipID, tracked: tracked, cache: cache)
            #expect(Self.answers(warm) == expected, "\(label), with cache")
            cache = walker.savedState
        }
    }

    @Test func walkMatchesGitColdAndThroughTheCache() throws {
        let fixture = try GitFixture()
        try fixture.commitFiles(["policies/approvers.json": F.policy(identity: "author")], "Policies")
        var random = Random(state: 42)
        var rollouts: [String] = []
        var removed: [String: String] = [:]
        let cacheDir = try TemporaryDirectory()
        var cache: WalkState?
        var checkedPaths = 0
        var mergedIntroducers = 0
        var notFound = 0
        for round in 0..<12 {
            if round == 7 {
                // A force-push: main goes back three first-parent commits behind the cached tip.
                try fixture.git("reset", "-q", "--hard", "HEAD~3")
                rollouts = try fixture.git("ls-tree", "--name-only", "HEAD", "rollouts/").split(separator: "\n")
                    .map { String($0.split(separator: "/")[1]) }
            }
            try Self.grow(fixture, steps: 8, random: &random, rollouts: &rollouts, removed: &removed)
            if round % 3 == 2 {
                try Self.replay(
                    fixture, step: 1_000_000 + round, removed: &removed, rollouts: rollouts, author: F.mallory)
            }
            let tip = try fixture.head()
            let oracle = try Self.oracle(fixture, tip: tip)
            let expected = Self.expected(oracle)
            let repository = try GitRepository(path: fixture.path)
            let tipID = try #require(ObjectID(hex: tip))
            let tracked = try Self.tracked(fixture, tip: tip)
            #expect(Set(tracked.keys) == Set(expected.keys))

            let (cold, _) = try Self.walk(repository, tip: tipID, tracked: tracked, cache: nil)
            let coldAnswers = Self.answers(cold)
            #expect(coldAnswers == expected, "round \(round)")
            for (path, entry) in expected where coldAnswers[path] != entry {
                Issue.record("round \(round) \(path): walk \(String(describing: coldAnswers[path])), git \(entry)")
            }
            let (warm, walker) = try Self.walk(repository, tip: tipID, tracked: tracked, cache: cache)
            #expect(Self.answers(warm) == expected, "round \(round) with cache")
            if round == 7 { #expect(walker.statistics.cacheDiscarded) }
            if round > 0 && round != 7 { #expect(walker.statistics.usedCache, "round \(round)") }
            cache = walker.savedState
            checkedPaths += expected.count
            mergedIntroducers += oracle.values.filter { $0.viaMerge && $0.approvalCommit != nil }.count
            notFound += oracle.values.filter { $0.makers == nil && $0.approvalCommit == nil }.count

            // The full load agrees too, through the cache file and cold.
            let viaFile = try RepositoryReader.load(repository: repository, ref: nil, cacheFile: cacheDir.file("walk"))
            let viaFileAgain = try RepositoryReader.load(
                repository: repository, ref: nil, cacheFile: cacheDir.file("walk"))
            let coldLoad = try RepositoryReader.load(repository: repository, ref: nil, cacheFile: nil)
            #expect(viaFile.approvals == coldLoad.approvals)
            #expect(viaFileAgain.approvals == coldLoad.approvals)
            #expect(viaFileAgain.scanStatistics.usedCache && viaFileAgain.scanStatistics.commitsWalked == 0)
        }
        // The history exercised what it should.
        #expect(checkedPaths > 100)
        #expect(mergedIntroducers > 10)
        #expect(notFound > 0, "replayed approvals (no commit adds them on the merged side)")
        _ = cacheDir
    }
}
