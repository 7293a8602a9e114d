import Foundation
import RolloutCore

/// A rollout repository read at one commit: files validated, approvals evaluated.
public struct LoadedRepository: Sendable {
    /// The ref as given or defaulted (`main`, `HEAD`, a tag, a commit id).
    public var ref: String
    /// The commit id the ref resolved to.
    public var revision: String
    public var snapshot: RepositorySnapshot
    /// Approval statuses by rollout name, judged under the policy in force.
    public var approvals: [String: [ApprovalStatus]]
    /// The policy in force and the proposal waiting for approvals (SPEC §4.3).
    public var policy: PolicyState
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
    /// The history walk (first-parent line, merged sides, policy) and the commits' facts.
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
    /// Opens the repository and resolves the ref: the given one, else `protectedBranch` from
    /// `policies/approvers.json` at HEAD when that branch exists, else HEAD.
    public static func resolve(repository: GitRepository, ref: String?) throws(GitError) -> (
        ref: String, commit: ObjectID
    ) {
        if let ref { return (ref, try repository.resolveCommit(ref)) }
        let head: ObjectID
        do {
            head = try repository.head()
        } catch let error where error.code == .unknownRef {
            // HEAD names a branch with no commits (a bare repository whose HEAD says `master` while
            // only `main` was pushed): fall back to the usual protected branch names.
            for branch in RepositoryLayout.unbornHeadFallbacks where repository.hasBranch(branch) {
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
        guard let blob = try? repository.blobID(atPath: RepositoryLayout.approvers, inCommit: commit),
            let bytes = try? repository.readBlob(blob),
            let json = try? JSONParser.parse(bytes),
            case .object(let members) = json.kind,
            let member = members.first(where: { $0.key == "protectedBranch" }),
            case .string(let branch) = member.value.kind
        else { return nil }
        return branch
    }

    /// The root of `tip`'s first-parent line (SPEC §5.10: the repository a state belongs to), handed over by
    /// the history walk's cache when it has walked a commit of that line: a run walks only the commits
    /// since, not the whole line again. Without a usable cache, the whole line is walked.
    public static func firstParentRoot(repository: GitRepository, of tip: ObjectID, cacheFile: String?)
        throws(GitError) -> ObjectID
    {
        let known = cacheFile.flatMap { HistoryCache.readLine(path: $0, repository: repository.path) }
        return try repository.firstParentRoot(of: tip, known: known.map { (commit: $0.tip, root: $0.root) })
    }

    /// Lists and decodes `rollouts/` and `policies/` of a commit, its plans judged by the tree's own policy.
    public static func snapshot(repository: GitRepository, commit: ObjectID) throws(GitError) -> RepositorySnapshot {
        let files = try repository.listFiles(commit: commit, under: RepositoryLayout.folders)
        return decode(files, repository: repository, plansJudgedBy: nil)
    }

    static func decode(_ files: [TreeFile], repository: GitRepository, plansJudgedBy: PolicySet?)
        -> RepositorySnapshot
    {
        RepositoryLoader.load(files: files, plansJudgedBy: plansJudgedBy) { file in
            guard let id = ObjectID(hex: file.objectID) else {
                throw GitError(.objectNotFound, "bad object id \(file.objectID)")
            }
            return try repository.readBlob(id)
        }
    }

    /// Reads everything and evaluates approvals under the policy in force, walking history
    /// incrementally from a cache file.
    /// - Parameter policyRoot: the root of trust `init --policy-root` recorded, when there is one.
    /// - Parameter writesCache: false for a tip that exists only in memory (`plan --base`, SPEC §6.1): the cache
    ///   is read, never rewritten for a commit the repository does not have.
    public static func load(
        repository: GitRepository, ref: String?, cacheFile: String?,
        policyRoot: String? = nil, acceptedLine: (index: Int, commit: String)? = nil, writesCache: Bool = true
    ) throws(GitError) -> LoadedRepository {
        let clock = ContinuousClock()
        var timings = LoadTimings()
        var start = clock.now
        func lap() -> Duration {
            let now = clock.now
            defer { start = now }
            return now - start
        }
        let (refName, commit) = try resolve(repository: repository, ref: ref)
        let cache = cacheFile.flatMap { HistoryCache.read(path: $0, repository: repository.path) }
        timings.cacheRead = lap()
        // With a cache, the tip is read folder by folder and an unchanged rollout folder is taken as decoded
        // (issue 22); without one (or without a policy that decodes), every file is read, as `validate` does.
        var tip = try cacheFile == nil ? nil : TipFolders(repository: repository, commit: commit, kept: cache?.folders)
        var files: [TreeFile] = []
        var whole: RepositorySnapshot?
        if tip == nil {
            files = try repository.listFiles(commit: commit, under: RepositoryLayout.folders)
            whole = decode(files, repository: repository, plansJudgedBy: nil)
        }

        var tracked: [String: String] = [:]
        // A rollout whose names fold (SPEC §4.0 rule 4) is invalid on its own; the walk does not follow it.
        for rollout in whole?.rollouts ?? tip?.rollouts ?? [] where !rollout.hasNameProblem {
            if let blob = rollout.planBlob { tracked[rollout.planPath] = blob }
            for approval in rollout.approvals { tracked[approval.path] = approval.blobID }
        }
        timings.snapshot = lap()
        var rootID: ObjectID?
        if let policyRoot {
            guard let id = ObjectID(hex: policyRoot) else {
                throw GitError(.policyRootNotFound, "the policy root \(policyRoot) is not a commit id")
            }
            rootID = id
        }
        let walker = try HistoryWalker(repository: repository, cache: cache, policyRoot: rootID)
        let index = try walker.walk(to: commit, tracked: tracked)
        if let policyRoot, index.policy.root == nil {
            throw GitError(
                .policyRootNotFound,
                "the policy root \(policyRoot) recorded by `rolloutctl init` is "
                    + "not on the first-parent line of \(refName); the history was rewritten, or the state "
                    + "belongs elsewhere "
                    + "(an operator may choose a new root: `rolloutctl init --policy-root COMMIT --adopt`)")
        }
        timings.historyScan = lap()

        // SPEC §4.3 [r3]: plans are valid or not under the policy in force, whatever a pending proposal
        // renames or deletes (so a proposal cannot make a plan invalid and disarm its rollback).
        let inForce = index.policy.inForceSet
        if var folders = tip {
            if let inForce, inForce.digest != folders.policySet.digest, inForce.approvers == nil {
                // A policy in force without approvers: judged as every file is (rare; nothing kept).
                files = try repository.listFiles(commit: commit, under: RepositoryLayout.folders)
                var full = decode(files, repository: repository, plansJudgedBy: nil)
                full.rollouts = decode(files, repository: repository, plansJudgedBy: inForce).rollouts
                whole = full
                tip = nil
            } else {
                let judge = inForce.flatMap { $0.digest != folders.policySet.digest ? $0 : nil } ?? folders.policySet
                try folders.judge(by: judge, repository: repository)
                whole = folders.snapshot(repository: repository)
                tip = folders
            }
        } else if let inForce, inForce.digest != whole?.policySet.digest {
            let judged = decode(files, repository: repository, plansJudgedBy: inForce)
            whole?.rollouts = judged.rollouts
        }
        guard var snapshot = whole else { throw GitError(.other, "the tip could not be read") }
        timings.snapshot += lap()
        if writesCache, let cacheFile {
            let kept = tip?.decoded ?? [:]
            if cache?.tipID != index.tip || !walker.statistics.usedCache || tip?.changed ?? false
                || kept.count != cache?.folders.count
            {
                var state = walker.savedState
                state.folders = kept
                HistoryCache.write(state, path: cacheFile, repository: repository.path)
            }
        }
        timings.cacheWrite = lap()

        let authority = index.policy.authority
        var approvals: [String: [ApprovalStatus]] = [:]
        for position in snapshot.rollouts.indices {
            PolicyInForce.applyHealthSets(index.policy, to: &snapshot.rollouts[position])
            let rollout = snapshot.rollouts[position]
            var evidence: [String: ApprovalEvidence] = [:]
            for file in rollout.approvals { evidence[file.path] = index.evidence[file.path] }
            approvals[rollout.name] = ApprovalRules.evaluate(
                rollout: rollout, authority: authority, evidence: evidence,
                planHistory: index.planHistories[rollout.planPath], acceptedLine: acceptedLine)
        }
        timings.evaluate = lap()
        var statistics = walker.statistics
        statistics.foldersRead = tip?.reads ?? snapshot.rollouts.count
        return LoadedRepository(
            ref: refName, revision: commit.description, snapshot: snapshot,
            approvals: approvals, policy: index.policy, scanStatistics: statistics,
            timings: timings)
    }
}

/// A tip's `policies/` and its rollout folders, each decoded or taken as decoded from the walk's cache when its
/// tree id and the policy its plan is judged by are unchanged (issue 22): what changed since the last run is
/// read, not the whole tip. The snapshot equals the one `RepositoryLoader` makes of every file
/// (`RepositoryLoader.snapshot`; `WalkHandOverTests`, `HistoryWalkOracleTests`).
struct TipFolders {
    var policyFiles: [TreeFile]
    var policySet: PolicySet
    var folders: [(name: String, tree: ObjectID, problem: String?)]
    /// Every folder of the tip, decoded (by some policy: `judge(by:)` makes it one).
    var decoded: [String: KeptFolder] = [:]
    /// Folders listed and decoded in this run (not taken as decoded).
    var reads = 0
    var changed: Bool { reads > 0 }

    /// nil when the tip's own policy has no approvers file that decodes, or a folder name has a problem (SPEC
    /// §4.0 rule 4): every file is then read, as before.
    init?(repository: GitRepository, commit: ObjectID, kept: [String: KeptFolder]?) throws(GitError) {
        let listing = try repository.rolloutFolders(commit: commit)
        policyFiles = listing.others
        folders = listing.folders
        policySet = RepositoryLoader.loadPolicySet(files: policyFiles) { file in
            try RepositoryReader.read(file, repository: repository)
        }
        guard policySet.approvers != nil, !folders.contains(where: { $0.problem != nil }) else { return nil }
        // The files a folder holds do not depend on the policy its plan was judged by: a kept folder serves
        // the walk as it is, and is decoded again only if the policy in force is another (`judge(by:)`).
        for folder in folders {
            if let entry = kept?[folder.name], entry.tree == folder.tree {
                decoded[folder.name] = entry
            } else {
                try decode(folder, by: policySet, repository: repository)
            }
        }
    }

    var rollouts: [RolloutFiles] { decoded.values.map(\.rollout.files) }

    private mutating func decode(
        _ folder: (name: String, tree: ObjectID, problem: String?), by policy: PolicySet, repository: GitRepository
    ) throws(GitError) {
        let files = try repository.listFolder(folder)
        var unreadable = false
        let rollout = RepositoryLoader.decodeRollout(
            name: folder.name, files: files, judge: policy, policyHasErrors: !policy.diagnostics.isEmpty
        ) { file in
            do {
                return try RepositoryReader.read(file, repository: repository)
            } catch {
                unreadable = true
                throw error
            }
        }
        // A file that could not be read (a missing object) may be readable next run: such a folder is
        // marked judged by no policy, so that it is decoded again.
        decoded[folder.name] = KeptFolder(tree: folder.tree, judge: unreadable ? "" : policy.digest, rollout: rollout)
        reads += 1
    }

    /// Decodes again every folder whose plan was judged by another policy (a policy with approvers).
    mutating func judge(by policy: PolicySet, repository: GitRepository) throws(GitError) {
        for folder in folders where decoded[folder.name]?.judge != policy.digest {
            try decode(folder, by: policy, repository: repository)
        }
    }

    func snapshot(repository: GitRepository) -> RepositorySnapshot {
        RepositoryLoader.snapshot(policyFiles: policyFiles, rollouts: decoded.values.map(\.rollout)) { file in
            try RepositoryReader.read(file, repository: repository)
        }
    }
}

extension RepositoryReader {
    static func read(_ file: TreeFile, repository: GitRepository) throws -> [UInt8] {
        guard let id = ObjectID(hex: file.objectID) else {
            throw GitError(.objectNotFound, "bad object id \(file.objectID)")
        }
        return try repository.readBlob(id)
    }
}

/// What the policy in force changes in a tip's rollouts (SPEC §4.3: health sets are policy).
enum PolicyInForce {
    /// A plan's `health.use` takes its checks from the health set of the policy in force, not the
    /// tip's; a set the policy in force does not have makes the rollout invalid until it is approved.
    static func applyHealthSets(_ policy: PolicyState, to rollout: inout RolloutFiles) {
        guard let plan = rollout.plan, let use = plan.health.use else { return }
        guard let set = policy.inForceSet?.healthSets[use] else {
            let position = plan.health.usePosition ?? plan.namePosition
            rollout.diagnostics.append(
                Diagnostic(
                    path: rollout.planPath, line: position.line, column: position.column,
                    message: "health set \"\(use)\" is not in the policy in force"
                        + (policy.pending.map { " (policies at \($0.point.commit.prefix(7)) are not approved yet)" }
                            ?? "")))
            rollout.plan = nil
            return
        }
        rollout.checks = plan.health.checks + set.checks
    }
}
