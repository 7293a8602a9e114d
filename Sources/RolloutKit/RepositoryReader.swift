import Foundation
import RolloutCore
import RolloutGit
import RolloutAdapters

/// A rollout repository read at one commit: files validated, approvals evaluated.
public struct LoadedRepository: Sendable {
    /// The ref as given or defaulted (`main`, `HEAD`, a tag, a commit id).
    public var ref: String
    /// The commit id the ref resolved to.
    public var revision: String
    public var snapshot: RepositorySnapshot
    /// Approval statuses by rollout name.
    public var approvals: [String: [ApprovalStatus]]
    public var scanStatistics: ScanStatistics
    /// Where the load's time went.
    public var timings = LoadTimings()
}

/// The phases of one repository load, timed (for `debug scan` and the benchmark).
public struct LoadTimings: Sendable {
    /// Resolving the ref, listing the tip's `rollouts/` and `policies/`, reading and decoding them.
    public var snapshot: Duration = .zero
    /// Reading the history scan cache file.
    public var cacheRead: Duration = .zero
    /// The history walk and reading the facts (author, signature) of the commits found.
    public var historyScan: Duration = .zero
    /// Rewriting the cache file (when the scan changed it).
    public var cacheWrite: Duration = .zero
    /// Evaluating approval rules (signatures checked) over the scan's evidence.
    public var evaluate: Duration = .zero

    /// The approval history scan proper: cache read + history scan + cache write.
    public var approvalScan: Duration { cacheRead + historyScan + cacheWrite }
}

/// Reads a rollout repository through libgit2 (never the work tree, never `git`).
public enum RepositoryReader {
    static let folders = ["rollouts", "policies"]

    /// Opens the repository and resolves the ref: the given one, else `protectedBranch` from
    /// `policies/approvers.json` at HEAD when that branch exists, else HEAD.
    public static func resolve(repository: GitRepository, ref: String?) throws(GitError) -> (ref: String, commit: ObjectID) {
        if let ref { return (ref, try repository.resolveCommit(ref)) }
        let head: ObjectID
        do {
            head = try repository.head()
        } catch let error where error.code == .unknownRef {
            // HEAD names a branch with no commits (a bare repository whose HEAD says `master` while
            // only `main` was pushed): fall back to the usual protected branch names.
            for branch in ["main", "master"] where repository.hasBranch(branch) {
                return (branch, try repository.resolveCommit(branch))
            }
            throw error
        }
        if let branch = protectedBranch(repository: repository, at: head), repository.hasBranch(branch) {
            return (branch, try repository.resolveCommit(branch))
        }
        return ("HEAD", head)
    }

    /// `protectedBranch` from `policies/approvers.json` at a commit, when it can be read.
    public static func protectedBranch(repository: GitRepository, at commit: ObjectID) -> String? {
        guard let blob = try? repository.blobID(atPath: ApproversPolicy.path, inCommit: commit),
              let bytes = try? repository.readBlob(blob),
              let json = try? JSONParser.parse(bytes),
              case .object(let members) = json.kind,
              let member = members.first(where: { $0.key == "protectedBranch" }),
              case .string(let branch) = member.value.kind else { return nil }
        return branch
    }

    /// Lists and decodes `rollouts/` and `policies/` of a commit.
    public static func snapshot(repository: GitRepository, commit: ObjectID) throws(GitError) -> RepositorySnapshot {
        let files = try repository.listFiles(commit: commit, under: folders)
        return RepositoryLoader.load(files: files) { file in
            guard let id = ObjectID(hex: file.objectID) else { throw GitError(.objectNotFound, "bad object id \(file.objectID)") }
            return try repository.readBlob(id)
        }
    }

    /// Reads everything and evaluates approvals, scanning history incrementally with a cache file.
    public static func load(repository: GitRepository, ref: String?, cacheFile: String?) throws(GitError) -> LoadedRepository {
        let clock = ContinuousClock()
        var timings = LoadTimings()
        var start = clock.now
        func lap() -> Duration {
            let now = clock.now
            defer { start = now }
            return now - start
        }
        let (refName, commit) = try resolve(repository: repository, ref: ref)
        let snapshot = try snapshot(repository: repository, commit: commit)

        var tracked: [String: String] = [:]
        for rollout in snapshot.rollouts {
            if let blob = rollout.planBlob { tracked[rollout.planPath] = blob }
            for approval in rollout.approvals { tracked[approval.path] = approval.blobID }
        }
        timings.snapshot = lap()
        let cache = cacheFile.flatMap { ScanCache.read(path: $0, repository: repository.path) }
        timings.cacheRead = lap()
        let (scan, statistics) = try HistoryScanner(repository: repository).scan(tip: commit, tracked: tracked, cache: cache)
        timings.historyScan = lap()
        if let cacheFile, !statistics.usedCache || cache?.tip != scan.tip {
            ScanCache.write(scan, path: cacheFile, repository: repository.path)
        }
        timings.cacheWrite = lap()

        var approvals: [String: [ApprovalStatus]] = [:]
        for rollout in snapshot.rollouts {
            func evidence(for path: String) -> ApprovalEvidence? {
                guard let entry = scan.entries[path], let facts = scan.commits[entry.commit] else { return nil }
                return ApprovalEvidence(
                    commit: entry.commit, viaMerge: entry.viaMerge, authorEmail: facts.authorEmail,
                    committerEmail: facts.committerEmail,
                    committerTime: Date(timeIntervalSince1970: TimeInterval(facts.committerTime)),
                    signature: facts.signature, signedData: facts.signedData.map { [UInt8]($0) })
            }
            var byPath: [String: ApprovalEvidence] = [:]
            for file in rollout.approvals { byPath[file.path] = evidence(for: file.path) }
            approvals[rollout.name] = ApprovalRules.evaluate(
                rollout: rollout, policy: snapshot.policy, signers: snapshot.allowedSigners,
                evidence: byPath, planChange: evidence(for: rollout.planPath))
        }
        timings.evaluate = lap()
        return LoadedRepository(ref: refName, revision: commit.description, snapshot: snapshot,
                                approvals: approvals, scanStatistics: statistics, timings: timings)
    }
}
