import CLibgit2
import Foundation
import RolloutCore

/// Walks the protected branch's first-parent line from its oldest commit forward, keeping the set of
/// commits the branch already had, so that each merge's merged side is exact (the commits reachable
/// from its other parents and not from its first parent). On the way it follows every tracked file's
/// changes and the policy's proposals and approvals. Its state is resumable: a later tip that
/// extends the first-parent line continues from a cached state (`HistoryCache`).
public final class HistoryWalker {
    let repository: GitRepository
    let odb: ObjectDatabase
    var state: WalkState
    public private(set) var statistics = ScanStatistics()

    /// Merged sides of this run's merges, by first-parent index.
    private var sides: [Int: [SideCommit]] = [:]
    private var headers: [ObjectID: CommitHeader] = [:]
    /// Headers of this run's merges and their first parents (`headers` is emptied as the walk goes).
    private var kept: [ObjectID: CommitHeader] = [:]
    private var topLevel: [ObjectID: TopLevel] = [:]
    private var policyDigests: [ObjectID: String] = [:]
    private var previousRollouts: IndexedTree?
    private var inForceSet: PolicySet?

    struct SideCommit {
        var id: ObjectID
        var header: CommitHeader
    }

    /// The `rollouts` and `policies` tree ids of a root tree.
    struct TopLevel: Equatable {
        var rollouts: ObjectID?
        var policies: ObjectID?
    }

    /// - Parameters:
    ///   - cache: a state saved by an earlier walk of this repository, or nil.
    ///   - policyRoot: the commit `init --policy-root` made the root of trust, when there is one.
    public init(repository: GitRepository, cache: WalkState?, policyRoot: ObjectID?) throws(GitError) {
        self.repository = repository
        odb = try ObjectDatabase(repository)
        if let cache, cache.policyRootOverride == policyRoot, cache.formatVersion == WalkState.formatVersion {
            state = cache
        } else {
            state = WalkState(policyRootOverride: policyRoot)
            statistics.cacheDiscarded = cache != nil
        }
    }

    /// The walk's state after `walk`, to save for the next run.
    public var savedState: WalkState { state }

    /// Walks to `tip` and answers for `tracked` (path → blob at the tip, for rollouts/ files).
    public func walk(to tip: ObjectID, tracked: [String: String]) throws(GitError) -> HistoryIndex {
        if state.tip != nil {
            if let line = try firstParentLine(to: tip, stoppingAt: state.tip) {
                do {
                    try process(line)
                    let index = try finish(tip: tip, tracked: tracked)
                    statistics.usedCache = true
                    return index
                } catch {
                    // The cached state disagrees with this history: start again from the oldest commit.
                }
            }
            statistics.cacheDiscarded = true
            state = WalkState(policyRootOverride: state.policyRootOverride)
            sides.removeAll()
            previousRollouts = nil
            inForceSet = nil
        }
        guard let line = try firstParentLine(to: tip, stoppingAt: nil) else {
            throw GitError(.other, "the first-parent line of \(tip) could not be read")
        }
        try process(line)
        return try finish(tip: tip, tracked: tracked)
    }

    // MARK: The first-parent line

    /// First-parent commits from `tip` back to (not including) `stop`, oldest first; nil when `stop`
    /// is given and is not on the line (the history was rewritten).
    private func firstParentLine(to tip: ObjectID, stoppingAt stop: ObjectID?) throws(GitError)
        -> [(ObjectID, CommitHeader)]?
    {
        var line: [(ObjectID, CommitHeader)] = []
        var cursor: ObjectID? = tip
        while let id = cursor {
            if id == stop { return line.reversed() }
            let header = try header(of: id)
            line.append((id, header))
            cursor = header.parents.first
        }
        return stop == nil ? line.reversed() : nil
    }

    private func header(of id: ObjectID) throws(GitError) -> CommitHeader {
        if let known = headers[id] ?? kept[id] { return known }
        statistics.commitsWalked += 1
        let header = try CommitHeader(odb: odb, id: id)
        headers[id] = header
        return header
    }

