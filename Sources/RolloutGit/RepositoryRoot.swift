import CLibgit2
import Foundation

extension GitRepository {
    /// The root commit of `tip`'s first-parent line: what a state database records as the
    /// repository it belongs to (SPEC §5.10). Stable as the branch grows; another repository,
    /// even with the same files, has another root.
    public func firstParentRoot(of tip: ObjectID) throws(GitError) -> ObjectID {
        var walk: OpaquePointer?
        try GitError.check(git_revwalk_new(&walk, handle), "git_revwalk_new")
        defer { git_revwalk_free(walk) }
        try GitError.check(git_revwalk_simplify_first_parent(walk), "git_revwalk_simplify_first_parent")
        var start = tip.raw
        try GitError.check(git_revwalk_push(walk, &start), "git_revwalk_push(\(tip))")
        var oid = git_oid()
        var last = tip
        while true {
            let result = git_revwalk_next(&oid, walk)
            if result == GIT_ITEROVER.rawValue { break }
            try GitError.check(result, "git_revwalk_next")
            last = ObjectID(oid)
        }
        return last
    }

    /// The same, handed over by an earlier walk: `known` is a commit of the line and its line's root (the
    /// history walk's cache keeps both). Walks back from `tip` only until it meets `known.commit`; a tip
    /// whose line does not hold it (a rewritten history) is walked to its own root.
    public func firstParentRoot(of tip: ObjectID, known: (commit: ObjectID, root: ObjectID)?) throws(GitError)
        -> ObjectID
    {
        guard let known else { return try firstParentRoot(of: tip) }
        let odb = try ObjectDatabase(self)
        var cursor = tip
        while true {
            if cursor == known.commit { return known.root }
            guard let parent = try CommitHeader(odb: odb, id: cursor).parents.first else { return cursor }
            cursor = parent
        }
    }
}

extension GitRepository {
    /// Where the default `.rolloutctl/` lives (SPEC §5.10): the work tree's top, or a bare
    /// repository's own directory, whatever the working directory of the process is.
    public var home: String {
        if let workdir = git_repository_workdir(handle) {
            return URL(fileURLWithPath: String(cString: workdir)).standardizedFileURL.path
        }
        return URL(fileURLWithPath: String(cString: git_repository_path(handle))).standardizedFileURL.path
    }
}
