import Foundation

/// Runs a program and returns its standard output; throws with stderr when it fails.
@discardableResult
public func runProgram(
    _ executable: String, _ arguments: [String], in directory: String? = nil,
    environment: [String: String] = [:], input: String? = nil
) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable.hasPrefix("/") ? executable : "/usr/bin/env")
    process.arguments = executable.hasPrefix("/") ? arguments : [executable] + arguments
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    var env = ProcessInfo.processInfo.environment
    for (key, value) in environment { env[key] = value }
    process.environment = env
    let stdout = Pipe()
    let stderr = Pipe()
    let stdin = Pipe()
    process.standardOutput = stdout
    process.standardError = stderr
    process.standardInput = stdin
    try process.run()
    if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
    try? stdin.fileHandleForWriting.close()
    let out = stdout.fileHandleForReading.readDataToEndOfFile()
    let err = stderr.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw FixtureError(
            "\(executable) \(arguments.joined(separator: " ")) exited \(process.terminationStatus): "
                + String(decoding: err, as: UTF8.self))
    }
    return String(decoding: out, as: UTF8.self)
}

public struct FixtureError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A temporary folder removed when the value is released.
public final class TemporaryDirectory: @unchecked Sendable {
    public let path: String

    public init(prefix: String = "rolloutctl-test") throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        path = base.path
    }

    public func file(_ name: String) -> String { path + "/" + name }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// A git repository made by the `git` program in a temp folder, for tests.
/// Author and committer are set per commit; dates advance one minute per commit so ids are stable.
public final class GitFixture: @unchecked Sendable {
    public let directory: TemporaryDirectory
    public var path: String { directory.path }
    private var clock: Int = 1_767_225_600  // 2026-01-01T00:00:00Z
    public var defaultAuthor = Person(name: "Robin Release", email: "robin@example.com")

    public struct Person: Sendable {
        public var name: String
        public var email: String
        public init(name: String, email: String) {
            self.name = name
            self.email = email
        }
    }

    /// A new repository on branch `main`.
    public init(bare: Bool = false, branch: String = "main") throws {
        directory = try TemporaryDirectory(prefix: "rolloutctl-repo")
        var arguments = ["init", "-q", "-b", branch]
        if bare { arguments.append("--bare") }
        try runProgram("git", arguments + [path])
        try git("config", "user.name", defaultAuthor.name)
        try git("config", "user.email", defaultAuthor.email)
        try git("config", "commit.gpgsign", "false")
    }

    /// Moves the fixture's clock (seconds since 1970; the next git command is dated 60 s later).
    public func setClock(_ seconds: Int) { clock = seconds }

    /// Runs git in the repository with a fixed, advancing date.
    @discardableResult
    public func git(_ arguments: String..., author: Person? = nil, committer: Person? = nil) throws -> String {
        try git(arguments, author: author, committer: committer)
    }

    @discardableResult
    public func git(_ arguments: [String], author: Person? = nil, committer: Person? = nil) throws -> String {
        clock += 60
        let a = author ?? defaultAuthor
        let c = committer ?? author ?? defaultAuthor
        let date = "@\(clock) +0000"
        let environment = [
            "GIT_AUTHOR_NAME": a.name, "GIT_AUTHOR_EMAIL": a.email, "GIT_AUTHOR_DATE": date,
            "GIT_COMMITTER_NAME": c.name, "GIT_COMMITTER_EMAIL": c.email, "GIT_COMMITTER_DATE": date,
            "GIT_CONFIG_NOSYSTEM": "1", "HOME": directory.path,
        ]
        return try runProgram("git", ["-C", path] + arguments, environment: environment)
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Writes a file in the work tree (creating folders).
    public func write(_ relativePath: String, _ content: String) throws {
        try write(relativePath, Data(content.utf8))
    }

    public func write(_ relativePath: String, _ data: Data) throws {
        let url = URL(fileURLWithPath: path).appendingPathComponent(relativePath)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try data.write(to: url)
    }

    public func remove(_ relativePath: String) throws {
        try git("rm", "-q", "-r", relativePath)
    }

    /// Stages everything and commits; returns the new commit id.
    @discardableResult
    public func commit(
        _ message: String, author: Person? = nil, committer: Person? = nil,
        extra: [String] = []
    ) throws -> String {
        try git("add", "-A")
        try git(["commit", "-q", "--allow-empty", "-m", message] + extra, author: author, committer: committer)
        return try git("rev-parse", "HEAD")
    }

    /// Writes files and commits them in one go.
    @discardableResult
    public func commitFiles(
        _ files: [String: String], _ message: String, author: Person? = nil,
        extra: [String] = []
    ) throws -> String {
        for (file, content) in files { try write(file, content) }
        return try commit(message, author: author, extra: extra)
    }

    /// `git hash-object` of a work-tree file: what an approval's `plan` must hold.
    public func blobID(of relativePath: String) throws -> String {
        try git("hash-object", relativePath)
    }

    public func head() throws -> String { try git("rev-parse", "HEAD") }
}
