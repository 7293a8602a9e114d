import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import RolloutCore

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
            let name = key.dropFirst("ROLLOUTCTL_NOTIFY_URL_".count).lowercased().replacingOccurrences(
                of: "_", with: "-")
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

    public func deliver(key: String, target: String, body: String) async -> String? {
        guard let url = urls[target], let client else {
            return "no webhook for notify target \(target); pass --notify-url \(target)=URL"
        }
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Idempotency-Key", value: key)
        request.body = .bytes(ByteBuffer(string: body))
        do {
            let response = try await client.execute(request, timeout: timeout)
            _ = try? await response.body.collect(upTo: 1 << 16)
            return (200..<300).contains(Int(response.status.code)) ? nil : "HTTP \(response.status.code)"
        } catch {
            return "\(error)"
        }
    }
}
