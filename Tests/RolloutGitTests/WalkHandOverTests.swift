import Foundation
import RolloutCore
import RolloutTestSupport
import Testing

@testable import RolloutGit

/// What the history walk's cache hands over to the next run (issue 22): the tip's rollout folders as decoded
/// (an unchanged folder is not read again, and the snapshot equals a cold one), the first-parent root (so
/// that a run does not walk the whole line again to learn which repository it reads, SPEC §5.10), and the
/// set of seen commits, read as a sorted array instead of being hashed again. Format changes bump the
/// version: an older file is rebuilt once.
@Suite struct WalkHandOverTests {
    typealias F = RolloutFixtures

    /// git's own answer: the oldest commit of HEAD's first-parent line.
    static func gitRoot(_ fixture: GitFixture) throws -> ObjectID {
        let lines = try fixture.git("rev-list", "--first-parent", "HEAD").split(separator: "\n")
        let last = try #require(lines.last)
        return try #require(ObjectID(hex: String(last)))
    }

    static func expectSame(_ warm: LoadedRepository, _ cold: LoadedRepository, _ label: String) {
        #expect(warm.snapshot.rollouts == cold.snapshot.rollouts, "\(label): rollouts")
        #expect(warm.snapshot.policyDiagnostics == cold.snapshot.policyDiagnostics, "\(label): policy diagnostics")
        #expect(warm.snapshot.policyApprovals == cold.snapshot.policyApprovals, "\(label): policy approvals")
        #expect(warm.snapshot.policySet.digest == cold.snapshot.policySet.digest, "\(label): policy digest")
        #expect(warm.approvals == cold.approvals, "\(label): approvals")
        #expect(warm.revision == cold.revision, "\(label): revision")
    }

    /// Every load through the cache equals a cold load of the same tip, while only changed folders are read:
    /// edits, a flag driven by two rollouts (and freed again: a kept folder is kept as decoded alone), a stray
    /// file, an invalid plan, a removed rollout, a pending policy proposal and a policy in force that changes
    /// what plans may name.
    @Test func keptFoldersGiveTheColdSnapshotAndOnlyChangedFoldersAreRead() throws {
        let repo = try ApprovalScanTests.busyRepository()
        let fixture = repo.fixture
        let cacheDir = try TemporaryDirectory()
        let cache = cacheDir.file("walk")
        var step = 0
        func check(read expected: Int?, _ label: String) throws {
            step += 1
            let warm = try repo.load(cacheFile: cache)
            let cold = try repo.load()
            Self.expectSame(warm, cold, "step \(step), \(label)")
            if let expected {
                #expect(warm.scanStatistics.foldersRead == expected, "step \(step), \(label)")
            }
        }
        let first = try repo.load(cacheFile: cache)
        #expect(first.scanStatistics.foldersRead == 6)
        try check(read: 0, "no change")
        try fixture.commitFiles(["rollouts/other-1/plan.json": F.plan(name: "other-1", description: "edited")], "Edit")
        try check(read: 1, "one plan edited")
        try fixture.commitFiles(
            [
                "rollouts/other-2/plan.json": F.plan(name: "other-2", flag: "shared"),
                "rollouts/dup/plan.json": F.plan(name: "dup", flag: "shared"),
            ], "Two rollouts, one flag")
        try check(read: 2, "one flag, two rollouts")
        #expect(try repo.load(cacheFile: cache).snapshot.rollout(named: "other-2")?.plan == nil)
        try fixture.commitFiles(["rollouts/dup/plan.json": F.plan(name: "dup", flag: "own")], "Free the flag")
        try check(read: 1, "the flag freed")
        #expect(try repo.load(cacheFile: cache).snapshot.rollout(named: "other-2")?.plan != nil)
        try fixture.commitFiles(["rollouts/README.md": "stray", "rollouts/other-3/plan.json": "{ not json"], "Bad")
        try check(read: 1, "a stray file and an invalid plan")
        try fixture.git("rm", "-q", "-r", "rollouts/other-4")
        _ = try fixture.commit("Remove other-4")
        try check(read: 0, "a rollout removed")
        // A proposal (pending: policy approvals missing) that drops the role sre: plans keep being judged by
        // the policy in force, kept folders too.
        var roles = F.defaultRoles
        roles["sre"] = nil
        try fixture.commitFiles(["policies/approvers.json": F.policy(roles: roles)], "Propose: no sre")
        try check(read: nil, "a pending proposal")
        let pending = try repo.load(cacheFile: cache)
        #expect(pending.policy.pending != nil)
        #expect(pending.snapshot.rollouts.contains { $0.plan != nil })
    }

    @Test func theCacheKeepsTheFirstParentRootGitFinds() throws {
        let repo = try ApprovalScanTests.busyRepository()
        let cacheDir = try TemporaryDirectory()
        let cache = cacheDir.file("walk")
        let repository = try GitRepository(path: repo.fixture.path)
        _ = try RepositoryReader.load(repository: repository, ref: nil, cacheFile: cache)
        let line = try #require(HistoryCache.readLine(path: cache, repository: repository.path))
        #expect(line.tip.description == (try repo.fixture.head()))
        #expect(line.root == (try Self.gitRoot(repo.fixture)))
        // Resumed walks keep it.
        try repo.fixture.commitFiles(["README.md": "more"], "Docs")
        _ = try RepositoryReader.load(repository: repository, ref: nil, cacheFile: cache)
        let grown = try #require(HistoryCache.readLine(path: cache, repository: repository.path))
        #expect(grown.tip.description == (try repo.fixture.head()))
        #expect(grown.root == line.root)
        // Another repository's path: not this repository's cache.
        #expect(HistoryCache.readLine(path: cache, repository: repository.path + "-other") == nil)
    }

