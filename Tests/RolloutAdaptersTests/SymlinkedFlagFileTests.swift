import Foundation
import RolloutCore
import RolloutTestSupport
import Testing

@testable import RolloutAdapters

#if canImport(Glibc)
    import Glibc
#endif

/// SPEC §7.1 [r3]: `file:` and `flagd:` files are written where the reader reads them. A path
/// that is a symlink (config management pointing flagd at a file) is written through to its
/// target, the link stays a link, and the file keeps its mode. Real files, links and modes.
@Suite(.serialized) struct SymlinkedFlagFileTests {
    static let flag = "portal_form_autosave"
    static let flagd = """
        {
          "flags": {
            "portal_form_autosave": {
              "state": "ENABLED",
              "variants": { "on": true, "off": false },
              "defaultVariant": "off"
            }
          }
        }

        """

    static func mode(_ path: String) -> mode_t {
        var info = stat()
        guard stat(path, &info) == 0 else { return 0 }
        return info.st_mode & 0o7777
    }

    static func isLink(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFLNK
    }

    static func write(_ text: String, to path: String, mode: mode_t) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        #expect(chmod(path, mode) == 0)
    }

    @Test func aFlagdWriteThroughARelativeSymlinkLandsInTheTargetAndKeepsMode0600() async throws {
        let directory = try TemporaryDirectory(prefix: "rolloutctl-symlink")
        try FileManager.default.createDirectory(atPath: directory.file("managed"), withIntermediateDirectories: true)
        let target = directory.file("managed/production.flagd.json")
        try Self.write(Self.flagd, to: target, mode: 0o600)
        let link = directory.file("flags.json")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "managed/production.flagd.json")

        let store = FlagdFlagStore(path: link, environment: "production")
        let read = try await store.read(flag: Self.flag)
        _ = try await store.apply(
            flag: Self.flag, patch: FlagPatch(environment: "production", enabled: true, coverage: 10),
            ifMatch: read.version)

        #expect(Self.isLink(link))
        #expect(Self.mode(target) == 0o600)
        // What the reader of the target sees: the new coverage.
        let reader = FlagdFlagStore(path: target, environment: "production")
        #expect(try await reader.read(flag: Self.flag).environments["production"] == .init(enabled: true, coverage: 10))
        // No temp file left beside the link or the target.
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.file("managed"))
        #expect(leftovers.filter { $0.hasSuffix(".tmp") }.isEmpty)
    }

    @Test func theFileStoreWritesThroughAChainOfLinksAndKeepsMode0640() async throws {
        let directory = try TemporaryDirectory(prefix: "rolloutctl-symlink")
        let target = directory.file("real-flags.json")
        try Self.write(#"{"flags": {}}"#, to: target, mode: 0o640)
        try FileManager.default.createSymbolicLink(atPath: directory.file("second"), withDestinationPath: target)
        let link = directory.file("flags.json")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "second")

        let store = FileFlagStore(path: link)
        let read = try await store.read(flag: Self.flag)
        _ = try await store.apply(
            flag: Self.flag, patch: FlagPatch(environment: "production", enabled: true, coverage: 50),
            ifMatch: read.version)
        try await store.flush()

        #expect(Self.isLink(link) && Self.isLink(directory.file("second")))
        #expect(Self.mode(target) == 0o640)
        let reader = FileFlagStore(path: target)
        #expect(try await reader.read(flag: Self.flag).environments["production"]?.coverage == 50)

        // A write through the target is seen through the link: the cache follows the target's identity.
        let again = try await reader.read(flag: Self.flag)
        _ = try await reader.apply(
            flag: Self.flag, patch: FlagPatch(environment: "production", enabled: false, coverage: nil),
            ifMatch: again.version)
        try await reader.flush()
        #expect(try await store.read(flag: Self.flag).environments["production"]?.enabled == false)
    }

    @Test func aLinkToAFileNotYetThereCreatesTheTarget() async throws {
        let directory = try TemporaryDirectory(prefix: "rolloutctl-symlink")
        let link = directory.file("flags.json")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: directory.file("created.json"))
        let store = FileFlagStore(path: link)
        _ = try await store.apply(
            flag: Self.flag, patch: FlagPatch(environment: "staging", enabled: true, coverage: 100), ifMatch: "0")
        try await store.flush()
        #expect(Self.isLink(link))
        #expect(FileManager.default.fileExists(atPath: directory.file("created.json")))
    }

    @Test func aRegularFileKeepsItsModeToo() throws {
        let directory = try TemporaryDirectory(prefix: "rolloutctl-symlink")
        let path = directory.file("plain.json")
        try Self.write("{}", to: path, mode: 0o600)
        try AtomicFile.write(Data("{\"a\": 1}".utf8), to: path)
        #expect(Self.mode(path) == 0o600)
        #expect(!Self.isLink(path))
    }

    @Test func aLoopOfLinksIsAnError() throws {
        let directory = try TemporaryDirectory(prefix: "rolloutctl-symlink")
        try FileManager.default.createSymbolicLink(atPath: directory.file("a"), withDestinationPath: "b")
        try FileManager.default.createSymbolicLink(atPath: directory.file("b"), withDestinationPath: "a")
        #expect(throws: POSIXError.self) {
            try AtomicFile.write(Data("{}".utf8), to: directory.file("a"), throughSymlinks: true)
        }
    }
}
