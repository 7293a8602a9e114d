import Foundation
import Logging
import RolloutAdapters
import RolloutCore
import RolloutGit
import RolloutTestSupport
import Testing

@testable import RolloutKit

/// `reconcile --fetch REMOTE`: the protected branch is fetched through libgit2 before reading.
@Suite struct FetchTests {
    @Test func reconcileSeesCommitsPushedToTheRemote() async throws {
        let upstream = try RolloutWorld()
        try upstream.seed()
        let origin = try TemporaryDirectory(prefix: "rolloutctl-origin")
        try runProgram("git", ["clone", "-q", "--bare", upstream.repo.path, origin.path + "/repo.git"])
        let local = try TemporaryDirectory(prefix: "rolloutctl-local")
        try runProgram("git", ["clone", "-q", origin.path + "/repo.git", local.path + "/work"])

        // A new rollout lands on the remote after the local clone was made.
        try upstream.repo.commitFiles(
            ["rollouts/exp-002/plan.json": RolloutWorld.exp001Plan(name: "exp-002", flag: "other_flag")],
            "Add exp-002", author: RolloutWorld.robin)
        try upstream.repo.git("push", "-q", origin.path + "/repo.git", "main")

        let state = try TemporaryDirectory(prefix: "rolloutctl-fetch-state")
        _ = try SQLiteStateStore.create(
            path: state.file("state.sqlite"),
            installation: Installation(repositoryRoot: try upstream.repositoryRoot()))
        func run(fetch: String?) async throws -> RunReport {
            let settings = RunSettings(
                repositoryPath: local.path + "/work", now: upstream.start,
                statePath: state.file("state.sqlite"), mode: .reconcile(dryRun: false),
                fetchRemote: fetch)
            let ports = RunPorts(
                flags: FileFlagStore(path: state.file("flags.json")), metrics: nil,
                notifier: upstream.notifier, logger: Logger(label: "test"))
            return try await Reconciler(settings: settings, ports: ports).run()
        }
        let stale = try await run(fetch: nil)
        #expect(stale.rollouts.map(\.name) == ["exp-001-autosave"])

        let fresh = try await run(fetch: "origin")
        #expect(fresh.ref == "refs/remotes/origin/main")
        #expect(fresh.rollouts.map(\.name) == ["exp-001-autosave", "exp-002"])
        #expect(fresh.revision == (try upstream.repo.head()))
        // The local branch and work tree are untouched.
        let localHead = try runProgram("git", ["-C", local.path + "/work", "rev-parse", "main"])
        #expect(localHead.trimmingCharacters(in: .whitespacesAndNewlines) != fresh.revision)

        // A path works as the remote too.
        let byPath = try await run(fetch: origin.path + "/repo.git")
        #expect(byPath.rollouts.count == 2)
    }
}

@Suite struct DefaultRefTests {
    @Test func bareRepositoryWhoseHEADNamesAnUnbornBranchFallsBackToMain() throws {
        let world = try RolloutWorld()
        try world.seed()
        let bare = try TemporaryDirectory(prefix: "rolloutctl-bare")
        try runProgram("git", ["init", "-q", "--bare", "-b", "master", bare.path])
        try world.repo.git("push", "-q", bare.path, "main")
        let repository = try GitRepository(path: bare.path)
        let (ref, commit) = try RepositoryReader.resolve(repository: repository, ref: nil)
        #expect(ref == "main")
        #expect(commit.description == (try world.repo.head()))
    }
}
