import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Writes files so that a reader sees the old content or the new, never half of it:
/// a temp file in the same folder, fsync, rename, fsync of the folder.
///
/// The new file keeps the mode and owner of the file it replaces (a 0600 file stays 0600; the
/// owner is kept where the process may set it). With `throughSymlinks`, a path that is a symlink
/// (or a chain of them) is written where it points, the temp file and the rename in the target's
/// folder, so the reader of the target sees the change and the link stays a link (SPEC §7.1 [r3]:
/// config management commonly points flagd at a file through a symlink).
public enum AtomicFile {
    /// `durable: false` skips the fsyncs, for files that may be lost or half-written by a crash
    /// without harm (a cache whose reader rejects a damaged file): readers still see the old
    /// content or the new, never a mixture, as long as the system does not crash.
    public static func write(
        _ data: Data, to path: String, durable: Bool = true, throughSymlinks: Bool = false
    ) throws {
        let target = throughSymlinks ? try resolveLinks(path) : path
        let url = URL(fileURLWithPath: target)
        let folder = url.deletingLastPathComponent().path
        let temp = folder + "/.\(url.lastPathComponent).\(getpid()).\(UUID().uuidString.prefix(8)).tmp"
        var existing = stat()
        let replacing = lstat(target, &existing) == 0 && (existing.st_mode & S_IFMT) == S_IFREG
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL, replacing ? 0o600 : 0o644)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        var ok = true
        if replacing {
            // Owner first: chown may clear set-id bits, which the chmod then restores.
            if existing.st_uid != geteuid() || existing.st_gid != getegid() {
                _ = fchown(fd, existing.st_uid, existing.st_gid)
            }
            if fchmod(fd, existing.st_mode & 0o7777) != 0 { ok = false }
        }
        data.withUnsafeBytes { buffer in
            var offset = 0
            while ok, offset < buffer.count {
                let written = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if written <= 0 {
                    ok = false
                    break
                }
                offset += written
            }
        }
        if durable, ok, fsync(fd) != 0 { ok = false }
        let failure = errno
        close(fd)
        guard ok, rename(temp, target) == 0 else {
            let code = ok ? errno : failure
            unlink(temp)
            throw POSIXError(POSIXErrorCode(rawValue: code) ?? .EIO)
        }
        guard durable else { return }
        let dir = open(folder, O_RDONLY)
        if dir >= 0 {
            fsync(dir)
            close(dir)
        }
    }

    /// The path a chain of symlinks ends at (relative links resolved against their own folder);
    /// the path itself when it is not a link. The end may not exist yet (a file to be created).
    public static func resolveLinks(_ path: String) throws -> String {
        var current = path
        for _ in 0..<40 {
            var info = stat()
            guard lstat(current, &info) == 0, (info.st_mode & S_IFMT) == S_IFLNK else { return current }
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let count = readlink(current, &buffer, buffer.count - 1)
            guard count > 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
            let link = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            current =
                link.hasPrefix("/")
                ? link : URL(fileURLWithPath: current).deletingLastPathComponent().appendingPathComponent(link).path
        }
        throw POSIXError(.ELOOP)
    }
}
