import Foundation
import RolloutCore
import RolloutGit
import RolloutTestSupport
import Testing

/// The libgit2 reader against repositories made by the `git` program.
@Suite struct GitReaderTests {
    typealias F = RolloutFixtures

    /// A repository with a policy and one rollout on `main`.
    static func basicRepository(bare: Bool = false) throws -> GitFixture {
        let fixture = try GitFixture()
        try fixture.commitFiles(
            [
                "policies/approvers.json": F.policy(identity: "author"),
                "rollouts/exp-001/plan.json": F.plan(name: "exp-001"),
            ], "Add exp-001")
        return fixture
    }

    static func errorCode(_ body: () throws(GitError) -> Void) -> GitError.Code? {
        do {
            try body()
            return nil
        } catch {
            return error.code
        }
    }

    // MARK: Opening

    @Test func opensANonBareRepositoryAndListsCommittedFiles() throws {
        let fixture = try Self.basicRepository()
        let repository = try GitRepository(path: fixture.path)
        #expect(!repository.isBare)
        #expect(repository.workdir != nil)
        let head = try repository.head()
        #expect(head.description == (try fixture.head()))
        let files = try repository.listFiles(commit: head, under: ["rollouts", "policies"])
        #expect(files.map(\.path) == ["rollouts/exp-001/plan.json", "policies/approvers.json"])
        let plan = try #require(files.first)
        #expect(plan.kind == .blob)
        #expect(plan.objectID == (try fixture.blobID(of: "rollouts/exp-001/plan.json")))
        let bytes = try repository.readBlob(try #require(ObjectID(hex: plan.objectID)))
        #expect(String(decoding: bytes, as: UTF8.self) == F.plan(name: "exp-001"))
        #expect(plan.size == bytes.count)
    }

    @Test func opensABareCloneAndABareRepositoryPushedTo() throws {
        let source = try Self.basicRepository()
        let parent = try TemporaryDirectory()
        let clone = parent.file("clone.git")
        try runProgram("git", ["clone", "-q", "--bare", source.path, clone])
        let cloned = try GitRepository(path: clone)
        #expect(cloned.isBare)
        #expect(cloned.workdir == nil)
        #expect(try cloned.resolveCommit("main").description == (try source.head()))

        let pushed = try GitFixture(bare: true)
        try source.git("push", "-q", pushed.path, "main")
        let repository = try GitRepository(path: pushed.path)
        #expect(repository.isBare)
        let tip = try repository.resolveCommit("main")
        #expect(tip.description == (try source.head()))
        #expect(
            try repository.listFiles(commit: tip, under: ["rollouts"]).map(\.path) == ["rollouts/exp-001/plan.json"])
        // The default ref works on a bare repository too.
        let resolved = try RepositoryReader.resolve(repository: repository, ref: nil)
        #expect(resolved.ref == "main")
        #expect(resolved.commit == tip)
    }

    @Test func pathThatDoesNotExist() throws {
        let parent = try TemporaryDirectory()
        let code = Self.errorCode { () throws(GitError) in _ = try GitRepository(path: parent.file("missing")) }
        #expect(code == .pathNotFound)
    }

