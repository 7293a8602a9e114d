import Foundation
import RolloutCore

/// The embedded flag store (`--flags file:PATH`, the default): one JSON file, read and written
/// under a lock, replaced atomically (temp file, fsync, rename). A flag missing from it is
/// created there on first write.
///
/// Format: `{"flags": {"<key>": {"version": 3, "environments": {"production": {"enabled": true, "coverage": 10}}}}}`
public final class FileFlagStore: FlagStore, @unchecked Sendable {
    public let path: String
    /// The last document read or written, with the file identity it came from: every write
    /// replaces the file (a new inode), so an unchanged identity means an unchanged file.
    /// Without it, reading 1,000 flags would decode the whole file 1,000 times.
    private var cached: (identity: FileIdentity, document: Document)?
    private let cacheLock = NSLock()

    public init(path: String) {
        self.path = path
    }

    private struct FileIdentity: Equatable {
        var inode: UInt64
        var size: Int64
        var modified: Double
    }

    private func identity() -> FileIdentity? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else { return nil }
        return FileIdentity(
            inode: (attributes[.systemFileNumber] as? NSNumber)?.uint64Value ?? 0,
            size: (attributes[.size] as? NSNumber)?.int64Value ?? -1,
            modified: (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)
    }

    private func remember(_ document: Document) {
        guard let identity = identity() else { return }
        cacheLock.withLock { cached = (identity, document) }
    }

    private struct Document: Codable {
        var flags: [String: Flag] = [:]
    }

    private struct Flag: Codable {
        var version: Int
        var environments: [String: FlagEnvironmentState]
    }

    private var lockPath: String { path + ".lock" }

    private func load() throws -> Document {
        if let identity = identity(), let hit = cacheLock.withLock({ cached }), hit.identity == identity {
            return hit.document
        }
        guard let data = FileManager.default.contents(atPath: path) else { return Document() }
        if data.isEmpty { return Document() }
        do {
            let document = try JSONDecoder().decode(Document.self, from: data)
            remember(document)
            return document
        } catch {
            throw FlagStoreError.invalidResponse("\(path) is not a flag store file (\(error)); fix or remove it")
        }
    }

    public func read(flag: String) async throws -> FlagSnapshot {
        let lock = try FileLock.acquireBlocking(path: lockPath)
        defer { lock.release() }
        let document = try load()
        guard let stored = document.flags[flag] else {
            return FlagSnapshot(key: flag, version: "0", environments: [:])
        }
        return FlagSnapshot(key: flag, version: String(stored.version), environments: stored.environments)
    }

    public func apply(flag: String, patch: FlagPatch, ifMatch version: String) async throws -> FlagSnapshot {
        let lock = try FileLock.acquireBlocking(path: lockPath)
        defer { lock.release() }
        var document = try load()
        var stored = document.flags[flag] ?? Flag(version: 0, environments: [:])
        guard String(stored.version) == version else { throw FlagStoreError.versionConflict(flag: flag) }
        let environments = patch.environment.map { [$0] } ?? Array(stored.environments.keys)
        for environment in environments {
            var state = stored.environments[environment] ?? .disabled
            state.enabled = patch.enabled
            if let coverage = patch.coverage { state.coverage = coverage }
            stored.environments[environment] = state
        }
        stored.version += 1
        document.flags[flag] = stored
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(document), to: path)
        remember(document)
        return FlagSnapshot(key: flag, version: String(stored.version), environments: stored.environments)
    }
}
