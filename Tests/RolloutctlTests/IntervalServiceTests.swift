import Foundation
import RolloutTestSupport
import Testing

/// `reconcile --interval` as a long-lived service: it reconciles on every tick and, on SIGTERM,
/// finishes the step in flight and exits 0.
@Suite struct IntervalServiceTests {
    static var binary: String { Binary.path }

    @Test func reconcilesEveryTickAndStopsGracefullyOnSIGTERM() async throws {
        let repo = try GitFixture()
        try repo.commitFiles(
            [
                "rollouts/demo/plan.json": """
                { "apiVersion": "rolloutctl/v1", "name": "demo", "flag": "demo_flag",
                  "phases": [ { "name": "staging", "environment": "staging", "coverage": 100 } ] }
                """
            ], "Add demo")
        let state = try TemporaryDirectory(prefix: "rolloutctl-interval")
        let initialised = try await RunningProcess(
            Self.binary,
            [
                "init", "--repo", repo.path, "--state", state.file("state.sqlite"),
                "--flags", "file:" + state.file("flags.json"),
            ]
        ).wait()
        #expect(initialised.status == 0, "\(initialised.all)")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = [
            "reconcile", "--repo", repo.path, "--interval", "1s", "--no-color",
            "--state", state.file("state.sqlite"), "--flags", "file:" + state.file("flags.json"),
        ]
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()

        // Wait (bounded) until two ticks have run, then ask it to stop.
        let deadline = Date().addingTimeInterval(30)
        var ticks = 0
        var output = ""
        let reader = stdout.fileHandleForReading
        while Date() < deadline && ticks < 2 {
            let chunk = reader.availableData
            if chunk.isEmpty { break }
            output += String(decoding: chunk, as: UTF8.self)
            ticks = output.components(separatedBy: "Reconcile:").count - 1
        }
        #expect(ticks >= 2)
        process.terminate()  // SIGTERM
        process.waitUntilExit()
        output += String(decoding: reader.readDataToEndOfFile(), as: UTF8.self)
        let errors = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationReason == .exit)
        #expect(process.terminationStatus == 0)
        #expect(errors.contains("reconcile service stopped"))
        #expect(output.contains("~ demo_flag[staging]: enabled, coverage 0 → 100 (advance to staging)"))
        let flags = try String(contentsOfFile: state.file("flags.json"), encoding: .utf8)
        #expect(flags.contains("\"coverage\" : 100"))
    }
}
