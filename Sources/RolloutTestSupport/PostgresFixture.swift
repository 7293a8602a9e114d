import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A real PostgreSQL (Debian's `postgresql` package) for tests: a private data directory in a temporary folder,
/// listening on 127.0.0.1 and a free port, password (SCRAM) authentication for a test role. initdb refuses to
/// run as root, so when the tests run as root (CI, this machine) initdb runs as the `postgres` user through
/// `runuser` and the server through `setpriv` (util-linux). `stop()` stops it and removes everything.
public final class PostgresFixture: @unchecked Sendable {
    public enum Failure: Error, CustomStringConvertible {
        case unavailable(String)
        case command(String, status: Int32, output: String)

        public var description: String {
            switch self {
            case .unavailable(let why): return "PostgreSQL is not available: \(why)"
            case .command(let command, let status, let output): return "\(command) failed (exit \(status)):\n\(output)"
            }
        }
    }

    /// The role the tests connect as, and its password (pass it as `PGPASSWORD`).
    public let user = "rollout"
    public let password = "pw-" + UUID().uuidString.prefix(13).lowercased()
    public let port: Int
    public let directory: URL
    private let binaries: URL
    private let superPassword = "super-" + UUID().uuidString.prefix(8).lowercased()
    private let asPostgres: Bool
    private let lock = NSLock()
    private var server: Process?

    /// `$POSTGRES_BIN_DIR`, else the newest `/usr/lib/postgresql/*/bin` holding initdb.
    public static var binaryDirectory: URL? {
        let fm = FileManager.default
        if let explicit = ProcessInfo.processInfo.environment["POSTGRES_BIN_DIR"], !explicit.isEmpty {
            return fm.isExecutableFile(atPath: explicit + "/initdb") ? URL(fileURLWithPath: explicit) : nil
        }
        let root = "/usr/lib/postgresql"
        let versions = ((try? fm.contentsOfDirectory(atPath: root)) ?? [])
            .filter { fm.isExecutableFile(atPath: "\(root)/\($0)/bin/initdb") }
            .sorted { (Int($0) ?? 0) > (Int($1) ?? 0) }
        return versions.first.map { URL(fileURLWithPath: "\(root)/\($0)/bin") }
    }

    /// Why the fixture cannot run here, or nil.
    public static var unavailableReason: String? {
        guard binaryDirectory != nil else {
            return "no /usr/lib/postgresql/*/bin/initdb (install Debian's `postgresql` package)"
        }
        if geteuid() == 0 && getpwnam("postgres") == nil {
            return "running as root and there is no `postgres` user to run the server as"
        }
        return nil
    }

    public static var isAvailable: Bool { unavailableReason == nil }

    private init(directory: URL, port: Int, binaries: URL, asPostgres: Bool) {
        self.directory = directory
        self.port = port
        self.binaries = binaries
        self.asPostgres = asPostgres
    }

    deinit { stop() }

    /// initdb, start, and a login role with a password; returns once the server answers.
    public static func start() async throws -> PostgresFixture {
        try await runOffCooperativePool { try startBlocking() }
    }

    private static func startBlocking() throws -> PostgresFixture {
        guard let binaries = binaryDirectory, unavailableReason == nil else {
            throw Failure.unavailable(unavailableReason ?? "not found")
        }
        let fm = FileManager.default
        let directory = URL(fileURLWithPath: "/tmp/pg-fixture-\(UUID().uuidString.prefix(8))")
        try fm.createDirectory(at: directory, withIntermediateDirectories: true)
        let asPostgres = geteuid() == 0
        let fixture = PostgresFixture(
            directory: directory, port: try PrometheusFixture.freePort(),
            binaries: binaries, asPostgres: asPostgres)
        let passwordFile = directory.appendingPathComponent("superuser.pw")
        try fixture.superPassword.write(to: passwordFile, atomically: true, encoding: .utf8)
        if asPostgres {
            try fixture.shell(["/bin/chown", "-R", "postgres:postgres", directory.path], asServer: false)
        }
        try fixture.shell(["/bin/chmod", "700", directory.path], asServer: asPostgres)
        try fixture.shell(
            [
                binaries.appendingPathComponent("initdb").path, "-D", fixture.dataPath, "-U", "postgres",
                "--pwfile=\(passwordFile.path)", "--auth-host=scram-sha-256", "--auth-local=scram-sha-256",
                "-E", "UTF8", "--no-sync", "--locale=C",
            ], asServer: asPostgres)
        try fixture.startServer()
        try fixture.superuserSQL("CREATE ROLE \(fixture.user) LOGIN PASSWORD '\(fixture.password)'")
        return fixture
    }

    private var dataPath: String { directory.appendingPathComponent("data").path }
    private var logPath: String { directory.appendingPathComponent("server.log").path }

    /// The server's log so far.
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// The server runs as a child of this process (not daemonised by pg_ctl: Foundation's Process would wait
    /// for the daemon's inherited descriptors), as `postgres` through setpriv when this process is root.
    private func startServer() throws {
        let process = Process()
        let postgres = binaries.appendingPathComponent("postgres").path
        let arguments = [
            "-D", dataPath, "-c", "listen_addresses=127.0.0.1", "-p", "\(port)",
            "-c", "unix_socket_directories=\(directory.path)", "-c", "fsync=off",
            "-c", "max_connections=60",
        ]
        if asPostgres {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            process.arguments = ["--reuid=postgres", "--regid=postgres", "--init-groups", "--", postgres] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: postgres)
            process.arguments = arguments
        }
        if !FileManager.default.fileExists(atPath: logPath) {
            _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try? log.close()
        lock.withLock { server = process }
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            guard process.isRunning else {
                throw Failure.command("postgres", status: process.terminationStatus, output: self.log)
            }
            let (status, _) = try run(
                [
                    binaries.appendingPathComponent("pg_isready").path, "-q", "-h", "127.0.0.1",
                    "-p", "\(port)",
                ], asServer: false)
            if status == 0 { return }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw Failure.command("postgres (not ready within 60 s)", status: -1, output: self.log)
    }

    /// A new empty database owned by the test role; returns its `--state` URL (no password in it).
    public func createDatabase(_ name: String = "state_" + UUID().uuidString.prefix(8).lowercased()) throws -> String {
        try superuserSQL("CREATE DATABASE \(name) OWNER \(user)")
        return url(database: name)
    }

    public func url(database: String) -> String { "postgres://\(user)@127.0.0.1:\(port)/\(database)" }

    /// Runs SQL with psql as the test role in `database`; returns exit status and output (stdout and stderr).
    public func sql(_ statement: String, database: String) throws -> (status: Int32, output: String) {
        try psql(statement, user: user, password: password, database: database)
    }

    /// The psql command line that runs `statement` as the test role, for a test to start in the background
    /// (a session that holds a lock while it sleeps, say).
    public func psqlInvocation(_ statement: String, database: String)
        -> (path: String, arguments: [String], environment: [String: String])
    {
        (
            binaries.appendingPathComponent("psql").path,
            [
                "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", "\(port)", "-U", user,
                "-d", database, "-c", statement,
            ],
            ["PGPASSWORD": password]
        )
    }

    private func superuserSQL(_ statement: String) throws {
        let (status, output) = try psql(statement, user: "postgres", password: superPassword, database: "postgres")
        if status != 0 { throw Failure.command("psql -c \(statement)", status: status, output: output) }
    }

    private func psql(
        _ statement: String, user: String, password: String,
        database: String
    ) throws -> (status: Int32, output: String) {
        try run(
            [
                binaries.appendingPathComponent("psql").path, "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
                "-h", "127.0.0.1", "-p", "\(port)", "-U", user, "-d", database, "-c", statement,
            ],
            environment: ["PGPASSWORD": password], asServer: false)
    }

    /// Stops the server at once (SIGQUIT, as a crash would stop it) and starts it again on the same port.
    public func restart() throws {
        stopServer(signal: SIGQUIT)
        try startServer()
    }

    /// Stops the server and removes its directory.
    public func stop() {
        stopServer(signal: SIGINT)  // PostgreSQL's fast shutdown
        try? FileManager.default.removeItem(at: directory)
    }

    private func stopServer(signal: Int32) {
        guard
            let process = lock.withLock({ () -> Process? in
                defer { server = nil }
                return server
            })
        else { return }
        if process.isRunning {
            kill(process.processIdentifier, signal)
            process.waitUntilExit()
        }
    }

    private func shell(_ arguments: [String], asServer: Bool) throws {
        let (status, output) = try run(arguments, asServer: asServer)
        if status != 0 {
            throw Failure.command(arguments.joined(separator: " "), status: status, output: output + "\n" + log)
        }
    }

    private func run(
        _ arguments: [String], environment: [String: String] = [:],
        asServer: Bool
    ) throws -> (status: Int32, output: String) {
        let process = Process()
        let command = asServer ? ["/usr/sbin/runuser", "-u", "postgres", "--"] + arguments : arguments
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.currentDirectoryURL = directory
        let output = directory.appendingPathComponent("command-\(UUID().uuidString.prefix(8)).out")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        let handle = try FileHandle(forWritingTo: output)
        defer {
            try? handle.close()
            try? FileManager.default.removeItem(at: output)
        }
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        return (process.terminationStatus, text)
    }
}
