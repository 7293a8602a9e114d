import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import RolloutCore

/// A rollback or hold to tell people about.
public struct NotificationEvent: Sendable {
    public var rollout: String
    public var flag: String
    public var status: String
    public var phase: String?
    public var message: String
    public var revision: String
    public var time: Date
    /// Check name, value (nil for no data), no-data reason.
    public var checks: [(String, Double?, String?)]

    var json: JSONOutput {
        .members([
            ("rollout", .string(rollout)), ("flag", .string(flag)), ("status", .string(status)),
            ("phase", .string(phase)), ("message", .string(message)), ("revision", .string(revision)),
            ("time", .string(RFC3339.format(time))),
            ("checks", .array(checks.map { name, value, reason in
                .members([("name", .string(name)), ("value", value.map { .number($0) }), ("noData", .string(reason))])
            })),
        ])
    }
}

/// Where rollbacks and holds are announced (`rollback.notify` names).
public protocol Notifier: Sendable {
    func notify(names: [String], event: NotificationEvent) async
}

/// Logs every notification, and POSTs JSON to the webhook each name maps to
/// (`--notify-url NAME=URL`, or `ROLLOUTCTL_NOTIFY_URL_<NAME>` with `-` as `_`).
/// A failed notification is logged and never blocks the rollback.
public struct WebhookNotifier: Notifier {
    public var urls: [String: String]
    public var client: HTTPClient?
    public var logger: Logger

    public init(urls: [String: String], client: HTTPClient?, logger: Logger) {
        self.urls = urls
        self.client = client
        self.logger = logger
    }

    /// `--notify-url` values, with the environment's `ROLLOUTCTL_NOTIFY_URL_*` as defaults.
    public static func urls(arguments: [String], environment: [String: String]) throws -> [String: String] {
        var urls: [String: String] = [:]
        for (key, value) in environment where key.hasPrefix("ROLLOUTCTL_NOTIFY_URL_") {
            let name = key.dropFirst("ROLLOUTCTL_NOTIFY_URL_".count).lowercased().replacingOccurrences(of: "_", with: "-")
            urls[name] = value
        }
        for argument in arguments {
            guard let equals = argument.firstIndex(of: "="), equals != argument.startIndex else {
                throw ArgumentProblem("--notify-url takes NAME=URL, got \"\(argument)\"")
            }
            urls[String(argument[..<equals])] = String(argument[argument.index(after: equals)...])
        }
        return urls
    }

    public func notify(names: [String], event: NotificationEvent) async {
        logger.notice("notify \(names.joined(separator: ",")): \(event.message)")
        for name in names {
            guard let url = urls[name] else {
                logger.warning("no webhook for notify target \(name); pass --notify-url \(name)=URL")
                continue
            }
            guard let client else { continue }
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: event.json.render(pretty: false)))
            do {
                let response = try await client.execute(request, timeout: .seconds(5))
                if !(200..<300).contains(Int(response.status.code)) {
                    logger.warning("notification to \(name) answered HTTP \(response.status.code)")
                }
            } catch {
                logger.warning("notification to \(name) failed: \(error)")
            }
        }
    }
}

public struct ArgumentProblem: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