    private func topLevel(ofTree tree: ObjectID) throws(GitError) -> TopLevel {
        if let known = topLevel[tree] { return known }
        let root = try RawTree(odb: odb, id: tree)
        var result = TopLevel()
        var entries = root.entries
        while let entry = try entries.next() {
            guard entry.isTree else { continue }
            if entry.hasName(RepositoryLayout.policiesFolder) { result.policies = entry.id }
            if entry.hasName(RepositoryLayout.rolloutsFolder) { result.rollouts = entry.id }
        }
        topLevel[tree] = result
        return result
    }

    private func topLevel(ofCommit id: ObjectID) throws(GitError) -> TopLevel {
        try topLevel(ofTree: try header(of: id).tree)
    }

    // MARK: One first-parent commit at a time

    private func process(_ line: [(ObjectID, CommitHeader)]) throws(GitError) {
        if let rolloutsID = state.tipRollouts, !line.isEmpty {
            previousRollouts = try IndexedTree(RawTree(odb: odb, id: rolloutsID))
        }
        for (id, header) in line {
            let index = state.count
            let top = try topLevel(ofTree: header.tree)
            if header.parents.count > 1 {
                sides[index] = try mergedSide(of: header.parents.dropFirst())
                // Kept for resolving approval commits at the end: the merge and its first parent.
                kept[id] = header
                if let first = header.parents.first { kept[first] = try self.header(of: first) }
            }
            if index == 0 { state.firstParentRoot = id }
            state.seen.insert(id)
            if let payload = header.payloadID { state.seen.insert(payload) }
            if top.policies != state.tipPolicies || (state.root == nil && top.policies != nil) {
                try policyStep(index: index, id: id, header: header, policies: top.policies)
            }
            if top.rollouts != state.tipRollouts {
                try rolloutsStep(index: index, id: id, header: header, rollouts: top.rollouts)
            }
            state.tip = id
            state.tipRollouts = top.rollouts
            state.tipPolicies = top.policies
            state.count = index + 1
            if index % 64 == 63 { headers.removeAll(keepingCapacity: true) }
        }
    }

    /// The commits reachable from `others` and not from the first parent: everything not seen yet,
    /// since `seen` holds every commit reachable from the previous first-parent commit. `seen` also holds
    /// the payload ids of signed commits (SPEC §4.0 rule 2), so a copy of a commit the branch already had,
    /// with its signature re-wrapped, replaced or stripped, is a commit it had: never on a merged side.
    private func mergedSide(of others: ArraySlice<ObjectID>) throws(GitError) -> [SideCommit] {
        var result: [SideCommit] = []
        var queue = Array(others)
        while let id = queue.popLast() {
            guard !state.seen.contains(id) else { continue }
            state.seen.insert(id)
            let header = try header(of: id)
            if let payload = header.payloadID {
                // Same payload, same parents: the copy's ancestors are the original's, seen already.
                guard !state.seen.contains(payload) else { continue }
                state.seen.insert(payload)
            }
            result.append(SideCommit(id: id, header: header))
            for parent in header.parents where !state.seen.contains(parent) { queue.append(parent) }
        }
        return result
    }

    // MARK: rollouts/

    private func rolloutsStep(index: Int, id: ObjectID, header: CommitHeader, rollouts: ObjectID?) throws(GitError) {
        guard let rollouts else {
            previousRollouts = nil
            return
        }
        let changes = try TreeDiff.forward(old: previousRollouts, new: RawTree(odb: odb, id: rollouts), odb: odb)
        previousRollouts = changes.indexed
        for change in changes.files {
            var file = state.files[change.path] ?? FileState(blob: change.blob, changeIndex: index, changeCommit: id)
            file.blob = change.blob
            file.changeIndex = index
            file.changeCommit = id
            file.viaMerge = header.parents.count > 1
            file.approval = .unresolved
            file.previousBlob = change.oldBlob
            if TrackedPaths.isPlan(change.path) {
                if change.oldBlob == nil { file.makers = [] }
                file.makers += try makers(
                    of: change.path, blob: change.blob, oldBlob: change.oldBlob,
                    index: index, id: id, header: header)
            }
            state.files[change.path] = file
        }
    }

