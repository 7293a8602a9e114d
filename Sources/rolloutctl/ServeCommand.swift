import ArgumentParser
import Foundation
import Logging
import RolloutAdapters
import RolloutKit
import RolloutServe

/// `rolloutctl serve` (SPEC §9): the status page, the JSON API and `/metrics`; with `--reconcile-interval`,
/// the reconcile loop too, in the same process.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the status page, /api/v1/plan and /metrics; with --reconcile-interval, reconcile too.")

    @OptionGroup var options: RunOptions

    @Option(name: .long, help: "Address to listen on, HOST:PORT (port 0 picks a free one).")
    var listen: String = "127.0.0.1:8080"

    @Option(name: .long, help: "Also reconcile every DURATION (e.g. 1m) in this process, until SIGTERM/SIGINT.")
    var reconcileInterval: String?

    @Option(name: .long, help: "Plan again for a request when the last plan is older than DURATION.")
    var maxAge: String = "10s"

    @Option(name: .long, help: "How long a reconcile waits for another reconcile's lock before skipping a tick.")
    var lockTimeout: String = "0s"

    @Flag(name: .long, help: "With --reconcile-interval: log the whole plan on every tick.")
    var verbose = false

    @Option(name: .long, help: "With --reconcile-interval: text (one line per event) or json (one object per line).")
    var logFormat: String?

    func run() async throws {
        let logger = makeLogger(level: .notice)
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]),
            (0...65535).contains(port)
        else {
            throw ValidationError("--listen takes HOST:PORT such as 127.0.0.1:8080, got \"\(listen)\"")
        }
        let host = String(listen[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        guard let maxAgeSeconds = parseDuration(maxAge) else {
            throw ValidationError("--max-age takes a duration such as 0s, 10s or 1m")
        }
        guard let lockWait = parseDuration(lockTimeout) else {
            throw ValidationError("--lock-timeout takes a duration such as 0s, 30s or 5m")
        }
        var every: Int?
        if let reconcileInterval {
            guard let seconds = parseDuration(reconcileInterval), seconds > 0 else {
                throw ValidationError("--reconcile-interval takes a duration such as 30s or 1m")
            }
            every = seconds
        }
        if options.now != nil, every != nil {
            throw ValidationError("--now cannot be combined with --reconcile-interval")
        }
        _ = try options.parsedNow()
        let format = try ServiceLogOptions.format(
            logFormat, verbose: verbose, service: every != nil, json: false, option: "--reconcile-interval")
        let wiring = try Wiring.forCommand(options: options, logger: logger)
        let options = self.options
        let ports = wiring.ports
        let plan: @Sendable () async throws -> RunReport = {
            let settings = RunSettings(
                repositoryPath: options.repository.repo, ref: options.repository.ref,
                rollouts: options.rollouts, now: (try? options.parsedNow()) ?? Date(),
                statePath: options.state, mode: .plan)
            return try await Reconciler(settings: settings, ports: ports).run()
        }
        var reconcile: (@Sendable () async -> TickResult)?
        if every != nil {
            // The one-shot `reconcile` run, as `reconcile --interval` does it (lock, clock read under the lock).
            var runner = Reconcile()
            runner.options = options
            runner.dryRun = false
            runner.fetch = nil
            runner.interval = nil
            runner.lockTimeout = lockTimeout
            let reconciler = runner
            reconcile = { await reconciler.tick(wiring: wiring, lockWait: lockWait) }
        }
        var range: PrometheusRangeClient?
        if let baseURL = wiring.metricsSource?.prometheusURL, let client = wiring.client {
            range = PrometheusRangeClient(baseURL: baseURL, client: client, logger: logger)
        }
        var configuration = ServeConfiguration(
            host: host, port: port, plan: plan, reconcile: reconcile, reconcileEvery: every,
            maxReportAge: TimeInterval(maxAgeSeconds), statePath: options.state, range: range, logger: logger,
            tickLogger: serviceLogger(format, level: .info), verbose: verbose)
        configuration.backtest = ServeBacktest.make(options: options, wiring: wiring, logger: logger)
        let server = StatusServer(configuration: configuration)
        do {
            try await server.run { port in
                // Tests and scripts wait for this line to learn the port.
                print("rolloutctl serve listening on http://\(host):\(port)")
                fflush(nil)
            }
        } catch {
            printFailure(error)
            await wiring.shutdown()
            throw ExitCode(1)
        }
        await wiring.shutdown()
    }
}
