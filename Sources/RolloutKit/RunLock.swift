import Foundation
import RolloutAdapters
import RolloutCore

/// One reconcile at a time per installation (SPEC §5.11): the lock a run holds, and what it lends
/// the run. SQLite: an exclusive `flock` on the state file itself (`StateFileLock`), and on
/// `<state>.lock` for runs of earlier versions. PostgreSQL (§10): a session advisory
/// lock on the session the run writes with, and the run's flag store wrapped so that every flag
/// call first checks that session (a replica that lost it stops before its next call).
public final class RunLock {
    /// The state the run must use (the PostgreSQL session that holds the lock), or nil to open it.
    public let state: (any StateStorage)?
    private let release: () -> Void
    private let guardFlags: (FlagStore) -> FlagStore

    private init(
        state: (any StateStorage)?, release: @escaping () -> Void,
        guardFlags: @escaping (FlagStore) -> FlagStore = { $0 }
    ) {
        self.state = state
        self.release = release
        self.guardFlags = guardFlags
    }

    /// What taking the lock came to.
    public enum Outcome {
        case held(RunLock)
        /// Another run holds it after `wait`: nothing to do this time (exit 0).
        case busy(String)
    }

    /// Takes the lock of the state at `statePath`, waiting up to `wait`. The state must exist
    /// (`reconcile` never creates one); a dry run neither writes nor needs one, and holds nothing.
    public static func acquire(statePath: String, wait: Duration, dryRun: Bool) throws -> Outcome {
        if dryRun { return .held(RunLock(state: nil, release: {})) }
        if case .postgres(let location) = try StateLocation(parsing: statePath) {
            let store = try PostgresStateStore.open(location)
            let held: Bool
            do {
                held = try store.lockInstallation(timeout: wait)
            } catch {
                store.close()
                throw error
            }
            guard held else {
                store.close()
                return .busy(
                    "another reconcile holds the lock of \(store.path); nothing done this time "
                        + "(wait with --lock-timeout)")
            }
            return .held(
                RunLock(
                    state: store, release: { store.close() },
                    guardFlags: { SessionGuardedFlagStore(inner: $0, lock: store) }))
        }
        guard FileManager.default.fileExists(atPath: statePath) else { throw StateStoreError.missing(path: statePath) }
        // The lock is on the state file itself (SPEC §5.11 [r3]); `<state>.lock`, the lock of earlier
        // versions, is taken as well, so that a run of an older rolloutctl is excluded too.
        let lock: StateFileLock
        let legacyPath = statePath + ".lock"
        let legacy: FileLock?
        do {
            guard let acquired = try StateFileLock.acquire(path: statePath, timeout: wait) else {
                return .busy(
                    "another reconcile holds the lock of the state \(statePath); nothing done this time "
                        + "(wait with --lock-timeout)")
            }
            lock = acquired
        } catch let error as StateStoreError {
            throw error
        } catch {
            throw RunLockError(detail: "cannot take the lock of the state \(statePath): \(error)")
        }
        do {
            guard let acquired = try FileLock.acquire(path: legacyPath, timeout: wait) else {
                lock.release()
                return .busy(
                    "another reconcile holds the lock \(legacyPath); nothing done this time "
                        + "(wait with --lock-timeout)")
            }
            legacy = acquired
        } catch {
            // The state's own lock is held; a lock file that cannot be made (a read-only or full
            // disk) must not stop a run that can still lower exposure (SPEC §5 rule 3 [r3]).
            legacy = nil
        }
        return .held(
            RunLock(
                state: nil,
                release: {
                    legacy?.release()
                    lock.release()
                }))
    }

    /// The run's ports with the flag store guarded by this lock's session, if it has one.
    public func guarding(_ ports: RunPorts) -> RunPorts {
        var ports = ports
        ports.flags = guardFlags(ports.flags)
        return ports
    }

    /// Lets the lock go (and closes the session that held it).
    public func unlock() { release() }
}

/// The lock file could not be taken (not: another run holds it).
public struct RunLockError: Error, CustomStringConvertible {
    public var detail: String
    public var description: String { detail }
}