    /// Rule 7's makers of one change on the first-parent line: the commit itself, or for a merge the
    /// commits of its merged side that changed the file relative to their own first parent, plus the
    /// merge when its content matches none of its parents'.
    private func makers(
        of path: String, blob: ObjectID, oldBlob: ObjectID?, index: Int, id: ObjectID,
        header: CommitHeader
    ) throws(GitError) -> [Maker] {
        let mode = state.inForceSignatureMode
        guard header.parents.count > 1 else { return [Maker(commit: id, signatureMode: mode)] }
        let probe = try BlobProbe(walker: self, path: path, merge: id, mergeBlob: blob, firstParentBlob: oldBlob)
        var result: [Maker] = []
        for side in sides[index] ?? [] {
            let own = try probe.blob(at: side.id)
            let parent = try side.header.parents.first.map { p throws(GitError) in try probe.blob(at: p) } ?? nil
            if own != parent { result.append(Maker(commit: side.id, signatureMode: mode)) }
        }
        var matchesParent = false
        for parent in header.parents where try probe.blob(at: parent) == blob { matchesParent = true }
        if !matchesParent { result.append(Maker(commit: id, signatureMode: mode)) }
        return result
    }

    /// Finds a file's blob in commits near a merge, using what the merge and its first parent
    /// already say (most merged sides share their trees with one of them).
    struct BlobProbe {
        let walker: HistoryWalker
        let path: String
        let inPolicies: Bool
        let mergeTop: TopLevel
        let mergeBlob: ObjectID?
        let firstParentTop: TopLevel?
        let firstParentBlob: ObjectID?

        init(
            walker: HistoryWalker, path: String, merge: ObjectID, mergeBlob: ObjectID?,
            firstParentBlob: ObjectID?
        ) throws(GitError) {
            self.walker = walker
            self.path = path
            inPolicies = path.hasPrefix(RepositoryLayout.policiesPrefix)
            mergeTop = try walker.topLevel(ofCommit: merge)
            self.mergeBlob = mergeBlob
            let firstParent = try walker.header(of: merge).parents.first
            firstParentTop = try firstParent.map { p throws(GitError) in try walker.topLevel(ofCommit: p) }
            self.firstParentBlob = firstParentBlob
        }

        func folder(_ top: TopLevel) -> ObjectID? { inPolicies ? top.policies : top.rollouts }

        func blob(at commit: ObjectID) throws(GitError) -> ObjectID? {
            let top = try walker.topLevel(ofCommit: commit)
            if folder(top) == folder(mergeTop) { return mergeBlob }
            if let firstParentTop, folder(top) == folder(firstParentTop) { return firstParentBlob }
            return try walker.repository.blobID(atPath: path, inCommit: commit)
        }
    }

    // MARK: policies/

    private func policyFiles(tree: ObjectID?) throws(GitError) -> [TreeFile] {
        guard let tree else { return [] }
        return try repository.listFiles(tree: tree, prefix: RepositoryLayout.policiesPrefix)
    }

    private func digest(ofPolicies tree: ObjectID?) throws(GitError) -> String {
        guard let tree else { return PolicyDigest.compute([]) }
        if let known = policyDigests[tree] { return known }
        let digest = PolicyDigest.compute(try policyFiles(tree: tree))
        policyDigests[tree] = digest
        return digest
    }

    private func decodePolicy(_ files: [TreeFile]) -> PolicySet {
        RepositoryLoader.loadPolicySet(files: files) { file throws(GitError) in
            guard let id = ObjectID(hex: file.objectID) else {
                throw GitError(.objectNotFound, "bad id \(file.objectID)")
            }
            return try repository.readBlob(id)
        }
    }

