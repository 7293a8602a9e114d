import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Writes files so that a reader sees the old content or the new, never half of it:
/// a temp file in the same folder, fsync, rename, fsync of the folder.
public enum AtomicFile {
    /// `durable: false` skips the fsyncs, for files that may be lost or half-written by a crash
    /// without harm (a cache whose reader rejects a damaged file): readers still see the old
    /// content or the new, never a mixture, as long as the system does not crash.
    public static func write(_ data: Data, to path: String, durable: Bool = true) throws {
        let url = URL(fileURLWithPath: path)
        let folder = url.deletingLastPathComponent().path
        let temp = folder + "/.\(url.lastPathComponent).\(getpid()).\(UUID().uuidString.prefix(8)).tmp"
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
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
        if durable, fsync(fd) != 0 { ok = false }
        close(fd)
        guard ok, rename(temp, path) == 0 else {
            unlink(temp)
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
        guard durable else { return }
        let dir = open(folder, O_RDONLY)
        if dir >= 0 {
            fsync(dir)
            close(dir)
        }
    }
}
