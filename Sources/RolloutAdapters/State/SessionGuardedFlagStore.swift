import Foundation
import RolloutCore

/// The run's lock was lost: the session that held it is gone, so another replica may hold it now.
public struct StateLockLost: Error, CustomStringConvertible {
    public var description: String
}

/// A flag store that checks, before every flag call, that the session holding the installation's advisory
/// lock is still alive (SPEC §10): a replica whose connection dropped mid-run stops before its next flag
/// call. Before a change (`apply`, `flush`) the check is a round trip on the session; before a read, which
/// changes nothing, it is the client's own view of the connection (no round trip per rollout). The intent
/// written before a call that raced a drop is resolved by the next holder's recovery.
public struct SessionGuardedFlagStore: FlagStore {
    public let inner: FlagStore
    private let checkSession: @Sendable () throws -> Void
    private let checkOpen: @Sendable () throws -> Void

    public init(inner: FlagStore, lock store: PostgresStateStore) {
        self.inner = inner
        let location = store.path
        checkOpen = {
            guard store.isOpen else {
                throw StateLockLost(
                    description: "the connection holding the lock on \(location) was lost; "
                        + "stopping before the next flag call, the next run finishes what this one started")
            }
        }
        checkSession = {
            do {
                try store.checkSession()
            } catch {
                throw StateLockLost(
                    description: "the connection holding the lock on \(location) was lost "
                        + "(\(error)); stopping before the next flag call, the next run finishes what this one started")
            }
        }
    }

    public func read(flag: String) async throws -> FlagSnapshot {
        try checkOpen()
        return try await inner.read(flag: flag)
    }

    public func apply(flag: String, patch: FlagPatch, ifMatch version: String) async throws -> FlagSnapshot {
        try checkSession()
        return try await inner.apply(flag: flag, patch: patch, ifMatch: version)
    }

    public func flush() async throws {
        try checkSession()
        try await inner.flush()
    }

    public var stagesWrites: Bool { inner.stagesWrites }

    public func planProblems(_ plan: Plan, path: String) -> [Diagnostic] {
        inner.planProblems(plan, path: path)
    }
}