    private func policyStep(index: Int, id: ObjectID, header: CommitHeader, policies: ObjectID?) throws(GitError) {
        let files = try policyFiles(tree: policies)
        let digest = PolicyDigest.compute(files)
        if let policies { policyDigests[policies] = digest }

        // Policy approval files: a changed blob is a new merge point.
        var approvalFiles: [String: ObjectID] = [:]
        // A policy approval whose name folds into another's (SPEC §4.0 rule 4) does not count.
        for file in files where file.path.hasPrefix(RepositoryLayout.policyApprovalsPrefix) && file.nameProblem == nil {
            guard let blob = ObjectID(hex: file.objectID) else { continue }
            approvalFiles[file.path] = blob
            if state.policyApprovalFiles[file.path] != blob {
                var record = FileState(blob: blob, changeIndex: index, changeCommit: id)
                record.viaMerge = header.parents.count > 1
                record.previousBlob = state.policyApprovalFiles[file.path]
                state.files[file.path] = record
            }
        }
        for path in state.policyApprovalFiles.keys where approvalFiles[path] == nil { state.files[path] = nil }
        state.policyApprovalFiles = approvalFiles

        guard state.root != nil else {
            // The root of trust: the first commit holding approvers.json (or the commit named by init).
            let isRoot =
                state.policyRootOverride.map { $0 == id }
                ?? files.contains { $0.path == RepositoryLayout.approvers }
            guard isRoot else { return }
            let point = PolicyPointState(index: index, commit: id, digest: digest)
            state.root = point
            enterForce(point, files: files)
            return
        }
        if digest != state.lastDigest {
            state.policyMakers += try policyMakers(index: index, id: id, header: header, digest: digest)
            state.lastDigest = digest
            state.pending =
                digest == state.inForce?.digest ? nil : PolicyPointState(index: index, commit: id, digest: digest)
        }
        if let pending = state.pending {
            if try evaluatePending(pending).missing.isEmpty {
                enterForce(PolicyPointState(index: index, commit: id, digest: digest), files: files)
            }
        }
    }

    private func enterForce(_ point: PolicyPointState, files: [TreeFile]) {
        state.inForce = point
        state.lastDigest = point.digest
        state.pending = nil
        state.policyMakers = []
        let set = decodePolicy(files)
        inForceSet = set
        state.inForceSignatureMode = set.approvers?.identity == .sshSignature
    }

    private func inForcePolicy() throws(GitError) -> PolicySet? {
        if let inForceSet { return inForceSet }
        guard let point = state.inForce else { return nil }
        let tree = try repository.treeID(ofCommit: point.commit)
        let set = decodePolicy(try policyFiles(tree: try topLevel(ofTree: tree).policies))
        inForceSet = set
        return set
    }

    /// The commits that changed the policy at one first-parent commit (rule 7, for the policy).
    private func policyMakers(index: Int, id: ObjectID, header: CommitHeader, digest newDigest: String) throws(GitError)
        -> [Maker]
    {
        let mode = state.inForceSignatureMode
        guard header.parents.count > 1 else { return [Maker(commit: id, signatureMode: mode)] }
        var result: [Maker] = []
        for side in sides[index] ?? [] {
            let own = try digest(ofPolicies: topLevel(ofTree: side.header.tree).policies)
            let parent = try side.header.parents.first.map { p throws(GitError) in
                try digest(ofPolicies: topLevel(ofCommit: p).policies)
            }
            if own != parent { result.append(Maker(commit: side.id, signatureMode: mode)) }
        }
        var matchesParent = false
        for parent in header.parents where try digest(ofPolicies: topLevel(ofCommit: parent).policies) == newDigest {
            matchesParent = true
        }
        if !matchesParent { result.append(Maker(commit: id, signatureMode: mode)) }
        return result
    }

    /// The policy approvals at the current point of the walk, judged for `pending`.
    private func evaluatePending(_ pending: PolicyPointState) throws(GitError)
        -> (statuses: [ApprovalStatus], missing: [String])
    {
        let set = try inForcePolicy()
        let authority = ApprovalAuthority(policy: set?.approvers, signers: set?.allowedSigners)
        var files: [PolicyApprovalFile] = []
        var evidence: [String: ApprovalEvidence] = [:]
        for (path, blob) in state.policyApprovalFiles.sorted(by: { $0.key < $1.key }) {
            var diagnostics: [Diagnostic] = []
            var record: PolicyApprovalRecord?
            let bytes = try repository.readBlob(blob)
            do {
                let sink = DiagnosticSink(path: path)
                record = PolicyApprovalRecord.decode(try JSONParser.parse(bytes), sink: sink)
                diagnostics = sink.diagnostics
            } catch {
                diagnostics = [
                    Diagnostic(
                        path: path, line: error.position.line, column: error.position.column,
                        message: error.message)
                ]
            }
            files.append(
                PolicyApprovalFile(path: path, blobID: blob.description, record: record, diagnostics: diagnostics))
            evidence[path] = try self.evidence(for: path)
        }
        let statuses = PolicyRules.evaluate(
            approvals: files, evidence: evidence,
            proposal: PolicyProposal(commit: pending.commit.description, index: pending.index, digest: pending.digest),
            makers: try identities(state.policyMakers), authority: authority)
        return (statuses, PolicyRules.missingRoles(authority: authority, statuses: statuses))
    }

