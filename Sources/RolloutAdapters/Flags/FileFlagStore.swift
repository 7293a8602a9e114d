import Foundation
import RolloutCore

#if canImport(Glibc)
    import Glibc
#endif

/// The embedded flag store (`--flags file:PATH`, the default): one JSON file, read and written
/// under a lock, replaced atomically (temp file, fsync, rename). A flag missing from it is
/// created there on first write.
///
/// It stages: `apply` changes a copy in memory (later reads in the same run see it) and
/// `flush()` writes every staged change in one atomic rewrite, so a run over 1,000 rollouts
/// costs one rewrite, not 1,000. `flush()` re-reads the file under the lock and refuses to
/// write (`versionConflict`, nothing written, the staged changes dropped) when a flag it
/// changed was changed in the file meanwhile; flags it did not change are taken from the file.
///
/// Format: `{"flags": {"<key>": {"version": 3, "environments": {"production": {"enabled": true, "coverage": 10}}}}}`
public final class FileFlagStore: FlagStore, @unchecked Sendable {
    public let path: String
    /// The last document read or written, with the file identity it came from: every write
    /// replaces the file (a new inode), so an unchanged identity means an unchanged file.
    /// Without it, reading 1,000 flags would decode the whole file 1,000 times.
    private var cached: (identity: FileIdentity, document: Document)?
    private let cacheLock = NSLock()
    /// The staged document and, per changed flag, its version in the file when first staged.
    private var staged: (document: Document, base: [String: Int])?
    private let stageLock = NSLock()

    public var stagesWrites: Bool { true }

    public init(path: String) {
        self.path = path
    }

    private struct FileIdentity: Equatable {
        var inode: UInt64
        var size: Int64
        var modified: Double
    }

    /// The identity of the file the path names, through a symlink (writes go through it, so the
    /// link's own identity would never change).
    private func identity() -> FileIdentity? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return FileIdentity(
            inode: UInt64(info.st_ino), size: Int64(info.st_size),
            modified: Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9)
    }

    private func remember(_ document: Document) {
        guard let identity = identity() else { return }
        cacheLock.withLock { cached = (identity, document) }
    }

    private typealias Document = FileFlagDocument
    private typealias Flag = FileFlagDocument.Flag

    private var lockPath: String { path + ".lock" }

    private func load() throws -> Document {
        if let identity = identity(), let hit = cacheLock.withLock({ cached }), hit.identity == identity {
            return hit.document
        }
        guard let data = FileManager.default.contents(atPath: path) else { return Document() }
        if data.isEmpty { return Document() }
        do {
            let document = try Document.decode(Array(data))
            remember(document)
            return document
        } catch {
            throw FlagStoreError.invalidResponse("\(path) is not a flag store file (\(error.detail)); fix or remove it")
        }
    }

    public func read(flag: String) async throws -> FlagSnapshot {
        if let document = stageLock.withLock({ staged?.document }) {
            return try snapshot(flag, document.flags[flag]).answering(flag, service: path)
        }
        let lock = try FileLock.acquireBlocking(path: lockPath)
        defer { lock.release() }
        // The document is keyed by flag (a key twice is refused): the check holds by construction.
        return try snapshot(flag, try load().flags[flag]).answering(flag, service: path)
    }

    private func snapshot(_ flag: String, _ stored: Flag?) -> FlagSnapshot {
        guard let stored else { return FlagSnapshot(key: flag, version: "0", environments: [:]) }
        return FlagSnapshot(key: flag, version: String(stored.version), environments: stored.environments)
    }

    public func apply(flag: String, patch: FlagPatch, ifMatch version: String) async throws -> FlagSnapshot {
        try stageLock.withLock {
            if staged == nil {
                let lock = try FileLock.acquireBlocking(path: lockPath)
                defer { lock.release() }
                staged = (try load(), [:])
            }
            // Mutated in place: a copy of a 1,000-flag document per change would make a run quadratic.
            var stored = staged!.document.flags[flag] ?? Flag(version: 0, environments: [:])
            guard String(stored.version) == version else { throw FlagStoreError.versionConflict(flag: flag) }
            if staged!.base[flag] == nil { staged!.base[flag] = stored.version }
            let environments = patch.environment.map { [$0] } ?? Array(stored.environments.keys)
            for environment in environments {
                var state = stored.environments[environment] ?? .disabled
                state.enabled = patch.enabled
                if let coverage = patch.coverage { state.coverage = coverage }
                stored.environments[environment] = state
            }
            stored.version += 1
            staged!.document.flags[flag] = stored
            return snapshot(flag, stored)
        }
    }

    public func flush() async throws {
        guard
            let pending = stageLock.withLock({ () -> (document: Document, base: [String: Int])? in
                defer { staged = nil }  // written or refused: the next run starts from the file
                return staged
            }), !pending.base.isEmpty
        else { return }
        let lock = try FileLock.acquireBlocking(path: lockPath)
        defer { lock.release() }
        var document = try load()
        for (flag, base) in pending.base.sorted(by: { $0.key < $1.key }) {
            guard (document.flags[flag]?.version ?? 0) == base else {
                throw FlagStoreError.versionConflict(flag: flag)
            }
            document.flags[flag] = pending.document.flags[flag]
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(document), to: path, throughSymlinks: true)
        remember(document)
    }
}
