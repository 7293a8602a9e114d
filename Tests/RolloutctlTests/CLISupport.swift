import Foundation
import RolloutCore
import RolloutTestSupport

/// The built `rolloutctl` (`swift build --build-tests` builds it): `<package>/.build/debug/rolloutctl`.
enum Binary {
    static var packageRoot: String { BuiltProduct.packageRoot }
    static var path: String { BuiltProduct.debug("rolloutctl") ?? packageRoot + "/.build/debug/rolloutctl" }
}

/// What a finished process left.
struct ProcessResult: Sendable {
    var status: Int32
    var stdout: String
    var stderr: String
    var seconds: Double

    var all: String { stdout + stderr }
}

/// A process started without blocking a thread of the cooperative pool (the flag service the
/// process talks to runs on it): output goes to files, termination resumes a continuation.
final class RunningProcess: @unchecked Sendable {
    let process: Process
    private let directory: TemporaryDirectory
    private let started = Date()
    private let exited: Task<Int32, Never>

    init(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:],
        removing: [String] = [], in workingDirectory: String? = nil
    ) throws {
        let directory = try TemporaryDirectory(prefix: "rolloutctl-proc")
        self.directory = directory
        _ = FileManager.default.createFile(atPath: directory.file("out"), contents: nil)
        _ = FileManager.default.createFile(atPath: directory.file("err"), contents: nil)
        let process = Process()
        self.process = process
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for name in ["NO_COLOR", "ADMIN_TOKEN", "LOG_LEVEL"] + removing { env.removeValue(forKey: name) }
        for key in env.keys where key.hasPrefix("ROLLOUTCTL_") { env.removeValue(forKey: key) }
        for (key, value) in environment { env[key] = value }
        process.environment = env
        if let workingDirectory { process.currentDirectoryURL = URL(fileURLWithPath: workingDirectory) }
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: directory.file("out")))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: directory.file("err")))
        process.standardInput = FileHandle.nullDevice
        let stream = AsyncStream<Int32> { continuation in
            process.terminationHandler = { p in
                continuation.yield(p.terminationStatus)
                continuation.finish()
            }
        }
        exited = Task {
            for await status in stream { return status }
            return -1
        }
        try process.run()
    }

    /// What the process has written to stdout so far.
    var stdoutSoFar: String {
        (try? String(contentsOfFile: directory.file("out"), encoding: .utf8)) ?? ""
    }

    func wait() async -> ProcessResult {
        let status = await exited.value
        let out = (try? String(contentsOfFile: directory.file("out"), encoding: .utf8)) ?? ""
        let err = (try? String(contentsOfFile: directory.file("err"), encoding: .utf8)) ?? ""
        return ProcessResult(status: status, stdout: out, stderr: err, seconds: Date().timeIntervalSince(started))
    }
}

/// Runs `rolloutctl` with `arguments` and waits for it.
func rolloutctl(_ arguments: [String], environment: [String: String] = [:], in directory: String? = nil) async throws
    -> ProcessResult
{
    try await RunningProcess(Binary.path, arguments, environment: environment, in: directory).wait()
}

/// A rollout repository (made by `git`), a state folder, and the flag API on 127.0.0.1.
final class CLIWorld: @unchecked Sendable {
    let repo: GitFixture
    let stateDirectory: TemporaryDirectory
    let service: FakeFlagService
    static let token = "cli-s3cr3t-token-91ab"
    static let flag = "portal_form_autosave"

    var statePath: String { stateDirectory.file("state.sqlite") }
    var metricsPath: String { stateDirectory.file("metrics.json") }

    static let robin = GitFixture.Person(name: "Robin Release", email: "robin@example.com")

    init(serviceToken: String = CLIWorld.token) async throws {
        repo = try GitFixture()
        stateDirectory = try TemporaryDirectory(prefix: "rolloutctl-cli")
        service = FakeFlagService(token: serviceToken)
        service.setFlag(Self.flag, environments: [:])
        try await service.start()
        try setMetrics(["error-rate": 0.004, "latency-p95-delta": 0.05, "submission-success": 0.98])
    }

    func stop() async { await service.stop() }

    static func with(serviceToken: String = CLIWorld.token, _ body: (CLIWorld) async throws -> Void) async throws {
        let world = try await CLIWorld(serviceToken: serviceToken)
        do {
            try await body(world)
            await world.stop()
        } catch {
            await world.stop()
            throw error
        }
    }

    func setMetrics(_ values: [String: Double]) throws {
        let body = "{" + values.map { "\"\($0.key)\": \($0.value)" }.joined(separator: ", ") + "}"
        try Data(body.utf8).write(to: URL(fileURLWithPath: metricsPath))
    }

