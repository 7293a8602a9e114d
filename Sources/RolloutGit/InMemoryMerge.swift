import CLibgit2
import Foundation

/// A pull request's branch merged onto the base's tip in memory (SPEC §6.1 [r3]): the merge commit, its
/// tree and any merged blobs live in an in-memory object database (libgit2's mempack) placed in front of
/// the repository's own, so the same `GitRepository` reads them while nothing is written to disk.
public struct InMemoryMerge: Sendable {
    /// The base's tip (the merge's first parent).
    public var base: ObjectID
    /// The pull request's head commit (the merge's second parent).
    public var head: ObjectID
    /// The merge commit, or `base` itself when the branch is already merged (`git merge` makes nothing).
    public var commit: ObjectID
    public var alreadyMerged: Bool
}

/// A merge that git could not make without a person: the paths in conflict.
public struct MergeConflict: Error, Sendable, CustomStringConvertible {
    public var paths: [String]
    public var base: String
    public var head: String

    public var description: String {
        "merging \(head) into \(base) conflicts in \(paths.joined(separator: ", ")); "
            + "the pull request must resolve these before rolloutctl can say what merging it would do"
    }
}

extension GitRepository {
    /// The identity of the synthetic merge commit (never written anywhere).
    public static let mergeIdentity = (name: "rolloutctl plan --base", email: "rolloutctl@localhost")

    /// Merges `head` onto `base` as `git merge --no-ff` would (libgit2's `git_merge_commits`, rename
    /// detection on), writing the result into memory only. After this call the repository's object
    /// database has the in-memory backend in front: every later write of this handle stays in memory.
    /// - Throws: `MergeConflict` naming the conflicting paths; `GitError` for a shallow repository.
    public func mergeInMemory(base: ObjectID, head: ObjectID, time: Date) throws -> InMemoryMerge {
        try refuseShallow()
        try addMemoryBackend()
        if try base == head || isAncestor(head, of: base) {
            return InMemoryMerge(base: base, head: head, commit: base, alreadyMerged: true)
        }
        let ours = try lookupCommit(base)
        defer { git_commit_free(ours) }
        let theirs = try lookupCommit(head)
        defer { git_commit_free(theirs) }
        var index: OpaquePointer?
        try GitError.check(git_merge_commits(&index, handle, ours, theirs, nil), "git_merge_commits(\(base), \(head))")
        defer { git_index_free(index) }
        if git_index_has_conflicts(index) == 1 {
            throw MergeConflict(
                paths: try conflictPaths(index!), base: String(base.description.prefix(12)),
                head: String(head.description.prefix(12)))
        }
        var tree = git_oid()
        try GitError.check(git_index_write_tree_to(&tree, index, handle), "git_index_write_tree_to")
        var treeObject: OpaquePointer?
        try GitError.check(git_tree_lookup(&treeObject, handle, &tree), "git_tree_lookup(merged tree)")
        defer { git_tree_free(treeObject) }
        var signature: UnsafeMutablePointer<git_signature>?
        try GitError.check(
            git_signature_new(
                &signature, Self.mergeIdentity.name, Self.mergeIdentity.email,
                git_time_t(time.timeIntervalSince1970.rounded(.down)), 0),
            "git_signature_new")
        defer { git_signature_free(signature) }
        var commit = git_oid()
        let message = "Merge \(head) into \(base) (rolloutctl plan --base, in memory)\n"
        var parents: [OpaquePointer?] = [ours, theirs]
        let result = parents.withUnsafeMutableBufferPointer { buffer in
            git_commit_create(
                &commit, handle, nil, signature, signature, "UTF-8", message, treeObject, 2, buffer.baseAddress)
        }
        try GitError.check(result, "git_commit_create(merge)")
        return InMemoryMerge(base: base, head: head, commit: ObjectID(commit), alreadyMerged: false)
    }

    /// A shallow clone lacks the history approvals are judged by (SPEC §6.1): an error saying to fetch it.
    public func refuseShallow() throws(GitError) {
        guard git_repository_is_shallow(handle) == 1 else { return }
        throw GitError(
            .other,
            "\(path) is a shallow clone: plan --base needs the full history of both branches to judge "
                + "approvals; fetch it (`git fetch --unshallow`, or actions/checkout with fetch-depth: 0)")
    }

    /// Puts libgit2's in-memory backend in front of the repository's object database (once per handle):
    /// writes go to the writable backend of the highest priority, reads find objects in either.
    private func addMemoryBackend() throws(GitError) {
        guard !hasMemoryBackend else { return }
        var odb: OpaquePointer?
        try GitError.check(git_repository_odb(&odb, handle), "git_repository_odb")
        defer { git_odb_free(odb) }
        var backend: OpaquePointer?
        try GitError.check(git_mempack_new(&backend), "git_mempack_new")
        // The odb owns the backend from here on (freed with the repository).
        try GitError.check(git_odb_add_backend(odb, backend, 1000), "git_odb_add_backend(mempack)")
        hasMemoryBackend = true
    }

    /// Whether `ancestor` is reachable from `commit`.
    func isAncestor(_ ancestor: ObjectID, of commit: ObjectID) throws(GitError) -> Bool {
        var a = commit.raw
        var b = ancestor.raw
        let result = git_graph_descendant_of(handle, &a, &b)
        try GitError.check(result, "git_graph_descendant_of")
        return result == 1
    }

    private func conflictPaths(_ index: OpaquePointer) throws(GitError) -> [String] {
        var iterator: OpaquePointer?
        try GitError.check(git_index_conflict_iterator_new(&iterator, index), "git_index_conflict_iterator_new")
        defer { git_index_conflict_iterator_free(iterator) }
        var paths: [String] = []
        var ancestor: UnsafePointer<git_index_entry>?
        var ours: UnsafePointer<git_index_entry>?
        var theirs: UnsafePointer<git_index_entry>?
        while git_index_conflict_next(&ancestor, &ours, &theirs, iterator) == 0 {
            for entry in [ours, theirs, ancestor] {
                if let entry, let name = entry.pointee.path {
                    let path = String(cString: name)
                    if !paths.contains(path) { paths.append(path) }
                    break
                }
            }
        }
        return paths.sorted()
    }
}
