import Foundation
import Logging
import NIOCore
import PostgresNIO

/// Why the PostgreSQL state cannot be used, and what was being done when it failed (GRDB's `DatabaseError` is
/// the model: the operation, the server's message, its SQLSTATE). Messages name the database without a
/// password, and any occurrence of the password in a server's or a library's text is replaced before it is kept.
public struct PostgresStateError: Error, CustomStringConvertible, Sendable {
    /// What was being done ("cannot connect", "saving rollout exp-001", "reading the audit log").
    public var operation: String
    /// The server's SQLSTATE (`25006`: a read-only transaction), when the server answered with one.
    public var sqlState: String?
    public var description: String

    init(_ location: PostgresLocation, doing what: String, _ error: Error, password: String?) {
        var text: String
        operation = what
        if let psql = error as? PSQLError {
            sqlState = psql.serverInfo?[.sqlState]
            // PSQLError's own description is deliberately vague; the server's message says what went wrong.
            if let message = psql.serverInfo?[.message] {
                text = message + (sqlState.map { " (SQLSTATE \($0))" } ?? "")
            } else if let underlying = psql.underlying {
                text = "\(psql.code): \(underlying)"
            } else {
                text = "\(psql.code)"
            }
        } else {
            text = "\(error)"
        }
        description = Self.scrub("\(location.display): \(what): \(text)", password: password)
    }

    init(_ text: String, doing what: String = "", sqlState: String? = nil) {
        description = text
        operation = what
        self.sqlState = sqlState
    }

    /// The same failure, saying what the store was doing when it happened (a statement's own failure says only
    /// "query failed").
    func doing(_ what: String) -> PostgresStateError {
        guard operation == "query failed", !what.isEmpty else { return self }
        var error = self
        error.operation = what
        if description.contains(": query failed: ") {
            error.description = description.replacingOccurrences(of: ": query failed: ", with: ": \(what): ")
        } else {
            error.description += " (while \(what))"
        }
        return error
    }

    /// True when the server refused a write because the transaction is read-only (a database with
    /// `default_transaction_read_only`, a standby).
    var isReadOnlyTransaction: Bool { sqlState == "25006" }

    static func scrub(_ text: String, password: String?) -> String {
        guard let password, !password.isEmpty else { return text }
        return text.replacingOccurrences(of: password, with: "********")
    }
}

/// One PostgreSQL session (SPEC §10): a connection whose statements run one at a time, each waited on from the
/// caller's (non event loop) thread with a timeout. A session the server ended is never reconnected: every
/// later statement fails at once, so nothing written after a lost advisory lock can land.
final class PostgresSession: @unchecked Sendable {
    let location: PostgresLocation
    let password: String?
    private let connection: PostgresConnection
    private let logger = Logger(label: "rolloutctl.state.postgres", factory: { _ in SwiftLogNoOpLogHandler() })
    /// Serialises operations: a transaction owns the session from BEGIN to COMMIT.
    private let serial = NSLock()
    /// How long one statement may take before the session is closed and the operation fails.
    private let statementTimeout: TimeAmount
    private let closing = NSLock()
    private var closedHere = false

    private init(location: PostgresLocation, connection: PostgresConnection, password: String?) {
        self.location = location
        self.connection = connection
        self.password = password
        self.statementTimeout = .seconds(60)
    }

    deinit {
        // PostgresNIO insists on a closed connection before it goes; no event loop holds this session
        // (the statement timeout captures only the connection), so waiting here never blocks a loop.
        close()
    }