    // MARK: Evidence

    /// Rule 4: the approval commit of a file's current blob, resolved once.
    private func resolve(_ path: String) throws(GitError) -> Resolution {
        guard var file = state.files[path] else { return .notFound }
        if file.approval != .unresolved { return file.approval }
        if !file.viaMerge {
            file.approval = .commit(file.changeCommit)
        } else {
            let probe = try BlobProbe(
                walker: self, path: path, merge: file.changeCommit, mergeBlob: file.blob,
                firstParentBlob: file.previousBlob)
            var found: [ObjectID] = []
            for side in sides[file.changeIndex] ?? [] where side.header.parents.count <= 1 {
                guard try probe.blob(at: side.id) == file.blob else { continue }
                let parentBlob =
                    try side.header.parents.first.map { p throws(GitError) in try probe.blob(at: p) } ?? nil
                if parentBlob != file.blob { found.append(side.id) }
            }
            file.approval = found.count == 1 ? .commit(found[0]) : .notFound
        }
        state.files[path] = file
        return file.approval
    }

    private func evidence(for path: String) throws(GitError) -> ApprovalEvidence? {
        guard let file = state.files[path] else { return nil }
        let approval: CommitIdentity?
        switch try resolve(path) {
        case .commit(let id): approval = try identity(of: id)
        default: approval = nil
        }
        return ApprovalEvidence(
            mergePoint: file.changeCommit.description, mergeIndex: file.changeIndex,
            viaMerge: file.viaMerge, approvalCommit: approval)
    }

    private func identity(of id: ObjectID) throws(GitError) -> CommitIdentity {
        if let known = state.facts[id] { return known }
        // Read from the raw object (one read, no libgit2 commit parse and no second read for the signature).
        let identity = try RawCommitIdentity.read(odb: odb, id: id)
        statistics.commitsDescribed += 1
        state.facts[id] = identity
        return identity
    }

    private func identities(_ makers: [Maker]) throws(GitError) -> [MakerCommit] {
        var result: [MakerCommit] = []
        for maker in makers {
            result.append(MakerCommit(commit: try identity(of: maker.commit), madeInSignatureMode: maker.signatureMode))
        }
        return result
    }

    // MARK: The answer

    private func finish(tip: ObjectID, tracked: [String: String]) throws(GitError) -> HistoryIndex {
        // Forget files the tip no longer has; every tracked file must be known with its tip blob.
        state.files = state.files.filter { tracked[$0.key] != nil || state.policyApprovalFiles[$0.key] != nil }
        for (path, blob) in tracked where state.files[path]?.blob.description != blob {
            throw GitError(
                .other,
                "history walk: \(path) at the tip is \(blob), but the walk found "
                    + "\(state.files[path]?.blob.description ?? "nothing")")
        }
        var evidence: [String: ApprovalEvidence] = [:]
        var plans: [String: ContentHistory] = [:]
        for path in state.files.keys.sorted() {
            guard let file = state.files[path] else { continue }
            if TrackedPaths.isPlan(path) {
                plans[path] = ContentHistory(
                    changeCommit: file.changeCommit.description, changeIndex: file.changeIndex,
                    makers: try identities(file.makers))
            } else {
                evidence[path] = try self.evidence(for: path)
            }
        }
        var policy = PolicyState()
        policy.root = state.root.map { PolicyPoint(commit: $0.commit.description, digest: $0.digest) }
        policy.inForce = state.inForce.map { PolicyPoint(commit: $0.commit.description, digest: $0.digest) }
        policy.inForceSet = try inForcePolicy()
        if let pending = state.pending {
            let (statuses, missing) = try evaluatePending(pending)
            policy.pending = PolicyState.PendingPolicy(
                point: PolicyPoint(commit: pending.commit.description, digest: pending.digest),
                missing: missing, approvals: statuses)
        }
        sides.removeAll()
        return HistoryIndex(tip: tip.description, evidence: evidence, planHistories: plans, policy: policy)
    }
}