    @Test func theRootIsHandedOverOnlyForATipOnTheCachedLine() throws {
        let repo = try ApprovalScanTests.busyRepository()
        let fixture = repo.fixture
        let repository = try GitRepository(path: fixture.path)
        let cacheDir = try TemporaryDirectory()
        let cache = cacheDir.file("walk")
        let older = try #require(ObjectID(hex: try fixture.git("rev-parse", "HEAD~2")))
        _ = try RepositoryReader.load(repository: repository, ref: nil, cacheFile: cache)
        let trueRoot = try Self.gitRoot(fixture)
        let tip = try #require(ObjectID(hex: try fixture.head()))
        #expect(try RepositoryReader.firstParentRoot(repository: repository, of: tip, cacheFile: cache) == trueRoot)
        #expect(try RepositoryReader.firstParentRoot(repository: repository, of: tip, cacheFile: nil) == trueRoot)

        // A cache naming another root (as a marker): believed for tips whose line holds the cached tip,
        // so the run did not walk to the root; not for a tip behind it, whose line is walked to its root.
        var state = try #require(HistoryCache.read(path: cache, repository: repository.path))
        state.firstParentRoot = older
        HistoryCache.write(state, path: cache, repository: repository.path)
        #expect(try RepositoryReader.firstParentRoot(repository: repository, of: tip, cacheFile: cache) == older)
        try fixture.commitFiles(["README.md": "grown"], "Docs")
        let grown = try #require(ObjectID(hex: try fixture.head()))
        #expect(try RepositoryReader.firstParentRoot(repository: repository, of: grown, cacheFile: cache) == older)
        #expect(try RepositoryReader.firstParentRoot(repository: repository, of: older, cacheFile: cache) == trueRoot)

        // A rewritten history (main reset behind the cached tip, new commits on top): walked to its root.
        try fixture.git("reset", "-q", "--hard", older.description)
        try fixture.commitFiles(["README.md": "rewritten"], "Rewrite")
        let rewritten = try #require(ObjectID(hex: try fixture.head()))
        #expect(
            try RepositoryReader.firstParentRoot(repository: repository, of: rewritten, cacheFile: cache) == trueRoot)
    }

    @Test func aCacheOfTheFormerFormatIsRebuiltOnce() throws {
        let repo = try ApprovalScanTests.busyRepository()
        let cacheDir = try TemporaryDirectory()
        let cache = cacheDir.file("walk")
        let cold = try repo.load(cacheFile: cache)
        // The same file as format 2 wrote it (version 2 in the header and the payload): not read.
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: cache)))
        #expect(WalkState.formatVersion == 3)
        withUnsafeBytes(of: UInt32(2).littleEndian) { bytes.replaceSubrange(8..<12, with: $0) }
        try Data(bytes).write(to: URL(fileURLWithPath: cache))
        #expect(HistoryCache.read(path: cache, repository: try GitRepository(path: repo.fixture.path).path) == nil)
        let rebuilt = try repo.load(cacheFile: cache)
        #expect(!rebuilt.scanStatistics.usedCache)
        #expect(rebuilt.scanStatistics.commitsWalked == cold.scanStatistics.commitsWalked)
        #expect(rebuilt.approvals == cold.approvals)
        let warm = try repo.load(cacheFile: cache)
        #expect(warm.scanStatistics.usedCache && warm.scanStatistics.commitsWalked == 0)
        #expect(warm.approvals == cold.approvals)
    }

    static func id(_ byte: UInt8, _ last: UInt8 = 0) -> ObjectID {
        ObjectID(hex: String(format: "%02x", byte) + String(repeating: "0", count: 36) + String(format: "%02x", last))!
    }

    @Test func theSeenSetReadsASortedArrayAndAddsToIt() throws {
        let sorted = [Self.id(1), Self.id(1, 9), Self.id(7), Self.id(200)]
        #expect(SeenSet(sorted: [Self.id(7), Self.id(1)]) == nil, "not sorted")
        #expect(SeenSet(sorted: [Self.id(1), Self.id(1)]) == nil, "a duplicate")
        var seen = try #require(SeenSet(sorted: sorted))
        for id in sorted { #expect(seen.contains(id)) }
        #expect(!seen.contains(Self.id(0)) && !seen.contains(Self.id(8)) && !seen.contains(Self.id(255)))
        seen.insert(Self.id(8))
        seen.insert(Self.id(0))
        seen.insert(Self.id(7))  // there already
        #expect(seen.count == 6)
        #expect(seen.contains(Self.id(8)) && seen.contains(Self.id(0)))
        #expect(seen.sorted() == [Self.id(0), Self.id(1), Self.id(1, 9), Self.id(7), Self.id(8), Self.id(200)])
    }
}
