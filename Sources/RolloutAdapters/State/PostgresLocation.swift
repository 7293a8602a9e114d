import Foundation

/// `--state postgres://USER@HOST:PORT/DB` (SPEC §10). The password never travels in the URL: it is read from
/// `PGPASSWORD` when connecting, never printed, and scrubbed from every error.
public struct PostgresLocation: Equatable, Sendable {
    public var user: String
    public var host: String
    public var port: Int
    public var database: String

    /// Why a `--state` URL is refused; the message never repeats a password.
    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    static func isURL(_ text: String) -> Bool {
        text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }

    public init(user: String, host: String, port: Int = 5432, database: String) {
        self.user = user
        self.host = host
        self.port = port
        self.database = database
    }

    public init(parsing text: String) throws {
        let usage = "--state takes postgres://USER@HOST:PORT/DB (the password from PGPASSWORD)"
        guard let components = URLComponents(string: text) else {
            throw Invalid(description: "\(usage); this value is not a URL")
        }
        // Safety first: a password written in the URL would end up in shell history, process lists and logs.
        if components.password != nil {
            throw Invalid(description: "\(usage); a password in the URL is refused: remove it and set PGPASSWORD")
        }
        guard let user = components.user, !user.isEmpty else {
            throw Invalid(description: "\(usage); the URL names no user")
        }
        guard let host = components.host, !host.isEmpty else {
            throw Invalid(description: "\(usage); the URL names no host")
        }
        let database = String(components.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty, !database.contains("/") else {
            throw Invalid(description: "\(usage); the URL names no database")
        }
        if let query = components.query, !query.isEmpty {
            throw Invalid(description: "\(usage); URL parameters are not supported (got ?\(query))")
        }
        self.init(
            user: user.removingPercentEncoding ?? user, host: host, port: components.port ?? 5432,
            database: database.removingPercentEncoding ?? database)
    }

    /// The URL as shown in messages: never with a password.
    public var display: String {
        let shownHost = host.contains(":") ? "[\(host)]" : host
        return "postgres://\(user)@\(shownHost):\(port)/\(database)"
    }
}
