import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import RolloutAdapters
import RolloutCore
import RolloutKit

/// The adapters a run talks to, built from the options (each parsed once here); `shutdown()` closes the
/// HTTP client.
struct Wiring {
    var ports: RunPorts
    var client: HTTPClient?
    /// `--metrics` as parsed (nil: none).
    var metricsSource: MetricsSource?

    init(options: RunOptions, logger: Logger) throws {
        // Everything that can be refused is checked before the HTTP client is made: a client
        // dropped without shutdown() traps.
        let flagSpecifications: [FlagStoreFactory.Specification]
        do {
            flagSpecifications = try FlagStoreFactory.parse(options.flags, defaultURL: options.defaultFlags)
        } catch {
            throw ValidationError("\(error)")
        }
        let metricsSource = try options.metricsSource()
        let urls = try WebhookNotifier.urls(
            arguments: options.notifyURL,
            environment: ProcessInfo.processInfo.environment)
        let needsHTTP =
            FlagStoreFactory.needsHTTP(flagSpecifications) || metricsSource?.prometheusURL != nil
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
        switch metricsSource {
        case .file(let path): metrics = FileMetricsProvider(path: path)
        case .prometheus(let baseURL):
            // needsHTTP above: a Prometheus source always has the client.
            if let client { metrics = PrometheusMetricsProvider(baseURL: baseURL, client: client, logger: logger) }
        case nil: break
        }
        ports = RunPorts(
            flags: flags, metrics: metrics,
            notifier: WebhookNotifier(urls: urls, client: client, logger: logger), logger: logger)
        self.client = client
        self.metricsSource = metricsSource
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
