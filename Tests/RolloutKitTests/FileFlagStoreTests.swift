import Foundation
import RolloutCore
import RolloutTestSupport
import Testing

@testable import RolloutAdapters
@testable import RolloutKit

/// The embedded `file:` store writes once per run: `apply` stages, `flush()` makes one atomic rewrite.
@Suite(.serialized) struct FileFlagStoreTests {
    private func identity(_ path: String) throws -> NSNumber? {
        try FileManager.default.attributesOfItem(atPath: path)[.systemFileNumber] as? NSNumber
    }

    @Test func applyStagesAndFlushWritesEveryChangeAtOnce() async throws {
        let directory = try TemporaryDirectory(prefix: "rolloutctl-filestore")
        let path = directory.file("flags.json")
        let store = FileFlagStore(path: path)
        for flag in ["a", "b", "c"] {
            let read = try await store.read(flag: flag)
            let patch = FlagPatch(environment: "staging", enabled: true, coverage: 100)
            _ = try await store.apply(flag: flag, patch: patch, ifMatch: read.version)
        }
        // Staged: the same store sees the changes, the file does not exist yet.
        #expect(
            try await store.read(flag: "b").environments
                == ["staging": FlagEnvironmentState(enabled: true, coverage: 100)])
        #expect(!FileManager.default.fileExists(atPath: path))
        try await store.flush()
        let fresh = FileFlagStore(path: path)
        for flag in ["a", "b", "c"] {
            #expect(try await fresh.read(flag: flag).environments["staging"]?.coverage == 100)
        }
        // A flush with nothing staged writes nothing (the file keeps its inode).
        let before = try identity(path)
        try await store.flush()
        #expect(try identity(path) == before)
    }

    /// A flag changed in the file after it was staged: the flush writes nothing and says which flag.
    @Test func flushRefusesWhenAStagedFlagMovedInTheFile() async throws {
        let directory = try TemporaryDirectory(prefix: "rolloutctl-filestore")
        let path = directory.file("flags.json")
        let mine = FileFlagStore(path: path)
        let theirs = FileFlagStore(path: path)
        let patch = FlagPatch(environment: "production", enabled: true, coverage: 10)
        _ = try await mine.apply(flag: "x", patch: patch, ifMatch: try await mine.read(flag: "x").version)
        _ = try await theirs.apply(
            flag: "x", patch: FlagPatch(environment: "production", enabled: false, coverage: 0),
            ifMatch: "0")
        try await theirs.flush()
        let written = try Data(contentsOf: URL(fileURLWithPath: path))
        await #expect(throws: FlagStoreError.versionConflict(flag: "x")) { try await mine.flush() }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == written)
        // The refused changes are dropped: the store reads the file again.
        #expect(try await mine.read(flag: "x").environments["production"]?.enabled == false)
    }

    /// A reconcile over several rollouts flushes once, after every rollout was applied; the
    /// intents and results are recorded per change as before.
    @Test func reconcileFlushesOncePerRun() async throws {
        let directory = try TemporaryDirectory(prefix: "rolloutctl-filestore")
        let counter = FlushCountingStore(inner: FileFlagStore(path: directory.file("flags.json")))
        let world = try RolloutWorld(flags: counter)
        try world.seed()
        for index in 2...4 {
            try world.repo.commitFiles(
                [
                    "rollouts/exp-00\(index)/plan.json": RolloutWorld.exp001Plan(
                        name: "exp-00\(index)", flag: "flag_\(index)")
                ], "Add exp-00\(index)", author: RolloutWorld.robin)
        }
        let report = try await world.run(hours: 0)
        #expect(report.rollouts.filter { $0.applied && !$0.changes.isEmpty }.count == 4)
        #expect(counter.flushes == 1)
        #expect(counter.appliesBeforeFirstFlush == 4)
        let results = try SQLiteStateStore(path: world.statePath).history().filter { $0.kind == .result }
        #expect(results.count == 4)
        _ = try await world.run(.plan, hours: 1)
        #expect(counter.flushes == 1)  // plan never flushes
    }
}

/// Counts flushes around a real store (the count is the fact under test; every call goes through).
final class FlushCountingStore: FlagStore, @unchecked Sendable {
    let inner: FlagStore
    private let lock = NSLock()
    private var counts = (applies: 0, flushes: 0, appliesBeforeFirstFlush: -1)

    init(inner: FlagStore) { self.inner = inner }

    var flushes: Int { lock.withLock { counts.flushes } }
    var appliesBeforeFirstFlush: Int { lock.withLock { counts.appliesBeforeFirstFlush } }
    var stagesWrites: Bool { inner.stagesWrites }

    func read(flag: String) async throws -> FlagSnapshot { try await inner.read(flag: flag) }

    func apply(flag: String, patch: FlagPatch, ifMatch version: String) async throws -> FlagSnapshot {
        lock.withLock { counts.applies += 1 }
        return try await inner.apply(flag: flag, patch: patch, ifMatch: version)
    }

    func flush() async throws {
        lock.withLock {
            counts.flushes += 1
            if counts.appliesBeforeFirstFlush < 0 { counts.appliesBeforeFirstFlush = counts.applies }
        }
        try await inner.flush()
    }
}