    static func plan(name: String = "exp-001-autosave", flag: String = CLIWorld.flag, extra: String = "") -> String {
        """
        {
          "apiVersion": "rolloutctl/v1",
          "name": "\(name)",
          "flag": "\(flag)",\(extra)
          "phases": [
            { "name": "staging", "environment": "staging", "coverage": 100 },
            { "name": "canary-10", "environment": "production", "coverage": 10, "bake": "24h",
              "approvals": ["engineering-lead", "qa-lead", "sre"] },
            { "name": "canary-50", "environment": "production", "coverage": 50, "bake": "24h" },
            { "name": "production", "environment": "production", "coverage": 100, "approvals": ["product-owner"] }
          ],
          "health": { "checks": [
            { "name": "error-rate", "query": "error_rate", "max": 0.02, "onBreach": "rollback" },
            { "name": "latency-p95-delta", "query": "p95_delta", "max": 0.20, "onBreach": "hold" },
            { "name": "submission-success", "query": "success", "min": 0.95, "onBreach": "rollback" }
          ] },
          "rollback": { "automatic": true, "notify": ["platform-team"] }
        }
        """
    }

    static let approvers = RolloutFixtures.exp001AuthorPolicy

    /// Commits the policy and the plan, then runs `rolloutctl init` (SPEC §5.10: reconcile never creates the state).
    func seed(plan: String = CLIWorld.plan()) async throws {
        try repo.commitFiles(
            ["policies/approvers.json": Self.approvers, "rollouts/exp-001-autosave/plan.json": plan],
            "Add exp-001-autosave", author: Self.robin)
        let result = try await initialise()
        guard result.status == 0 else { throw FixtureError("rolloutctl init failed: \(result.all)") }
    }

    /// `rolloutctl init` for this world's repository, flag service and state.
    func initialise(_ extra: [String] = []) async throws -> ProcessResult {
        try await rolloutctl(
            ["init", "--repo", repo.path, "--flags", service.baseURL, "--state", statePath] + extra,
            environment: ["ADMIN_TOKEN": Self.token])
    }

    /// `--repo … --flags … --state … --metrics …` for plan and reconcile.
    func runArguments(flags: String? = nil, now: String? = "2027-01-01T00:00:00Z") -> [String] {
        var arguments = [
            "--repo", repo.path, "--flags", flags ?? service.baseURL, "--state", statePath,
            "--metrics", "file:" + metricsPath,
        ]
        if let now { arguments += ["--now", now] }
        return arguments
    }

    func plan(
        _ extra: [String] = [], now: String? = "2027-01-01T00:00:00Z", flags: String? = nil,
        environment: [String: String] = [:]
    ) async throws -> ProcessResult {
        try await rolloutctl(
            ["plan"] + runArguments(flags: flags, now: now) + extra,
            environment: ["ADMIN_TOKEN": Self.token].merging(environment) { _, new in new })
    }

    func reconcile(
        _ extra: [String] = [], now: String? = "2027-01-01T00:00:00Z", flags: String? = nil,
        environment: [String: String] = [:]
    ) async throws -> ProcessResult {
        try await rolloutctl(
            ["reconcile"] + runArguments(flags: flags, now: now) + extra,
            environment: ["ADMIN_TOKEN": Self.token].merging(environment) { _, new in new })
    }

    /// The database and its journals. Not the `-shm` file: SQLite's shared-memory index of the WAL,
    /// which a read-only reader creates when it is missing; it holds no state.
    func stateBytes() -> Data {
        var data = Data()
        for suffix in ["", "-wal", "-journal"] {
            if let bytes = FileManager.default.contents(atPath: statePath + suffix) { data.append(bytes) }
        }
        return data
    }

    func environments(_ flag: String = CLIWorld.flag) -> [String: FlagEnvironmentState] {
        service.flag(flag)?.environments ?? [:]
    }
}

/// A port on 127.0.0.1 where nothing listens.
func closedPort() async throws -> Int {
    let server = HTTPTestServer { _ in .text(200) }
    try await server.start()
    let port = server.port
    await server.stop()
    return port
}

func parseJSON(_ text: String) throws -> [String: Any] {
    guard let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
        throw FixtureError("not a JSON object: \(text.prefix(200))")
    }
    return object
}

extension Data {
    /// Whether these bytes hold `text` (UTF-8) anywhere.
    func contains(_ text: String) -> Bool {
        range(of: Data(text.utf8)) != nil
    }
}
