import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import RolloutAdapters
import RolloutCore

/// A rollback, hold or override to tell people about: the JSON body of a webhook POST.
public struct NotificationEvent: Sendable {
    /// The event id, also sent as `Idempotency-Key`.
    public var id: String
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
            ("id", .string(id)), ("rollout", .string(rollout)), ("flag", .string(flag)), ("status", .string(status)),
            ("phase", .string(phase)), ("message", .string(message)), ("revision", .string(revision)),
            ("time", .string(RFC3339.format(time))),
            ("checks", .array(checks.map { name, value, reason in
                .members([("name", .string(name)), ("value", value.map { .number($0) }), ("noData", .string(reason))])
            })),
        ])
    }
}

/// Delivers one queued notification; answers nil when delivered, or why not.
public protocol Notifier: Sendable {
    func deliver(_ message: OutboxMessage) async -> String?
}

/// POSTs each notification's JSON to the webhook its name maps to (`--notify-url NAME=URL`, or
/// `ROLLOUTCTL_NOTIFY_URL_<NAME>` with `-` as `_`), with `Idempotency-Key: <event id>`.
public struct WebhookNotifier: Notifier {
    public var urls: [String: String]
    public var client: HTTPClient?
    public var logger: Logger
    /// How long one delivery may take: a slow webhook never holds a run for long.
    public var timeout: TimeAmount

    public init(urls: [String: String], client: HTTPClient?, logger: Logger, timeout: TimeAmount = .seconds(5)) {
        self.urls = urls
        self.client = client
        self.logger = logger
        self.timeout = timeout
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

    public func deliver(_ message: OutboxMessage) async -> String? {
        guard let url = urls[message.target], let client else {
            return "no webhook for notify target \(message.target); pass --notify-url \(message.target)=URL"
        }
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Idempotency-Key", value: message.key)
        request.body = .bytes(ByteBuffer(string: message.body))
        do {
            let response = try await client.execute(request, timeout: timeout)
            _ = try? await response.body.collect(upTo: 1 << 16)
            return (200..<300).contains(Int(response.status.code)) ? nil : "HTTP \(response.status.code)"
        } catch {
            return "\(error)"
        }
    }
}

/// The notification outbox of the state (SPEC §5.10): every pending message is tried once per run,
/// after the rollouts are reconciled; a failure is kept for the next run, for 24 hours.
struct Outbox {
    var state: any StateStorage
    var notifier: Notifier
    var logger: Logger

    func deliver(now: Date) async {
        let queued: (pending: [OutboxMessage], expired: [OutboxMessage])
        do {
            queued = try state.pendingOutbox(now: now)
        } catch {
            logger.warning("cannot read the notification outbox: \(error)")
            return
        }
        for message in queued.expired {
            let text = "notification \(message.key) to \(message.target) for \(message.rollout) was not delivered "
                + "in 24 hours (\(message.attempts) attempts); given up"
            logger.error("\(text)")
        }
        // A target that failed once in this run is not tried again until the next run: a webhook
        // that is down costs one timeout per run, not one per message.
        var down: [String: String] = [:]
        for message in queued.pending {
            guard let id = message.id else { continue }
            if down[message.target] != nil { continue }
            let error = await notifier.deliver(message)
            try? state.recordDelivery(id: id, at: now, error: error)
            if let error {
                down[message.target] = error
                logger.warning("notification to \(message.target) failed (\(error)); retried on the next run")
            }
        }
    }
}

public struct ArgumentProblem: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
