import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The run lock of an SQLite state (SPEC §5.11 [r3]): an exclusive `flock` on the state file
/// itself, so the lock belongs to the state, not to a path name. A cleanup job that removes or
/// replaces `state.sqlite.lock` cannot let a second run in, and a state restored over the old one
/// (a new inode) is checked for after the lock is taken: the path must still name the file locked.
///
/// `flock` and SQLite's own `fcntl` locks are independent on Linux. The descriptor is never
/// closed while the process lives (released with `LOCK_UN`): closing any descriptor of a file
/// drops every `fcntl` lock the process holds on it, which would pull SQLite's locks from under a
/// connection still open in the same process (`serve --reconcile-interval` plans while it reconciles).
public final class StateFileLock: @unchecked Sendable {
    private let fd: Int32
    private var held = true
    private let lock = NSLock()

    private init(fd: Int32) { self.fd = fd }

    /// Descriptors opened for locking, by path, with the file they name; never closed.
    private static let table = LockedDescriptors()

    /// Takes the lock, waiting up to `timeout` (polling); nil when another process holds it.
    /// Throws `StateStoreError.missing` when there is no state (the lock never creates one).
    public static func acquire(path: String, timeout: Duration = .zero) throws -> StateFileLock? {
        let deadline = ContinuousClock.now + timeout
        while true {
            let fd = try table.descriptor(for: path)
            if flock(fd, LOCK_EX | LOCK_NB) == 0 {
                // Still the file the path names? (A state restored over it while we waited is another file.)
                if table.names(fd, path) { return StateFileLock(fd: fd) }
                flock(fd, LOCK_UN)
                continue
            }
            guard errno == EWOULDBLOCK || errno == EINTR, ContinuousClock.now < deadline else { return nil }
            usleep(50_000)
        }
    }

    /// Lets the lock go (the descriptor stays open; see the type's comment).
    public func release() {
        lock.withLock {
            guard held else { return }
            held = false
            flock(fd, LOCK_UN)
        }
    }

    deinit { release() }
}

/// The process's lock descriptors, one per state file (device and inode).
private final class LockedDescriptors: @unchecked Sendable {
    private let lock = NSLock()
    private var descriptors: [String: (fd: Int32, device: UInt64, inode: UInt64)] = [:]

    func descriptor(for path: String) throws -> Int32 {
        try lock.withLock {
            var info = stat()
            guard stat(path, &info) == 0 else {
                if errno == ENOENT { throw StateStoreError.missing(path: path) }
                throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
            }
            if let known = descriptors[path], known.device == UInt64(info.st_dev), known.inode == UInt64(info.st_ino) {
                return known.fd
            }
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                if errno == ENOENT { throw StateStoreError.missing(path: path) }
                throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
            }
            var opened = stat()
            fstat(fd, &opened)
            descriptors[path] = (fd, UInt64(opened.st_dev), UInt64(opened.st_ino))
            return fd
        }
    }

    /// Whether `path` names the file `fd` is open on.
    func names(_ fd: Int32, _ path: String) -> Bool {
        var byPath = stat()
        var byDescriptor = stat()
        return stat(path, &byPath) == 0 && fstat(fd, &byDescriptor) == 0 && byPath.st_dev == byDescriptor.st_dev
            && byPath.st_ino == byDescriptor.st_ino
    }
}
