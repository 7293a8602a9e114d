import Foundation
import RolloutCore

/// The embedded flag store (`--flags file:PATH`, the default): one JSON file, read and written
/// under a lock, replaced atomically (temp file, fsync, rename). A flag missing from it is
/// created there on first write.
///
/// Format: `{"flags": {"<key>": {"version": 3, "environments": {"production": {"enabled": true, "coverage": 10}}}}}`
public final class FileFlagStore: FlagStore {
    public let path: String

    public init(path: String) {
        self.path = path
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
        guard let data = FileManager.default.contents(atPath: path) else { return Document() }
        if data.isEmpty { return Document() }
        do {
            return try JSONDecoder().decode(Document.self, from: data)
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
        return FlagSnapshot(key: flag, version: String(stored.version), environments: stored.environments)
    }
}