    @Test func folderThatIsNotARepository() throws {
        let folder = try TemporaryDirectory()
        #expect(Self.errorCode { () throws(GitError) in _ = try GitRepository(path: folder.path) } == .notARepository)
        // A plain file is not a repository either.
        try Data("x".utf8).write(to: URL(fileURLWithPath: folder.file("file")))
        #expect(
            Self.errorCode { () throws(GitError) in _ = try GitRepository(path: folder.file("file")) }
                == .notARepository)
        // A subfolder of a repository is not searched upwards.
        let fixture = try Self.basicRepository()
        #expect(
            Self.errorCode { () throws(GitError) in _ = try GitRepository(path: fixture.path + "/rollouts") }
                == .notARepository)
    }

    @Test func emptyRepository() throws {
        for bare in [false, true] {
            let fixture = try GitFixture(bare: bare)
            let repository = try GitRepository(path: fixture.path)
            #expect(repository.isEmpty)
            #expect(Self.errorCode { () throws(GitError) in _ = try repository.head() } == .emptyRepository)
            #expect(
                Self.errorCode { () throws(GitError) in _ = try repository.resolveCommit("main") } == .emptyRepository)
            #expect(
                Self.errorCode { () throws(GitError) in
                    _ = try RepositoryReader.resolve(repository: repository, ref: nil)
                } == .emptyRepository)
        }
    }

    // MARK: Refs

    @Test func branchesTagsAndCommitIDs() throws {
        let fixture = try Self.basicRepository()
        let first = try fixture.head()
        try fixture.git("tag", "light")
        try fixture.git("tag", "-a", "-m", "annotated tag", "v1.0")
        try fixture.git("checkout", "-q", "-b", "feature")
        let second = try fixture.commitFiles(["rollouts/exp-002/plan.json": F.plan(name: "exp-002")], "Add exp-002")
        try fixture.git("checkout", "-q", "main")

        let repository = try GitRepository(path: fixture.path)
        #expect(try repository.resolveCommit("main").description == first)
        #expect(try repository.resolveCommit("feature").description == second)
        #expect(try repository.resolveCommit("refs/heads/feature").description == second)
        // SPEC §4.0 rule 1 [r3]: a tag is read by its full name only; a short name is a branch.
        #expect(try repository.resolveCommit("refs/tags/light").description == first)
        #expect(throws: GitError.self) { try repository.resolveCommit("light") }
        // An annotated tag is peeled to its commit, not the tag object.
        let tagObject = try fixture.git("rev-parse", "v1.0")
        #expect(tagObject != first)
        #expect(try repository.resolveCommit("refs/tags/v1.0").description == first)
        // Commit ids, full and abbreviated; a detached HEAD.
        #expect(try repository.resolveCommit(second).description == second)
        #expect(try repository.resolveCommit(String(second.prefix(7))).description == second)
        try fixture.git("checkout", "-q", "--detach", second)
        #expect(try repository.head().description == second)
        #expect(
            try repository.listFiles(
                commit: try repository.resolveCommit(String(second.prefix(10))), under: ["rollouts"]
            )
            .map(\.path) == ["rollouts/exp-001/plan.json", "rollouts/exp-002/plan.json"])
    }

    @Test func unknownRef() throws {
        let fixture = try Self.basicRepository()
        let repository = try GitRepository(path: fixture.path)
        for ref in ["nope", "refs/heads/nope", "0123456789abcdef0123456789abcdef01234567", "main~5"] {
            #expect(
                Self.errorCode { () throws(GitError) in _ = try repository.resolveCommit(ref) } == .unknownRef, "\(ref)"
            )
        }
        // A tag on a tree does not name a commit.
        let tree = try fixture.git("rev-parse", "HEAD^{tree}")
        try fixture.git("tag", "tree-tag", tree)
        #expect(Self.errorCode { () throws(GitError) in _ = try repository.resolveCommit("tree-tag") } == .unknownRef)
    }

    @Test func defaultRefIsTheProtectedBranchWhenItExists() throws {
        let fixture = try Self.basicRepository()
        let main = try fixture.head()
        try fixture.git("checkout", "-q", "-b", "work")
        let work = try fixture.commitFiles(["rollouts/exp-002/plan.json": F.plan(name: "exp-002")], "WIP")
        let repository = try GitRepository(path: fixture.path)
        // HEAD is on `work`, approvers.json at HEAD says main: main is read.
        var resolved = try RepositoryReader.resolve(repository: repository, ref: nil)
        #expect(resolved.ref == "main")
        #expect(resolved.commit.description == main)
        // An explicit ref wins.
        resolved = try RepositoryReader.resolve(repository: repository, ref: "work")
        #expect(resolved.ref == "work")
        #expect(resolved.commit.description == work)
        // protectedBranch names a branch that does not exist: HEAD.
        let release = try fixture.commitFiles(
            ["policies/approvers.json": F.policy(identity: "author", protectedBranch: "release")],
            "Protect release")
        resolved = try RepositoryReader.resolve(repository: repository, ref: nil)
        #expect(resolved.ref == "HEAD")
        #expect(resolved.commit.description == release)
        // No approvers.json at HEAD: HEAD.
        try fixture.git("checkout", "-q", "--orphan", "bare-bones")
        try fixture.git("rm", "-q", "-r", "--cached", ".")
        try FileManager.default.removeItem(atPath: fixture.path + "/policies")
        let orphan = try fixture.commitFiles(["rollouts/exp-003/plan.json": F.plan(name: "exp-003")], "Orphan")
        resolved = try RepositoryReader.resolve(repository: repository, ref: nil)
        #expect(resolved.ref == "HEAD")
        #expect(resolved.commit.description == orphan)
    }

    // MARK: Trees

    @Test func workTreeAndIndexAreNeverRead() throws {
        let fixture = try Self.basicRepository()
        // Not committed: a new plan (staged), and an edit to the committed plan (unstaged).
        try fixture.write("rollouts/exp-002/plan.json", F.plan(name: "exp-002"))
        try fixture.git("add", "rollouts/exp-002/plan.json")
        try fixture.write("rollouts/exp-001/plan.json", F.plan(name: "exp-001", description: "edited"))
        let repository = try GitRepository(path: fixture.path)
        let files = try repository.listFiles(commit: try repository.head(), under: ["rollouts"])
        #expect(files.map(\.path) == ["rollouts/exp-001/plan.json"])
        let bytes = try repository.readBlob(try #require(ObjectID(hex: files[0].objectID)))
        #expect(String(decoding: bytes, as: UTF8.self) == F.plan(name: "exp-001"))
        let snapshot = try RepositoryReader.snapshot(repository: repository, commit: try repository.head())
        #expect(snapshot.rollouts.map(\.name) == ["exp-001"])
        #expect(snapshot.rollouts.first?.plan?.description == "test rollout")
    }

    @Test func symlinksAndSubmodulesAreListedWithTheirKinds() throws {
        let fixture = try Self.basicRepository()
        let target = try fixture.head()
        try FileManager.default.createDirectory(
            atPath: fixture.path + "/rollouts/exp-001/approvals/staging",
            withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            atPath: fixture.path + "/rollouts/exp-001/approvals/staging/link.json",
            withDestinationPath: "../../plan.json")
        try fixture.git(
            "update-index", "--add", "--cacheinfo", "160000,\(target),rollouts/exp-001/approvals/staging/sub.json")
        try fixture.git("add", "rollouts/exp-001/approvals/staging/link.json")
        try fixture.git("commit", "-q", "-m", "Link and submodule")
        let repository = try GitRepository(path: fixture.path)
        let files = try repository.listFiles(commit: try repository.head(), under: ["rollouts"])
        let byPath = Dictionary(uniqueKeysWithValues: files.map { ($0.path, $0) })
        #expect(byPath["rollouts/exp-001/approvals/staging/link.json"]?.kind == .symlink)
        #expect(byPath["rollouts/exp-001/approvals/staging/sub.json"]?.kind == .submodule)
        #expect(byPath["rollouts/exp-001/approvals/staging/sub.json"]?.objectID == target)
        #expect(byPath["rollouts/exp-001/plan.json"]?.kind == .blob)
        let messages = try RepositoryReader.snapshot(repository: repository, commit: try repository.head())
            .allDiagnostics.map(\.description)
        #expect(
            messages.contains(
                "rollouts/exp-001/approvals/staging/sub.json:1:1: is a submodule; rolloutctl reads only regular files"))
        #expect(
            messages.contains(
                "rollouts/exp-001/approvals/staging/link.json:1:1: is a symbolic link; rolloutctl reads only "
                    + "regular files"
            ))
    }

    @Test func largeBlobSizeComesFromTheHeaderWithoutReadingIt() throws {
        let fixture = try Self.basicRepository()
        let size = 3 * (1 << 20) + 17
        try fixture.write(
            "rollouts/exp-001/approvals/staging/big.json", Data(repeating: UInt8(ascii: "a"), count: size))
        let commit = try fixture.commit("Big file")
        try fixture.git("gc", "-q")  // packed objects too
        let repository = try GitRepository(path: fixture.path)
        let files = try repository.listFiles(
            commit: try #require(ObjectID(hex: commit)), under: ["rollouts", "policies"])
        let big = try #require(files.first { $0.path.hasSuffix("big.json") })
        #expect(big.size == size)
        var read: [String] = []
        let snapshot = RepositoryLoader.load(files: files) { file in
            read.append(file.path)
            return try repository.readBlob(ObjectID(hex: file.objectID)!)
        }
        #expect(!read.contains(big.path))
        #expect(read.contains("rollouts/exp-001/plan.json"))
        #expect(
            snapshot.allDiagnostics.map(\.description)
                == ["rollouts/exp-001/approvals/staging/big.json:1:1: is \(size) bytes, over the 1 MiB limit"])
    }

    // MARK: Ownership

    /// libgit2 refuses a repository whose folder another user owns, even for root. 1.5.1 reports it as
    /// GIT_ENOTFOUND ("config value 'safe.directory' was not found"), which used to read as "not a repository".
    @Test(.enabled(if: getuid() == 0, "needs root to chown the repository"))
    func repositoryOwnedByAnotherUser() throws {
        let fixture = try Self.basicRepository()
        try runProgram("chown", ["-R", "nobody", fixture.path])
        defer { _ = try? runProgram("chown", ["-R", "root", fixture.path]) }
        do {
            _ = try GitRepository(path: fixture.path)
            Issue.record("expected GIT_EOWNER")
        } catch {
            #expect(error.code == .ownedByAnotherUser)
            #expect(error.message.contains("safe.directory"))
        }
    }

    // MARK: Fetch

    @Test func fetchFromALocalPathUpdatesOnlyRemoteTrackingRefs() throws {
        let upstream = try Self.basicRepository()
        let parent = try TemporaryDirectory()
        let clonePath = parent.file("mirror.git")
        try runProgram("git", ["clone", "-q", "--bare", upstream.path, clonePath])
        let before = try upstream.head()
        let after = try upstream.commitFiles(["rollouts/exp-002/plan.json": F.plan(name: "exp-002")], "Add exp-002")

        let repository = try GitRepository(path: clonePath)
        // By URL/path: an anonymous remote.
        let ref = try repository.fetch(remote: upstream.path, branch: "main")
        #expect(ref == "refs/remotes/rolloutctl/main")
        #expect(try repository.resolveCommit(ref).description == after)
        #expect(try repository.resolveCommit("refs/heads/main").description == before)  // local branch untouched

        // By a configured remote's name.
        let third = try upstream.commitFiles(["rollouts/exp-003/plan.json": F.plan(name: "exp-003")], "Add exp-003")
        try runProgram("git", ["-C", clonePath, "remote", "add", "upstream", upstream.path])
        let named = try repository.fetch(remote: "upstream", branch: "main")
        #expect(named == "refs/remotes/upstream/main")
        #expect(try repository.resolveCommit(named).description == third)
        #expect(try repository.resolveCommit("main").description == before)

        // A branch the remote does not have, a remote that does not exist.
        #expect(
            Self.errorCode { () throws(GitError) in _ = try repository.fetch(remote: "upstream", branch: "nope") }
                == .fetchFailed)
        #expect(
            Self.errorCode { () throws(GitError) in
                _ = try repository.fetch(remote: parent.file("nowhere"), branch: "main")
            }
                == .fetchFailed)
    }
}