    /// Connects with the password from `PGPASSWORD` (never from the URL, never printed).
    static func connect(_ location: PostgresLocation, readOnly: Bool) throws -> PostgresSession {
        let password = ProcessInfo.processInfo.environment["PGPASSWORD"]
        var configuration = PostgresConnection.Configuration(
            host: location.host, port: location.port, username: location.user, password: password,
            database: location.database, tls: .disable)
        configuration.options.connectTimeout = .seconds(10)
        let logger = Logger(label: "rolloutctl.state.postgres", factory: { _ in SwiftLogNoOpLogHandler() })
        let future = PostgresConnection.connect(
            on: PostgresConnection.defaultEventLoopGroup.any(),
            configuration: configuration, id: 1, logger: logger)
        let connection: PostgresConnection
        do {
            connection = try future.wait()
        } catch {
            throw PostgresStateError(location, doing: "cannot connect", error, password: password)
        }
        let session = PostgresSession(location: location, connection: connection, password: password)
        if readOnly {
            try session.serialised { try session.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY") }
        }
        return session
    }

    /// False once the session is gone (closed here, or ended by the server).
    var isOpen: Bool { !connection.isClosed }

    /// True when the server (or the network) ended the session: it was not closed here.
    var wasLost: Bool {
        closing.withLock { !closedHere } && connection.isClosed
    }

    /// Closes the session (releasing any advisory lock it holds).
    func close() {
        closing.withLock { closedHere = true }
        guard !connection.isClosed else { return }
        _ = try? connection.close().wait()
    }

    func serialised<T>(_ body: () throws -> T) throws -> T {
        serial.lock()
        defer { serial.unlock() }
        return try body()
    }

    /// One transaction on this session (taking it for its whole length).
    func transaction<T>(_ body: () throws -> T) throws -> T {
        try serialised {
            try execute("BEGIN")
            do {
                let value = try body()
                try execute("COMMIT")
                return value
            } catch {
                _ = try? execute("ROLLBACK")
                throw error
            }
        }
    }

    func execute(_ sql: String) throws {
        _ = try query(PostgresQuery(unsafeSQL: sql))
    }

    func run(_ query: PostgresQuery) throws {
        _ = try self.query(query)
    }

    /// Runs one statement, waiting on the event loop's answer from this (non event loop) thread.
    /// A statement that hangs past the timeout closes the session: nothing may land after the wait gave up.
    func query(_ query: PostgresQuery, timeout: TimeAmount? = nil) throws -> [PostgresRandomAccessRow] {
        // A query written to a closed channel is never answered: a session the server ended fails here, at once.
        guard !connection.isClosed else {
            throw PostgresStateError(
                "\(location.display): the connection to the server was closed (the session ended)",
                doing: "query failed")
        }
        let statementTimeout = timeout ?? self.statementTimeout
        let future = connection.query(query, logger: logger)
        let loop = future.eventLoop
        let promise = loop.makePromise(of: PostgresQueryResult.self)
        let settled = Settled()
        let connection = self.connection
        let seconds = statementTimeout.nanoseconds / 1_000_000_000
        let message = "\(location.display): no answer within \(seconds) s; the session was closed"
        let timeout = loop.scheduleTask(in: statementTimeout) {
            guard !settled.done else { return }
            settled.done = true
            promise.fail(PostgresStateError(message, doing: "query failed"))
            connection.close().whenComplete { _ in }
        }
        future.whenComplete { result in
            guard !settled.done else { return }
            settled.done = true
            timeout.cancel()
            promise.completeWith(result)
        }
        do {
            return try promise.futureResult.wait().rows.map { $0.makeRandomAccess() }
        } catch let error as PostgresStateError {
            throw error
        } catch {
            throw PostgresStateError(location, doing: "query failed", error, password: password)
        }
    }

    /// Confined to one event loop: the first of the answer and the timeout wins.
    private final class Settled: @unchecked Sendable {
        var done = false
    }
}

// MARK: The installation lock (SPEC §5.11, §10)

extension PostgresSession {
    /// The advisory lock's first key: "rolloutctl" (the second is the installation's repository root).
    static let lockNamespace: Int32 = 0x726F_6C6C

    /// Takes the installation's session advisory lock, waiting up to `timeout`; false when another session
    /// holds it. The lock lives as long as this session: the server releases it when the session ends.
    func lockInstallation(timeout: Duration) throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            let taken = try serialised {
                try query(
                    """
                    SELECT pg_try_advisory_lock(\(Self.lockNamespace),
                      hashtext(coalesce((SELECT repositoryRoot FROM installation WHERE id = 1), '')))
                    """
                ).first?[0].decode(Bool.self) ?? false
            }
            if taken { return true }
            guard ContinuousClock.now < deadline else { return false }
            Thread.sleep(forTimeInterval: 0.1)
        }
    }

    /// Throws when the session is gone (a round trip, waited on for at most 10 s).
    func check() throws {
        try serialised { _ = try query("SELECT 1", timeout: .seconds(10)) }
    }
}
