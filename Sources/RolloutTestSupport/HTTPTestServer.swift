import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// One request as the test server received it.
public struct TestRequest: Sendable, Equatable {
    public var method: String
    /// The path without the query, percent-encoding kept (e.g. `/api/v1/query`).
    public var path: String
    /// The raw query string after `?`, or nil.
    public var query: String?
    /// Header fields in the order received (names as sent).
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(method: String, path: String, query: String?, headers: [(name: String, value: String)], body: [UInt8]) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }

    /// The body as UTF-8 text.
    public var bodyString: String { String(decoding: body, as: UTF8.self) }

    /// The first value of a header, compared case-insensitively.
    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    /// The query parameters, percent-decoded (`+` is a space). Later duplicates win.
    public var queryItems: [String: String] {
        guard let query, !query.isEmpty else { return [:] }
        var items: [String: String] = [:]
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = Self.decode(String(parts[0]))
            let value = parts.count > 1 ? Self.decode(String(parts[1])) : ""
            items[name] = value
        }
        return items
    }

    /// The path's last segment, percent-decoded (e.g. the flag key of `/api/v1/feature-flags/{key}`).
    public var lastPathSegment: String {
        Self.decode(String(path.split(separator: "/").last ?? ""), plusIsSpace: false)
    }

    static func decode(_ text: String, plusIsSpace: Bool = true) -> String {
        let spaced = plusIsSpace ? text.replacingOccurrences(of: "+", with: " ") : text
        return spaced.removingPercentEncoding ?? spaced
    }

    public static func == (a: TestRequest, b: TestRequest) -> Bool {
        a.method == b.method && a.path == b.path && a.query == b.query && a.body == b.body
            && a.headers.map { [$0.name, $0.value] } == b.headers.map { [$0.name, $0.value] }
    }
}

/// What the test server answers.
public struct TestResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// Waits this long before answering (the client may time out meanwhile).
    public var delay: Duration?
    /// Closes the connection without answering anything (a connection error for the client).
    public var dropConnection: Bool

    public init(
        status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = [],
        delay: Duration? = nil, dropConnection: Bool = false
    ) {
        self.status = status
        self.headers = headers
        self.body = body
        self.delay = delay
        self.dropConnection = dropConnection
    }

    public init(status: Int, headers: [(name: String, value: String)] = [], body: String, delay: Duration? = nil) {
        self.init(status: status, headers: headers, body: Array(body.utf8), delay: delay)
    }

    /// A JSON answer (`Content-Type: application/json`).
    public static func json(
        _ status: Int = 200, _ body: String, headers: [(name: String, value: String)] = [],
        delay: Duration? = nil
    ) -> TestResponse {
        TestResponse(
            status: status, headers: [("Content-Type", "application/json")] + headers, body: body, delay: delay)
    }

    /// A plain-text answer.
    public static func text(_ status: Int, _ body: String = "", delay: Duration? = nil) -> TestResponse {
        TestResponse(status: status, headers: [("Content-Type", "text/plain; charset=utf-8")], body: body, delay: delay)
    }

    /// Closes the connection without an answer.
    public static var drop: TestResponse { TestResponse(status: 0, dropConnection: true) }

    /// Returns this answer delayed by `delay`.
    public func delayed(by delay: Duration) -> TestResponse {
        var copy = self
        copy.delay = delay
        return copy
    }
}

/// A small lock-protected value, for state shared with the server's connections.
public final class LockedBox<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    public init(_ value: Value) { self.value = value }

    public func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }

    public var current: Value { withLock { $0 } }
}

/// A real HTTP/1.1 server on 127.0.0.1 for tests, on SwiftNIO.
///
/// ```swift
/// let server = HTTPTestServer { request in .json(200, #"{"ok":true}"#) }
/// try await server.start()          // port 0: the OS picks a free port
/// defer { Task { await server.stop() } }  // or `await server.stop()` at the end
/// … server.baseURL, server.requests …
/// ```
///
/// Every request is recorded (before the handler runs) so tests can count them and look at
/// their headers. Connections are kept alive as the client asks; `stop()` closes them all.
public final class HTTPTestServer: Sendable {
    public typealias Handler = @Sendable (TestRequest) async -> TestResponse

    private struct State: Sendable {
        var serverChannel: Channel?
        var acceptTask: Task<Void, Never>?
        var connections: [ObjectIdentifier: Channel] = [:]
        var requests: [TestRequest] = []
        var port: Int = 0
        var stopped = false
    }

    private let handler: LockedBox<Handler>
    private let state = LockedBox(State())
    private let host: String

