import CLibgit2
import Foundation
import RolloutCore

/// libgit2 is initialised once per process.
private let libgit2Initialised: Bool = {
    git_libgit2_init()
    // Reading objects does not re-hash them, as git does not: ids are checked when objects arrive
    // (fetch indexes packs by hashing them). With libgit2's default, every tree read during a
    // history scan was hashed again, which was most of the scan's time.
    _ = rolloutctl_git_set_strict_hash_verification(0)
    // No object cache. Nothing here reads an object twice in a way the cache would pay for: a
    // history scan reads each commit and tree about once (the cache mostly held 20,000 commits and
    // root trees never asked for again), and inserting every object into it, then freeing them
    // all with the repository, cost more than the occasional second read. Without it a cold scan
    // of the 1,000-rollout bench repository takes ~6% less CPU and ~24 MB less memory. Delta
    // bases are still cached by the pack reader.
    _ = rolloutctl_git_enable_caching(0)
    return true
}()

/// A 20-byte git object id, hashable and cheap to compare.
public struct ObjectID: Hashable, Sendable, CustomStringConvertible {
    var raw: git_oid

    init(_ raw: git_oid) {
        self.raw = raw
    }

    public init?(hex: String) {
        var oid = git_oid()
        guard hex.utf8.count == 40, git_oid_fromstr(&oid, hex) == 0 else { return nil }
        raw = oid
    }

    public var description: String {
        var copy = raw
        var buffer = [CChar](repeating: 0, count: 41)
        git_oid_tostr(&buffer, 41, &copy)
        return String(cString: buffer)
    }

    public static func == (a: ObjectID, b: ObjectID) -> Bool {
        var a = a.raw
        var b = b.raw
        return git_oid_equal(&a, &b) != 0
    }

    /// Byte order of the raw ids.
    func precedes(_ other: ObjectID) -> Bool {
        var a = raw
        var b = other.raw
        return git_oid_cmp(&a, &b) < 0
    }

    public func hash(into hasher: inout Hasher) {
        withUnsafeBytes(of: raw.id) { hasher.combine(bytes: $0) }
    }
}

/// One commit's identities and signature as libgit2 reads them: the oracle the history walk's raw
/// reader (`RawCommitIdentity`) is tested against.
public struct CommitFacts: Equatable, Sendable {
    public var id: String
    public var authorEmail: String
    public var committerEmail: String
    public var committerTime: Int64
    /// The armored `gpgsig` header, when the commit is signed.
    public var signature: String?
    /// The bytes the signature covers (the commit object without its `gpgsig` header).
    public var signedData: Data?
}

/// A repository opened through libgit2. Never reads the work tree, never runs `git`.
/// Not thread-safe: use one per task.
public final class GitRepository: @unchecked Sendable {
    let handle: OpaquePointer
    public let path: String
    /// Whether an in-memory object database sits in front of the repository's (`mergeInMemory`).
    var hasMemoryBackend = false

