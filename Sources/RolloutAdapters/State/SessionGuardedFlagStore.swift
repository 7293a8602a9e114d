import Foundation
import RolloutCore

/// The run's lock was lost: the session that held it is gone, so another replica may hold it now.
public struct StateLockLost: Error, CustomStringConvertible {
    public var description: String
}

/// A flag store that checks, before every flag call that may raise exposure, that the session holding the
/// installation's advisory lock is still alive (SPEC §10): a replica whose connection dropped mid-run raises
/// nothing more. Reads change nothing, and disabling needs no lock (SPEC §5 rule 3 [r3]: two replicas that both
/// disable a flag do no harm), so both go ahead without the lock: a replica that lost its session still rolls
/// back, records nothing (its state says why: `PostgresStateStore.unwritableReason`) and the next run records it.
/// The intent written before a call that raced a drop is resolved by the next holder's recovery.
public struct SessionGuardedFlagStore: FlagStore {
    public let inner: FlagStore
    private let checkSession: @Sendable () throws -> Void

    public init(inner: FlagStore, lock store: PostgresStateStore) {
        self.inner = inner
        let location = store.path
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
        try await inner.read(flag: flag)
    }

    public func apply(flag: String, patch: FlagPatch, ifMatch version: String) async throws -> FlagSnapshot {
        if patch.enabled { try checkSession() }  // disabling needs no lock
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
