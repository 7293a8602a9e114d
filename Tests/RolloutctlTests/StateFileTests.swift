import Foundation
import RolloutTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A folder made read-only for this process: a read-only bind mount when the process may mount
/// (root in CI's container), else `chmod` (which root ignores). Unmounted on `close()`.
final class ReadOnlyFolder {
    let path: String
    private let mounted: Bool

    /// Nil when this process can make no read-only folder (root without mount rights): the
    /// caller skips, saying so.
    init?(copying source: String, into directory: TemporaryDirectory) throws {
        let view = directory.file("read-only")
        try FileManager.default.copyItem(atPath: source, toPath: directory.file("source"))
        try FileManager.default.createDirectory(atPath: view, withIntermediateDirectories: true)
        path = view
        if getuid() == 0 {
            guard (try? runProgram("mount", ["--bind", directory.file("source"), view])) != nil else { return nil }
            guard (try? runProgram("mount", ["-o", "remount,bind,ro", view])) != nil else {
                _ = try? runProgram("umount", [view])
                return nil
            }
            mounted = true
        } else {
            try FileManager.default.removeItem(atPath: view)
            try FileManager.default.moveItem(atPath: directory.file("source"), toPath: view)
            for file in try FileManager.default.contentsOfDirectory(atPath: view) { chmod(view + "/" + file, 0o444) }
            chmod(view, 0o555)
            mounted = false
        }
    }

    func close() {
        if mounted { _ = try? runProgram("umount", [path]) } else { chmod(path, 0o755) }
    }
}

/// SPEC §6 [r3] and §5.10: a state that can only be read is read by `plan` and `status`, saying
/// so; a damaged state is an error naming the file and what to do, never a bare SQLite error,
/// and nothing is written into a file that is not a state. Real SQLite files, a real read-only
/// bind mount (or chmod where the test cannot mount).
@Suite(.serialized) struct StateFileTests {
    @Test func aReadOnlyStateIsReadByPlanAndStatusWhichSaySo() async throws {
        try await CLIWorld.with { w in
            try await w.seed()
            #expect(try await w.reconcile().status == 0)
            let scratch = try TemporaryDirectory(prefix: "rolloutctl-ro")
            guard let folder = try ReadOnlyFolder(copying: w.stateDirectory.path, into: scratch) else {
                print("skipped: running as root without the right to mount, so no folder can be made read-only")
                return
            }
            defer { folder.close() }
            let state = folder.path + "/state.sqlite"
            #expect(!FileManager.default.fileExists(atPath: state + "-shm"))

            let status = try await rolloutctl(["status", "--state", state])
            #expect(status.status == 0, "\(status.all)")
            #expect(status.stdout.contains("exp-001-autosave"))
            #expect(status.stderr.contains("note: the state at \(state)"), "\(status.stderr)")
            #expect(!status.all.contains("SQLite error"))

            var arguments = ["plan"] + w.runArguments(now: "2027-01-01T01:00:00Z")
            arguments[arguments.firstIndex(of: w.statePath)!] = state
            let plan = try await rolloutctl(arguments, environment: ["ADMIN_TOKEN": CLIWorld.token])
            #expect(plan.status == 0, "\(plan.all)")
            #expect(plan.stderr.contains("note: the state at \(state)"), "\(plan.stderr)")
            #expect(!plan.all.contains("SQLite error"))
        }
    }

    static func damage(_ kind: String, _ path: String) throws {
        switch kind {
        case "empty":
            try Data().write(to: URL(fileURLWithPath: path))
        case "garbage":
            try Data(String(repeating: "not a database ", count: 500).utf8).write(to: URL(fileURLWithPath: path))
        default:
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            #expect(data.count > 8192, "the state is too small to truncate meaningfully")
            try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: path))
        }
    }

    @Test(arguments: ["empty", "garbage", "truncated"])
    func aDamagedStateIsAClearErrorAndIsNeverWritten(kind: String) async throws {
        try await CLIWorld.with { w in
            try await w.seed()
            #expect(try await w.reconcile().status == 0)
            try Self.damage(kind, w.statePath)
            let before = try Data(contentsOf: URL(fileURLWithPath: w.statePath))

            let runs = [
                try await rolloutctl(["status", "--state", w.statePath]),
                try await rolloutctl(["history", "--state", w.statePath]),
                try await w.plan(now: "2027-01-01T01:00:00Z"),
                try await w.reconcile(now: "2027-01-01T01:00:00Z"),
            ]
            for result in runs {
                #expect(result.status == 1, "\(kind): \(result.all)")
                #expect(result.stderr.contains("the state at \(w.statePath) is damaged"), "\(kind): \(result.stderr)")
                #expect(result.stderr.contains("restore it from a backup"), "\(kind): \(result.stderr)")
                #expect(result.stderr.contains("rolloutctl init --adopt"), "\(kind): \(result.stderr)")
                #expect(!result.stderr.contains("SQLite error"), "\(kind): \(result.stderr)")
            }
            // Nothing written into it: a zero-byte file stays zero bytes, no schema given to it.
            #expect(try Data(contentsOf: URL(fileURLWithPath: w.statePath)) == before)
            #expect(w.service.appliedPatches.count == 1)
        }
    }
}