    /// Opens the repository at exactly `path` (bare or with a work tree).
    public init(path: String) throws(GitError) {
        _ = libgit2Initialised
        self.path = path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw GitError(.pathNotFound, "\(path) does not exist; pass --repo with the path of a git repository")
        }
        guard isDirectory.boolValue else {
            throw GitError(
                .notARepository, "\(path) is a file, not a git repository; pass --repo with a repository folder")
        }
        var pointer: OpaquePointer?
        let result = git_repository_open_ext(&pointer, path, GIT_REPOSITORY_OPEN_NO_SEARCH.rawValue, nil)
        // libgit2 1.5.x reports an ownership failure as GIT_ENOTFOUND with "config value
        // 'safe.directory' was not found" when safe.directory is not configured (fixed upstream in
        // 1.6, libgit2/libgit2#6408); treat that as GIT_EOWNER too.
        if result == GIT_EOWNER.rawValue
            || (result == GIT_ENOTFOUND.rawValue && GitError.lastMessage().contains("safe.directory"))
        {
            let user = ProcessInfo.processInfo.environment["USER"] ?? "this user"
            throw GitError(
                .ownedByAnotherUser,
                "\(path) is owned by another user, and git refuses to read it for \(user); "
                    + "run as the owner, or mark it safe: git config --global --add safe.directory \(path)")
        }
        if result == GIT_ENOTFOUND.rawValue {
            throw GitError(
                .notARepository,
                "\(path) is not a git repository; pass --repo with a repository folder (bare or not), or run "
                    + "`git init` there"
            )
        }
        try GitError.check(result, "git_repository_open_ext(\(path))")
        handle = pointer!
    }

    deinit {
        git_repository_free(handle)
    }

    public var isBare: Bool { git_repository_is_bare(handle) == 1 }

    /// True when HEAD points at a branch with no commits (libgit2's `is_empty` also wants that
    /// branch to be the default one, which `git init -b main` does not guarantee).
    public var isEmpty: Bool { git_repository_head_unborn(handle) == 1 || git_repository_is_empty(handle) == 1 }

    /// Resolves a ref to a commit by its full name (SPEC §4.0 rule 1): `HEAD`, a full ref name
    /// (`refs/heads/main`, `refs/tags/v1`, `refs/pull/42/head`), a local branch (`main` is always
    /// `refs/heads/main`, never a tag of that name), a remote-tracking branch (`origin/main`), or a commit
    /// id (full or abbreviated), optionally followed by `~N`/`^N`. A short name that only a tag has is
    /// refused: a tag named like the branch must never be read in its place.
    public func resolveCommit(_ spec: String) throws(GitError) -> ObjectID {
        if isEmpty, !(try hasAnyReference()) {
            throw GitError(
                .emptyRepository, "\(path) has no commits yet; commit the rollouts/ and policies/ folders first")
        }
        let suffixStart = spec.firstIndex(where: { $0 == "~" || $0 == "^" }) ?? spec.endIndex
        let base = String(spec[..<suffixStart])
        let suffix = String(spec[suffixStart...])
        let full = try fullName(of: base)
        var object: OpaquePointer?
        let result = git_revparse_single(&object, handle, full + suffix)
        guard result == 0, let object else {
            throw GitError(
                .unknownRef,
                "ref \"\(spec)\" is not a branch, tag or commit of \(path); list them with `git branch -a` and "
                    + "`git tag`"
            )
        }
        defer { git_object_free(object) }
        var peeled: OpaquePointer?
        guard git_object_peel(&peeled, object, GIT_OBJECT_COMMIT) == 0, let peeled else {
            throw GitError(.unknownRef, "ref \"\(spec)\" does not point at a commit")
        }
        defer { git_object_free(peeled) }
        return ObjectID(git_object_id(peeled).pointee)
    }

    /// What a ref's base names, as a full ref name or an object id that `git_revparse_single` reads without
    /// guessing (it would prefer `refs/tags/X` to `refs/heads/X`).
    private func fullName(of base: String) throws(GitError) -> String {
        if base == "HEAD" || base.hasPrefix("refs/") { return base }
        for candidate in ["refs/heads/" + base, "refs/remotes/" + base] where hasReference(candidate) {
            return candidate
        }
        if (4...40).contains(base.utf8.count), base.allSatisfy({ $0.isASCII && $0.isHexDigit }) {
            var oid = git_oid()
            var object: OpaquePointer?
            if git_oid_fromstrn(&oid, base, base.utf8.count) == 0,
                git_object_lookup_prefix(&object, handle, &oid, base.utf8.count, GIT_OBJECT_ANY) == 0, let object
            {
                defer { git_object_free(object) }
                return ObjectID(git_object_id(object).pointee).description  // the full id: never read as a name
            }
        }
        if hasReference("refs/tags/" + base) {
            throw GitError(
                .unknownRef,
                "ref \"\(base)\" is only a tag; rolloutctl reads a short name as a branch (refs/heads/\(base)), "
                    + "never a tag of that name: pass --ref refs/tags/\(base) to read the tag")
        }
        throw GitError(
            .unknownRef,
            "ref \"\(base)\" is not a branch, tag or commit of \(path); list them with `git branch -a` and `git tag`"
        )
    }

    /// True when the full ref name exists.
    func hasReference(_ name: String) -> Bool {
        var reference: OpaquePointer?
        guard git_reference_lookup(&reference, handle, name) == 0 else { return false }
        git_reference_free(reference)
        return true
    }

    private func hasAnyReference() throws(GitError) -> Bool {
        var iterator: OpaquePointer?
        try GitError.check(git_reference_iterator_new(&iterator, handle), "git_reference_iterator_new")
        defer { git_reference_iterator_free(iterator) }
        var reference: OpaquePointer?
        guard git_reference_next(&reference, iterator) == 0 else { return false }
        git_reference_free(reference)
        return true
    }

    /// The commit HEAD points at.
    public func head() throws(GitError) -> ObjectID {
        try resolveCommit("HEAD")
    }

    /// True when `name` is a local branch.
    public func hasBranch(_ name: String) -> Bool { hasReference("refs/heads/" + name) }

    /// Reads `user.email` from the repository's configuration (with global and system levels).
    public func configString(_ key: String) -> String? {
        var config: OpaquePointer?
        guard git_repository_config_snapshot(&config, handle) == 0, let config else { return nil }
        defer { git_config_free(config) }
        var value: UnsafePointer<CChar>?
        guard git_config_get_string(&value, config, key) == 0, let value else { return nil }
        return String(cString: value)
    }

    /// The work tree's folder, nil for a bare repository.
    public var workdir: String? {
        guard let pointer = git_repository_workdir(handle) else { return nil }
        return String(cString: pointer)
    }

    // MARK: Objects

    func lookupCommit(_ id: ObjectID) throws(GitError) -> OpaquePointer {
        var raw = id.raw
        var commit: OpaquePointer?
        try GitError.check(git_commit_lookup(&commit, handle, &raw), "git_commit_lookup(\(id))")
        return commit!
    }

    func lookupTree(_ id: ObjectID) throws(GitError) -> OpaquePointer {
        var raw = id.raw
        var tree: OpaquePointer?
        try GitError.check(git_tree_lookup(&tree, handle, &raw), "git_tree_lookup(\(id))")
        return tree!
    }

    /// The root tree id of a commit.
    public func treeID(ofCommit id: ObjectID) throws(GitError) -> ObjectID {
        let commit = try lookupCommit(id)
        defer { git_commit_free(commit) }
        return ObjectID(git_commit_tree_id(commit).pointee)
    }

    /// Reads a blob's bytes.
    public func readBlob(_ id: ObjectID) throws(GitError) -> [UInt8] {
        var raw = id.raw
        var blob: OpaquePointer?
        try GitError.check(git_blob_lookup(&blob, handle, &raw), "git_blob_lookup(\(id))")
        defer { git_blob_free(blob) }
        let size = Int(git_blob_rawsize(blob))
        guard size > 0, let content = git_blob_rawcontent(blob) else { return [] }
        return Array(UnsafeRawBufferPointer(start: content, count: size))
    }

    /// The blob id at `path` in a commit's tree, nil when absent or not a blob.
    public func blobID(atPath path: String, inCommit commit: ObjectID) throws(GitError) -> ObjectID? {
        let treeID = try treeID(ofCommit: commit)
        let tree = try lookupTree(treeID)
        defer { git_tree_free(tree) }
        return entryID(atPath: path, inTree: tree)
    }

    func entryID(atPath path: String, inTree tree: OpaquePointer) -> ObjectID? {
        var entry: OpaquePointer?
        guard git_tree_entry_bypath(&entry, tree, path) == 0, let entry else { return nil }
        defer { git_tree_entry_free(entry) }
        guard git_tree_entry_type(entry) == GIT_OBJECT_BLOB else { return nil }
        return ObjectID(git_tree_entry_id(entry).pointee)
    }

    /// Lists the files under the given top-level folders of a commit's tree (recursively),
    /// with their kind and size. Sizes come from the object header; contents are not read.
    public func listFiles(commit: ObjectID, under folders: [String]) throws(GitError) -> [TreeFile] {
        let rootID = try treeID(ofCommit: commit)
        let root = try lookupTree(rootID)
        defer { git_tree_free(root) }
        var odb: OpaquePointer?
        try GitError.check(git_repository_odb(&odb, handle), "git_repository_odb")
        defer { git_odb_free(odb) }
        var files: [TreeFile] = []
        for folder in folders {
            guard let entry = git_tree_entry_byname(root, folder) else { continue }
            if git_tree_entry_type(entry) == GIT_OBJECT_TREE {
                try collect(
                    tree: ObjectID(git_tree_entry_id(entry).pointee), prefix: folder + "/", odb: odb!, into: &files)
            } else {
                files.append(try treeFile(entry: entry, path: folder, odb: odb!))
            }
        }
        return files
    }

    /// Lists the files of a tree (recursively, in git's order), their paths prefixed with `prefix`.
    public func listFiles(tree id: ObjectID, prefix: String) throws(GitError) -> [TreeFile] {
        var odb: OpaquePointer?
        try GitError.check(git_repository_odb(&odb, handle), "git_repository_odb")
        defer { git_odb_free(odb) }
        var files: [TreeFile] = []
        try collect(tree: id, prefix: prefix, odb: odb!, into: &files)
        return files
    }

    private func collect(
        tree id: ObjectID, prefix: String, odb: OpaquePointer, into files: inout [TreeFile],
        nameProblem inherited: String? = nil
    ) throws(GitError) {
        let tree = try lookupTree(id)
        defer { git_tree_free(tree) }
        let (names, problems) = entryNames(tree, prefix: prefix)
        for index in names.indices {
            guard let entry = git_tree_entry_byindex(tree, index) else { continue }
            let name = names[index]
            let problem = inherited ?? problems[index]
            if git_tree_entry_type(entry) == GIT_OBJECT_TREE {
                try collect(
                    tree: ObjectID(git_tree_entry_id(entry).pointee), prefix: prefix + name + "/", odb: odb,
                    into: &files, nameProblem: problem)
            } else {
                var file = try treeFile(entry: entry, path: prefix + name, odb: odb)
                file.nameProblem = problem
                files.append(file)
            }
        }
    }

    /// The names of a tree's entries as text, and the problem of each (SPEC §4.0 rule 4): git compares names
    /// as bytes; text compares them after NFC normalisation, and cannot hold bytes that are not UTF-8. Either
    /// way two git names could become one path: flagged.
    private func entryNames(_ tree: OpaquePointer, prefix: String) -> (names: [String], problems: [String?]) {
        let count = git_tree_entrycount(tree)
        var names: [String] = []
        var problems: [String?] = []
        var byText: [String: Int] = [:]
        for index in 0..<count {
            let raw = git_tree_entry_name(git_tree_entry_byindex(tree, index))!
            let valid = String(validatingCString: raw)
            let name =
                valid
                ?? String(
                    decoding: UnsafeBufferPointer(start: raw, count: strlen(raw)).map { UInt8(bitPattern: $0) },
                    as: UTF8.self)
            names.append(name)
            problems.append(
                valid == nil ? "the name \(prefix)\(name) is not valid UTF-8; git names must be UTF-8 here" : nil)
            if let other = byText[name] {
                let message =
                    "the names \(prefix)\(names[other]) and \(prefix)\(name) are equal after Unicode NFC "
                    + "normalisation; rename one"
                problems[other] = problems[other] ?? message
                problems[index] = problems[index] ?? message
            } else {
                byText[name] = index
            }
        }
        return (names, problems)
    }

    /// A commit's `policies/` files and its `rollouts/` folder by folder, without reading the folders:
    /// `folders` are the sub-trees of `rollouts/` (name, tree id, the problem of the name, if any), `others`
    /// every file `listFiles(commit:under:)` lists that is not in one of them. `listFolder` lists one folder
    /// as `listFiles` would.
    public func rolloutFolders(commit: ObjectID) throws(GitError) -> (
        folders: [(name: String, tree: ObjectID, problem: String?)], others: [TreeFile]
    ) {
        let root = try lookupTree(try treeID(ofCommit: commit))
        defer { git_tree_free(root) }
        var odb: OpaquePointer?
        try GitError.check(git_repository_odb(&odb, handle), "git_repository_odb")
        defer { git_odb_free(odb) }
        var folders: [(name: String, tree: ObjectID, problem: String?)] = []
        var others: [TreeFile] = []
        for folder in RepositoryLayout.folders {
            guard let entry = git_tree_entry_byname(root, folder) else { continue }
            guard git_tree_entry_type(entry) == GIT_OBJECT_TREE else {
                others.append(try treeFile(entry: entry, path: folder, odb: odb!))
                continue
            }
            let id = ObjectID(git_tree_entry_id(entry).pointee)
            guard folder == RepositoryLayout.rolloutsFolder else {
                try collect(tree: id, prefix: folder + "/", odb: odb!, into: &others)
                continue
            }
            let tree = try lookupTree(id)
            defer { git_tree_free(tree) }
            let prefix = folder + "/"
            let (names, problems) = entryNames(tree, prefix: prefix)
            for index in names.indices {
                guard let child = git_tree_entry_byindex(tree, index) else { continue }
                if git_tree_entry_type(child) == GIT_OBJECT_TREE {
                    folders.append((names[index], ObjectID(git_tree_entry_id(child).pointee), problems[index]))
                } else {
                    var file = try treeFile(entry: child, path: prefix + names[index], odb: odb!)
                    file.nameProblem = problems[index]
                    others.append(file)
                }
            }
        }
        return (folders, others)
    }

    /// The files of one folder of `rolloutFolders`, as `listFiles(commit:under:)` lists them.
    public func listFolder(_ folder: (name: String, tree: ObjectID, problem: String?)) throws(GitError)
        -> [TreeFile]
    {
        var odb: OpaquePointer?
        try GitError.check(git_repository_odb(&odb, handle), "git_repository_odb")
        defer { git_odb_free(odb) }
        var files: [TreeFile] = []
        try collect(
            tree: folder.tree, prefix: RepositoryLayout.rolloutsPrefix + folder.name + "/", odb: odb!, into: &files,
            nameProblem: folder.problem)
        return files
    }

    private func treeFile(entry: OpaquePointer, path: String, odb: OpaquePointer) throws(GitError) -> TreeFile {
        let id = ObjectID(git_tree_entry_id(entry).pointee)
        switch git_tree_entry_filemode(entry) {
        case GIT_FILEMODE_LINK:
            return TreeFile(path: path, kind: .symlink, objectID: id.description, size: 0)
        case GIT_FILEMODE_COMMIT:
            return TreeFile(path: path, kind: .submodule, objectID: id.description, size: 0)
        default:
            var size = 0
            var type = GIT_OBJECT_BLOB
            var raw = id.raw
            try GitError.check(git_odb_read_header(&size, &type, odb, &raw), "git_odb_read_header(\(path))")
            return TreeFile(
                path: path, kind: .blob, objectID: id.description, size: size,
                mode: UInt32(git_tree_entry_filemode(entry).rawValue))
        }
    }

    // MARK: Commits

    /// The position of `tip` on its own first-parent line (0 for a root commit): the history walk's index.
    public func firstParentPosition(of tip: ObjectID) throws(GitError) -> Int {
        var count = -1
        try walkFirstParents(from: tip) { _ in
            count += 1
            return true
        }
        return count
    }

    /// Whether `ancestor` is on the first-parent line of `tip` (SPEC §4.0 rule 5), `tip` itself included.
    public func isOnFirstParentLine(_ ancestor: ObjectID, of tip: ObjectID) throws(GitError) -> Bool {
        var found = false
        try walkFirstParents(from: tip) { id in
            found = id == ancestor
            return !found
        }
        return found
    }

    /// Visits `tip` and its first parents, newest first, while `visit` returns true.
    private func walkFirstParents(from tip: ObjectID, _ visit: (ObjectID) -> Bool) throws(GitError) {
        var cursor: ObjectID? = tip
        while let id = cursor, visit(id) {
            let commit = try lookupCommit(id)
            defer { git_commit_free(commit) }
            cursor = git_commit_parentcount(commit) > 0 ? ObjectID(git_commit_parent_id(commit, 0).pointee) : nil
        }
    }

    /// Author, committer and SSH/GPG signature of one commit (the oracle of the raw reader's tests).
    public func commitFacts(_ id: ObjectID) throws(GitError) -> CommitFacts {
        let commit = try lookupCommit(id)
        defer { git_commit_free(commit) }
        let author = git_commit_author(commit)!.pointee
        let committer = git_commit_committer(commit)!.pointee
        var facts = CommitFacts(
            id: id.description,
            authorEmail: String(cString: author.email),
            committerEmail: String(cString: committer.email),
            committerTime: Int64(committer.when.time),
            signature: nil, signedData: nil)
        // Most commits are not signed: look at the parsed header first, rather than have
        // git_commit_extract_signature read the object again to find no `gpgsig` in it.
        var field = git_buf()
        let hasSignature = git_commit_header_field(&field, commit, "gpgsig") == 0
        git_buf_dispose(&field)
        guard hasSignature else { return facts }
        var signature = git_buf()
        var signed = git_buf()
        defer {
            git_buf_dispose(&signature)
            git_buf_dispose(&signed)
        }
        var raw = id.raw
        if git_commit_extract_signature(&signature, &signed, handle, &raw, nil) == 0 {
            facts.signature = String(
                decoding: UnsafeRawBufferPointer(start: signature.ptr, count: signature.size), as: UTF8.self)
            facts.signedData = Data(UnsafeRawBufferPointer(start: signed.ptr, count: signed.size))
        }
        return facts
    }

    // MARK: Fetch

    /// Fetches `branch` from `remote` (a configured remote's name, or a URL/path) into
    /// `refs/remotes/<name>/<branch>` and returns that ref. Only remote-tracking refs change.
    public func fetch(remote: String, branch: String) throws(GitError) -> String {
        var pointer: OpaquePointer?
        let named = git_remote_lookup(&pointer, handle, remote) == 0
        let remoteName = named ? remote : "rolloutctl"
        if !named {
            guard git_remote_create_anonymous(&pointer, handle, remote) == 0 else {
                throw GitError(.fetchFailed, "cannot fetch from \(remote): \(GitError.lastMessage())")
            }
        }
        defer { git_remote_free(pointer) }
        let target = "refs/remotes/\(remoteName)/\(branch)"
        let refspec = "+refs/heads/\(branch):\(target)"
        var options = git_fetch_options()
        git_fetch_options_init(&options, UInt32(GIT_FETCH_OPTIONS_VERSION))
        let result: Int32 = refspec.withCString { spec in
            var strings: [UnsafeMutablePointer<CChar>?] = [UnsafeMutablePointer(mutating: spec)]
            return strings.withUnsafeMutableBufferPointer { buffer in
                var array = git_strarray(strings: buffer.baseAddress, count: 1)
                return git_remote_fetch(pointer, &array, &options, "rolloutctl fetch")
            }
        }
        guard result == 0 else {
            throw GitError(
                .fetchFailed,
                "fetching \(branch) from \(remote) failed: \(GitError.lastMessage()); check the remote's URL "
                    + "and credentials"
            )
        }
        // libgit2 fetches nothing, successfully, when the remote has no such branch (git says
        // "couldn't find remote ref"); a stale remote-tracking ref must not be read as fresh.
        guard remoteAdvertises(pointer, "refs/heads/\(branch)") else {
            throw GitError(.fetchFailed, "\(remote) has no branch \(branch); check --fetch and protectedBranch")
        }
        return target
    }

    /// True when the remote's last listing (kept after `git_remote_fetch` disconnects) has `ref`.
    private func remoteAdvertises(_ remote: OpaquePointer?, _ ref: String) -> Bool {
        var heads: UnsafeMutablePointer<UnsafePointer<git_remote_head>?>?
        var count = 0
        guard git_remote_ls(&heads, &count, remote) == 0, let heads else { return false }
        for index in 0..<count {
            if let head = heads[index], let name = head.pointee.name, String(cString: name) == ref { return true }
        }
        return false
    }
}

extension GitRepository {
    /// The blob id git would give these bytes (`git hash-object`).
    public static func blobID(of bytes: [UInt8]) -> String {
        _ = libgit2Initialised
        var oid = git_oid()
        bytes.withUnsafeBytes { buffer in
            _ = git_odb_hash(&oid, buffer.baseAddress, buffer.count, GIT_OBJECT_BLOB)
        }
        return ObjectID(oid).description
    }
}
