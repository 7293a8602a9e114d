import Foundation
import RolloutCore
import RolloutGit
import RolloutTestSupport
import Testing

/// `GitRepository.mergeInMemory` (SPEC §6.1 [r3]) against `git merge --no-ff`, the oracle: the same tree and
/// parents, read through the same handle, while the repository on disk stays as it was.
@Suite struct InMemoryMergeTests {
    typealias F = RolloutFixtures

    /// main and a branch that both change the plan (different hunks: a real three-way content merge) and each
    /// add files of their own.
    static func divergedRepository() throws -> GitFixture {
        let fixture = try GitFixture()
        let plan = F.plan(name: "exp-001")
        try fixture.commitFiles(
            ["policies/approvers.json": F.policy(identity: "author"), "rollouts/exp-001/plan.json": plan], "Add exp-001"
        )
        try fixture.git("switch", "-q", "-c", "feature")
        try fixture.commitFiles(
            [
                "rollouts/exp-001/plan.json": plan.replacingOccurrences(
                    of: "\"coverage\": 10,", with: "\"coverage\": 20,"),
                "rollouts/exp-001/approvals/canary-10/sre.json": "{}\n",
            ], "Feature side", author: F.dana)
        try fixture.git("switch", "-q", "main")
        try fixture.commitFiles(
            [
                "rollouts/exp-001/plan.json": plan.replacingOccurrences(
                    of: "\"description\": \"test rollout\"", with: "\"description\": \"main side\""),
                "rollouts/exp-002/plan.json": F.plan(name: "exp-002"),
            ], "Main side")
        return fixture
    }

    @Test func theMergeIsGitsNoFastForwardMergeAndLivesOnlyInMemory() throws {
        let fixture = try Self.divergedRepository()
        let repository = try GitRepository(path: fixture.path)
        let base = try repository.resolveCommit("main")
        let head = try repository.resolveCommit("feature")
        let objectsBefore = try runProgram("git", ["-C", fixture.path, "count-objects", "-v"])
        let refsBefore = try fixture.git("for-each-ref", "--format=%(refname) %(objectname)")

        let merge = try repository.mergeInMemory(
            base: base, head: head, time: Date(timeIntervalSince1970: 1_800_000_000))
        #expect(!merge.alreadyMerged)
        // Read through the same handle: the merged plan holds both sides' hunks.
        let planBlob = try #require(try repository.blobID(atPath: "rollouts/exp-001/plan.json", inCommit: merge.commit))
        let plan = String(decoding: try repository.readBlob(planBlob), as: UTF8.self)
        #expect(plan.contains("\"coverage\": 20,") && plan.contains("\"description\": \"main side\""))
        let files = try repository.listFiles(commit: merge.commit, under: RepositoryLayout.folders).map(\.path)
        #expect(files.contains("rollouts/exp-002/plan.json"))
        #expect(files.contains("rollouts/exp-001/approvals/canary-10/sre.json"))
        #expect(try repository.isOnFirstParentLine(base, of: merge.commit))
        let facts = try repository.commitFacts(merge.commit)
        #expect(facts.authorEmail == GitRepository.mergeIdentity.email)

        // Nothing reached the disk: git cannot see the merge, and its objects and refs are as they were.
        #expect(throws: FixtureError.self) { try fixture.git("cat-file", "-e", merge.commit.description) }
        #expect(try runProgram("git", ["-C", fixture.path, "count-objects", "-v"]) == objectsBefore)
        #expect(try fixture.git("for-each-ref", "--format=%(refname) %(objectname)") == refsBefore)

        // The oracle: git's own `merge --no-ff` makes the same tree with the same parents.
        try fixture.git("merge", "-q", "--no-ff", "-m", "Merge feature", "feature")
        #expect(
            try fixture.git("rev-parse", "HEAD^{tree}") == (try repository.treeID(ofCommit: merge.commit)).description)
        #expect(try fixture.git("rev-parse", "HEAD^1") == base.description)
        #expect(try fixture.git("rev-parse", "HEAD^2") == head.description)
    }

    @Test func aConflictNamesItsPathsAndABranchAlreadyMergedChangesNothing() throws {
        let fixture = try GitFixture()
        try fixture.commitFiles(["rollouts/a/plan.json": "1\n", "policies/approvers.json": "{}\n"], "Start")
        try fixture.git("switch", "-q", "-c", "theirs")
        try fixture.commitFiles(["rollouts/a/plan.json": "2\n", "policies/approvers.json": "{\"b\": 1}\n"], "Theirs")
        try fixture.git("switch", "-q", "main")
        try fixture.commitFiles(["rollouts/a/plan.json": "3\n", "policies/approvers.json": "{\"c\": 1}\n"], "Ours")
        let repository = try GitRepository(path: fixture.path)
        let base = try repository.resolveCommit("main")
        let theirs = try repository.resolveCommit("theirs")
        do {
            _ = try repository.mergeInMemory(base: base, head: theirs, time: Date())
            Issue.record("a conflicting merge must fail")
        } catch let conflict as MergeConflict {
            #expect(conflict.paths == ["policies/approvers.json", "rollouts/a/plan.json"])
            #expect(conflict.description.contains("conflicts in policies/approvers.json, rollouts/a/plan.json"))
        }
        // A head the base already contains: `git merge` would make nothing; the tip stays the base.
        let start = try repository.resolveCommit("main~1")
        let merged = try repository.mergeInMemory(base: base, head: start, time: Date())
        #expect(merged.alreadyMerged && merged.commit == base)
    }
}
