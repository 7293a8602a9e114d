import AsyncHTTPClient
import Foundation
import Logging
import RolloutAdapters

/// Log lines captured by `AdapterLogRecorder`, one string per line (message and metadata).
public final class AdapterLogLines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []

    public init() {}

    public func append(_ line: String) {
        lock.lock()
        lines.append(line)
        lock.unlock()
    }

    public var all: [String] {
        lock.lock()
        defer { lock.unlock() }
        return lines
    }
}

/// A log handler that records every line at every level, to check that no secret is logged.
public struct AdapterLogRecorder: LogHandler {
    public let lines: AdapterLogLines
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public var logLevel: Logger.Level = .trace

    public init(lines: AdapterLogLines) {
        self.lines = lines
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
        let rendered = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        lines.append("\(event.level) \(event.message) \(rendered) \(event.error.map { "\($0)" } ?? "")")
    }

    public static func logger(_ lines: AdapterLogLines) -> Logger {
        Logger(label: "rolloutctl.test") { _ in AdapterLogRecorder(lines: lines) }
    }
}

/// Retry settings that keep tests fast: 3 attempts, 10…50 ms backoff, 2 s per request.
extension RetryPolicy {
    public static func adapterTest(
        maxAttempts: Int = 3, requestTimeout: Duration = .seconds(15), budget: Duration = .seconds(60)
    ) -> RetryPolicy {
        RetryPolicy(
            maxAttempts: maxAttempts, baseDelay: .milliseconds(10), maxDelay: .milliseconds(50),
            budget: budget, requestTimeout: requestTimeout)
    }
}

/// Runs `body` with an `HTTPClient` that is shut down afterwards, whatever happens:
/// `RolloutHTTPClient.make()` (what rolloutctl uses), or AsyncHTTPClient's defaults.
public func withAdapterHTTPClient<T>(defaults: Bool = false, _ body: (HTTPClient) async throws -> T) async throws -> T {
    let client = defaults ? HTTPClient(eventLoopGroupProvider: .singleton) : RolloutHTTPClient.make()
    do {
        let result = try await body(client)
        try await client.shutdown()
        return result
    } catch {
        try? await client.shutdown()
        throw error
    }
}

/// Runs `body` with a started `HTTPTestServer`, stopped afterwards, whatever happens.
public func withAdapterTestServer<T>(
    _ handler: @escaping HTTPTestServer.Handler, _ body: (HTTPTestServer) async throws -> T
) async throws -> T {
    let server = HTTPTestServer(handler: handler)
    try await server.start()
    do {
        let result = try await body(server)
        await server.stop()
        return result
    } catch {
        await server.stop()
        throw error
    }
}

/// A port on 127.0.0.1 where nothing listens (a server was bound there and stopped).
public func adapterClosedPort() async throws -> Int {
    let server = HTTPTestServer { _ in .text(200) }
    try await server.start()
    let port = server.port
    await server.stop()
    return port
}
