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
            ticks = output.split(separator: "\n").filter { $0.hasPrefix("tick ") }.count
        }
        #expect(ticks >= 2)
        process.terminate()  // SIGTERM
        process.waitUntilExit()
        output += String(decoding: reader.readDataToEndOfFile(), as: UTF8.self)
        let errors = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationReason == .exit)
        #expect(process.terminationStatus == 0)
        #expect(output.contains("~ demo_flag[staging]: enabled, coverage 0 → 100 (advance to staging)"))
        // A service logs (SPEC §6 [r3]): no report, one summary per tick, the change once.
        #expect(!output.contains("Reconcile:"))
        #expect(output.contains("reconcile service stopped"))
        #expect(output.components(separatedBy: "advance to staging").count - 1 == 1)
        let flags = try String(contentsOfFile: state.file("flags.json"), encoding: .utf8)
        #expect(flags.contains("\"coverage\" : 100"))
    }

    @Test func logFormatJSONWritesOneObjectPerLineAndTheOptionsAreChecked() async throws {
        let repo = try GitFixture()
        try repo.commitFiles(
            [
                "rollouts/demo/plan.json": """
                { "apiVersion": "rolloutctl/v1", "name": "demo", "flag": "demo_flag",
                  "phases": [ { "name": "staging", "environment": "staging", "coverage": 100 } ] }
                """
            ], "Add demo")
        let state = try TemporaryDirectory(prefix: "rolloutctl-interval")
        let common = [
            "--repo", repo.path, "--state", state.file("state.sqlite"), "--flags", "file:" + state.file("flags.json"),
        ]
        #expect(try await RunningProcess(Self.binary, ["init"] + common).wait().status == 0)

        for (arguments, fragment) in [
            (["--interval", "1s", "--json"], "refuses --json"),
            (["--log-format", "json"], "go with --interval"),
            (["--interval", "1s", "--log-format", "xml"], "--log-format takes text or json"),
        ] {
            let refused = try await RunningProcess(Self.binary, ["reconcile"] + common + arguments).wait()
            #expect(refused.status != 0)
            #expect(refused.stderr.contains(fragment), "\(refused.all)")
        }

        let process = try RunningProcess(
            Self.binary, ["reconcile", "--interval", "1s", "--log-format", "json"] + common)
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, process.stdoutSoFar.components(separatedBy: "\"event\":\"tick\"").count < 3 {
            try await Task.sleep(for: .milliseconds(50))
        }
        process.process.terminate()
        let result = await process.wait()
        #expect(result.status == 0, "\(result.all)")
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.count >= 4)
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(object["time"] is String && object["level"] is String && object["message"] is String, "\(line)")
        }
        #expect(result.stdout.contains("\"event\":\"change\""))
    }
}