    /// - Parameters:
    ///   - host: the address to listen on (loopback only, for tests).
    ///   - handler: answers each request; runs once per request, concurrently across connections.
    public init(host: String = "127.0.0.1", handler: @escaping Handler) {
        self.host = host
        self.handler = LockedBox(handler)
    }

    /// The port the server listens on (0 before `start()`).
    public var port: Int { state.withLock { $0.port } }

    /// `http://127.0.0.1:<port>`.
    public var baseURL: String { "http://\(host):\(port)" }

    /// Every request received so far, in order.
    public var requests: [TestRequest] { state.withLock { $0.requests } }

    /// How many requests were received so far.
    public var requestCount: Int { state.withLock { $0.requests.count } }

    /// Forgets the recorded requests.
    public func clearRequests() { state.withLock { $0.requests.removeAll() } }

    /// Binds to `host` on `port` (0: the OS picks one) and starts accepting connections.
    public func start(port: Int = 0) async throws {
        let serverChannel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(
                        wrappingChannelSynchronously: channel)
                }
            }
        let boundPort = serverChannel.channel.localAddress?.port ?? 0
        let acceptTask = Task { [self] in
            await self.acceptLoop(serverChannel)
        }
        state.withLock {
            $0.serverChannel = serverChannel.channel
            $0.acceptTask = acceptTask
            $0.port = boundPort
            $0.stopped = false
        }
    }

    /// Stops accepting, closes every open connection and waits for the server to wind down.
    public func stop() async {
        let (channel, task, connections) = state.withLock { s -> (Channel?, Task<Void, Never>?, [Channel]) in
            s.stopped = true
            let result = (s.serverChannel, s.acceptTask, Array(s.connections.values))
            s.serverChannel = nil
            s.acceptTask = nil
            s.connections.removeAll()
            return result
        }
        try? await channel?.close()
        for connection in connections {
            try? await connection.close()
        }
        task?.cancel()
        await task?.value
    }

    private func acceptLoop(
        _ serverChannel: NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>
    ) async {
        await withDiscardingTaskGroup { group in
            do {
                try await serverChannel.executeThenClose { inbound in
                    for try await connection in inbound {
                        group.addTask {
                            await self.serve(connection)
                        }
                    }
                }
            } catch {
                // The server channel was closed: stop() is running.
            }
            group.cancelAll()
        }
    }

    private func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async {
        let channel = connection.channel
        let id = ObjectIdentifier(channel)
        let accepted = state.withLock { s -> Bool in
            guard !s.stopped else { return false }
            s.connections[id] = channel
            return true
        }
        guard accepted else {
            try? await channel.close()
            return
        }
        defer { state.withLock { _ = $0.connections.removeValue(forKey: id) } }
        do {
            try await connection.executeThenClose { inbound, outbound in
                var head: HTTPRequestHead?
                var body = ByteBuffer()
                for try await part in inbound {
                    switch part {
                    case .head(let h):
                        head = h
                        body.clear()
                    case .body(var chunk):
                        body.writeBuffer(&chunk)
                    case .end:
                        guard let h = head else { continue }
                        head = nil
                        let request = Self.makeRequest(h, body: body)
                        self.state.withLock { $0.requests.append(request) }
                        let handler = self.handler.current
                        let response = await handler(request)
                        if let delay = response.delay {
                            try? await Task.sleep(for: delay)
                            if Task.isCancelled { return }
                        }
                        if response.dropConnection { return }
                        let keepAlive = h.isKeepAlive
                        var headers = HTTPHeaders(response.headers.map { ($0.name, $0.value) })
                        headers.replaceOrAdd(name: "Content-Length", value: String(response.body.count))
                        if !keepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
                        let responseHead = HTTPResponseHead(
                            version: .http1_1, status: HTTPResponseStatus(statusCode: response.status), headers: headers
                        )
                        try await outbound.write(.head(responseHead))
                        if !response.body.isEmpty && h.method != .HEAD {
                            try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: response.body))))
                        }
                        try await outbound.write(.end(nil))
                        if !keepAlive { return }
                    }
                }
            }
        } catch {
            // The client went away, or stop() closed the connection.
        }
    }

    private static func makeRequest(_ head: HTTPRequestHead, body: ByteBuffer) -> TestRequest {
        let uri = head.uri
        let path: String
        let query: String?
        if let mark = uri.firstIndex(of: "?") {
            path = String(uri[..<mark])
            query = String(uri[uri.index(after: mark)...])
        } else {
            path = uri
            query = nil
        }
        return TestRequest(
            method: head.method.rawValue,
            path: path,
            query: query,
            headers: head.headers.map { (name: $0.name, value: $0.value) },
            body: Array(body.readableBytesView)
        )
    }
}
