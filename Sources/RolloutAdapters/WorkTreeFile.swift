import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Writes one file inside a work tree without ever leaving it (SPEC §6 [r3], `approve`): every
/// folder from the work tree's top down is opened with `O_NOFOLLOW`, so a folder on the way that
/// is a symlink (a committed `rollouts/demo/approvals/canary → /tmp/outside`) is refused, not
/// followed, and the file is written by temp file, fsync and rename inside the folder opened.
/// An existing file at the name is read first and replaced only when `replaceable` accepts it.
public enum WorkTreeFile {
    /// Why the file was not written; the message names the path.
    public struct Refusal: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    /// Writes `data` at `relative` (a `/`-separated path) under `root`, creating missing folders.
    /// - Parameters:
    ///   - prefixes: the folders `relative` must be inside (e.g. `rollouts/`).
    ///   - replaceable: given an existing file's bytes, nil when it may be replaced, else why not.
    public static func write(
        _ data: Data, root: String, relative: String, inside prefixes: [String],
        replaceable: (Data) -> String?
    ) throws {
        let components = relative.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard prefixes.contains(where: { relative.hasPrefix($0) }),
            components.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." })
        else {
            throw Refusal(
                description: "\(relative) is not inside \(prefixes.joined(separator: " or ")) of the work tree")
        }
        var folder = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard folder >= 0 else { throw posix("cannot open the work tree \(root)") }
        defer { close(folder) }
        var walked = ""
        for name in components.dropLast() {
            walked += name + "/"
            var next = openat(folder, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if next < 0, errno == ENOENT {
                guard mkdirat(folder, name, 0o755) == 0 || errno == EEXIST else {
                    throw posix("cannot create \(walked)")
                }
                next = openat(folder, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
            guard next >= 0 else {
                if isLink(folder, name) {
                    throw Refusal(
                        description: "\(walked.dropLast()) is a symlink: approve writes only inside the work "
                            + "tree and never through a link; remove the link (git rm) and try again")
                }
                throw posix("cannot open \(walked)")
            }
            close(folder)
            folder = next
        }
        let name = components.last!
        var info = stat()
        if fstatat(folder, name, &info, AT_SYMLINK_NOFOLLOW) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFREG else {
                throw Refusal(
                    description: "\(relative) exists and is not a regular file (a symlink?); it is not replaced")
            }
            let existing = try read(folder, name, relative: relative)
            if let reason = replaceable(existing) {
                throw Refusal(description: "\(relative) exists: \(reason); it is not replaced")
            }
        }
        let temp = ".\(name).\(getpid()).\(UUID().uuidString.prefix(8)).tmp"
        let fd = openat(folder, temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw posix("cannot write in \(walked)") }
        var ok = true
        data.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if written <= 0 {
                    ok = false
                    break
                }
                offset += written
            }
        }
        if ok, fsync(fd) != 0 { ok = false }
        close(fd)
        guard ok, renameat(folder, temp, folder, name) == 0 else {
            let error = posix("cannot write \(relative)")
            unlinkat(folder, temp, 0)
            throw error
        }
        fsync(folder)
    }

    private static func isLink(_ folder: Int32, _ name: String) -> Bool {
        var info = stat()
        return fstatat(folder, name, &info, AT_SYMLINK_NOFOLLOW) == 0 && (info.st_mode & S_IFMT) == S_IFLNK
    }

    private static func read(_ folder: Int32, _ name: String, relative: String) throws -> Data {
        let fd = openat(folder, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw posix("cannot read \(relative)") }
        defer { close(fd) }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = Glibc.read(fd, &buffer, buffer.count)
            if count < 0 { throw posix("cannot read \(relative)") }
            if count == 0 { break }
            data.append(contentsOf: buffer[0..<count])
            if data.count > 1_048_576 { break }
        }
        return data
    }

    private static func posix(_ what: String) -> Refusal {
        Refusal(description: "\(what): \(String(cString: strerror(errno)))")
    }
}
