import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import RolloutAdapters
import RolloutCore
import RolloutKit

/// The adapters a run talks to, built from the options; `shutdown()` closes the HTTP client.
struct Wiring {
    var ports: RunPorts
    var client: HTTPClient?

    init(options: RunOptions, logger: Logger) throws {
        // Everything that can be refused is checked before the HTTP client is made: a client
        // dropped without shutdown() traps.
        let isHTTP = { (spec: String) in spec.hasPrefix("http://") || spec.hasPrefix("https://") }
        let flagSpecifications: [FlagStoreFactory.Specification]
        do {
            flagSpecifications = try FlagStoreFactory.parse(options.flags, defaultURL: options.defaultFlags)
        } catch {
            throw ValidationError("\(error)")
        }
        if let spec = options.metrics, !spec.hasPrefix("file:"), !isHTTP(spec) {
            throw ValidationError("--metrics takes http(s)://… or file:PATH, got \"\(spec)\"")
        }
        let urls = try WebhookNotifier.urls(
            arguments: options.notifyURL,
            environment: ProcessInfo.processInfo.environment)
        let needsHTTP =
            FlagStoreFactory.needsHTTP(flagSpecifications) || (options.metrics?.hasPrefix("http") ?? false)
            || !options.notifyURL.isEmpty
            || ProcessInfo.processInfo.environment.keys.contains { $0.hasPrefix("ROLLOUTCTL_NOTIFY_URL_") }
        let client = needsHTTP ? RolloutHTTPClient.make() : nil
        let token = ProcessInfo.processInfo.environment[options.tokenEnv]
        if token == nil, FlagStoreFactory.usesToken(flagSpecifications) {
            logger.warning(
                "\(options.tokenEnv) is not set: the flag service will refuse changes (set it, or pass --token-env)")
        }
        guard (1...64).contains(options.flagCalls) else {
            throw ValidationError("--flag-calls takes 1 … 64, got \(options.flagCalls)")
        }
        let flags = try FlagStoreFactory.make(
            flagSpecifications, token: token, client: client, logger: logger, callsAtOnce: options.flagCalls)
        var metrics: MetricsProvider?
        if let spec = options.metrics {
            if spec.hasPrefix("file:") {
                metrics = FileMetricsProvider(path: String(spec.dropFirst(5)))
            } else if spec.hasPrefix("http://") || spec.hasPrefix("https://") {
                metrics = PrometheusMetricsProvider(baseURL: spec, client: client!, logger: logger)
            } else {
                throw ValidationError("--metrics takes http(s)://… or file:PATH, got \"\(spec)\"")
            }
        }
        ports = RunPorts(
            flags: flags, metrics: metrics,
            notifier: WebhookNotifier(urls: urls, client: client, logger: logger), logger: logger)
        self.client = client
    }

    /// The wiring of a command: a refused option stays a usage error; any other failure is printed
    /// and exits 1.
    static func forCommand(options: RunOptions, logger: Logger) throws -> Wiring {
        try exitingOnFailure { try Wiring(options: options, logger: logger) }
    }

    func shutdown() async {
        try? await client?.shutdown()
    }
}
