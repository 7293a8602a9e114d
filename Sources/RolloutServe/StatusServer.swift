import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Mustache
import NIOCore
import RolloutAdapters
import RolloutCore
import RolloutKit
import ServiceLifecycle

/// How `rolloutctl serve` reads and what it runs (SPEC §9).
public struct ServeConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// A plan-mode run, as `rolloutctl plan` makes it.
    public var plan: @Sendable () async throws -> RunReport
    /// One reconcile under the lock (`--reconcile-interval`).
    public var reconcile: (@Sendable () async -> TickResult)?
    /// Seconds between reconciles; nil: the server never reconciles.
    public var reconcileEvery: Int?
    /// A report younger than this is served again instead of planning anew.
    public var maxReportAge: TimeInterval
    public var statePath: String
    /// Where the panels' series come from (`--metrics http…`); nil: panels say there is no source.
    public var range: PrometheusRangeClient?
    /// [issue 24] The backtest of one rollout's checks (SPEC §6.2) for its page, as `rolloutctl backtest` makes
    /// it; nil: the page says there is no source.
    public var backtest:
        (@Sendable (_ rollout: String, _ now: Date) async -> Result<BacktestReport, BacktestUnavailable>)?
    public var logger: Logger
    /// Where the reconcile ticks log (SPEC §6 [r3]), and whether each tick logs the whole plan.
    public var tickLogger: Logger
    public var verbose: Bool

    public init(
        host: String, port: Int, plan: @escaping @Sendable () async throws -> RunReport,
        reconcile: (@Sendable () async -> TickResult)?, reconcileEvery: Int?, maxReportAge: TimeInterval,
        statePath: String, range: PrometheusRangeClient?, logger: Logger, tickLogger: Logger? = nil,
        verbose: Bool = false
    ) {
        self.tickLogger = tickLogger ?? logger
        self.verbose = verbose
        self.host = host
        self.port = port
        self.plan = plan
        self.reconcile = reconcile
        self.reconcileEvery = reconcileEvery
        self.maxReportAge = maxReportAge
        self.statePath = statePath
        self.range = range
        self.logger = logger
    }
}

/// The latest plan-mode report, planned again when older than `maxAge`; one planning at a time.
actor ReportCache {
    private let produce: @Sendable () async throws -> RunReport
    private let maxAge: TimeInterval
    private let metrics: ServeMetrics
    private var latest: (report: RunReport, at: Date)?
    /// Counts the reports made: a page rendered for one generation is served again until the next.
    private(set) var generation = 0
    private var inflight: Task<RunReport, Error>?
    /// The last planning's failure (a repository that cannot be read): `/healthz` answers 503 meanwhile.
    private(set) var lastError: String?
    /// Whether a planning (a read of the repository) has finished yet, successfully or not: unlike
    /// `latest`, not forgotten after a reconcile, so `/healthz` always has an answer at hand.
    private(set) var readOnce = false
    private(set) var lastReconcile: Date?

    init(produce: @escaping @Sendable () async throws -> RunReport, maxAge: TimeInterval, metrics: ServeMetrics) {
        self.produce = produce
        self.maxAge = maxAge
        self.metrics = metrics
    }

    func report() async throws -> RunReport {
        if let latest, Date().timeIntervalSince(latest.at) < maxAge { return latest.report }
        if let inflight { return try await inflight.value }
        let produce = self.produce
        let task = Task { try await produce() }
        inflight = task
        defer { inflight = nil }
        do {
            let report = try await task.value
            latest = (report, Date())
            generation += 1
            lastError = nil
            readOnce = true
            metrics.update(from: report)
            return report
        } catch {
            lastError = "\(error)"
            readOnce = true
            throw error
        }
    }

    /// After a reconcile: the next request plans anew.
    func reconciled(at time: Date) {
        latest = nil
        lastReconcile = time
    }

    /// What `/healthz` says (SPEC §9 [r3]): the last repository read's result, from what is already
    /// known. Never waits on a planning: the actor is free while one is in flight (it awaits in
    /// `report()`), and when the known result is stale a new planning starts in the background.
    func health() -> Bool {
        if inflight == nil, latest.map({ Date().timeIntervalSince($0.at) >= maxAge }) ?? true {
            Task { _ = try? await self.report() }
        }
        return readOnce && lastError == nil
    }

    /// The latest report with its generation and when it was planned (planning anew when it is too old).
    func snapshot() async throws -> (report: RunReport, generation: Int, plannedAt: Date) {
        let report = try await self.report()
        return (report, generation, latest?.at ?? Date())
    }
}

/// Pages and documents rendered from one report generation: a page depends only on the report (and the
/// server's last reconcile, which makes a new generation), so requests within `--max-age` cost no rendering.
final class RenderedPages: @unchecked Sendable {
    private let lock = NSLock()
    private var generation = -1
    private var pages: [String: String] = [:]

    func page(_ key: String, generation: Int, render: () -> String) -> String {
        lock.lock()
        if generation == self.generation, let page = pages[key] {
            lock.unlock()
            return page
        }
        lock.unlock()
        let page = render()
        lock.lock()
        if generation > self.generation {
            self.generation = generation
            pages = [:]
        }
        if generation == self.generation { pages[key] = page }
        lock.unlock()
        return page
    }
}

/// A response with a fixed body and content type.
struct Page: ResponseGenerator {
    var status: HTTPResponse.Status = .ok
    var contentType: String
    var body: String

    static func html(_ body: String, status: HTTPResponse.Status = .ok) -> Page {
        Page(status: status, contentType: "text/html; charset=utf-8", body: body)
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = HTTPFields()
        headers[.contentType] = contentType
        headers[.cacheControl] = "no-store"
        headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        headers[HTTPField.Name("Content-Security-Policy")!] =
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }
}

/// `rolloutctl serve`: the pages, the JSON API and `/metrics`; read-only.
public struct StatusServer: Sendable {
    let configuration: ServeConfiguration
    let metrics: ServeMetrics
    let cache: ReportCache
    let state: StateAccess
    let rendered = RenderedPages()
    let backtests: BacktestCache?

    public init(configuration: ServeConfiguration) {
        self.configuration = configuration
        metrics = ServeMetrics()
        cache = ReportCache(produce: configuration.plan, maxAge: configuration.maxReportAge, metrics: metrics)
        state = StateAccess(path: configuration.statePath)
        backtests = configuration.backtest.map { BacktestCache(produce: $0) }
    }

    /// Serves until SIGTERM/SIGINT; `onRunning` gets the bound port (useful with port 0).
    public func run(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let logger = configuration.logger
        _ = try? await cache.report()  // a first report, so that /healthz tells the truth from the start
        var services: [any Service] = []
        if let every = configuration.reconcileEvery, let reconcile = configuration.reconcile {
            let cache = self.cache
            let metrics = self.metrics
            services.append(
                ReconcileTicker(
                    every: .seconds(every), verbose: configuration.verbose, logger: configuration.tickLogger,
                    tick: reconcile,
                    after: { result, started, seconds in
                        metrics.recordRun(ok: result.succeeded, seconds: seconds, at: started)
                        await cache.reconciled(at: started)
                    }))
        }
        let app = Application(
            router: router(),
            configuration: .init(
                address: .hostname(configuration.host, port: configuration.port),
                serverName: "rolloutctl"),
            services: services,
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
        try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
    }

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/") { request, _ in
            await overview(
                order: OverviewOrder(
                    sort: request.uri.queryParameters["sort"].map(String.init),
                    status: request.uri.queryParameters["status"].map(String.init)))
        }
        router.get("/rollouts/:name") { _, context -> Page in
            let name = try context.parameters.require("name")
            return await rolloutPage(name: name)
        }
        router.get("/api/v1/plan") { _, _ -> Page in
            do {
                let snapshot = try await cache.snapshot()
                return Page(
                    contentType: "application/json",
                    body: rendered.page("plan.json", generation: snapshot.generation) {
                        snapshot.report.json()
                    })
            } catch {
                return Page(
                    status: .serviceUnavailable, contentType: "application/json",
                    body: JSONOutput.object([("error", .string("\(error)"))]).render())
            }
        }
        router.get("/api/v1/rollouts/:name/history") { _, context -> Page in
            let name = try context.parameters.require("name")
            let store = state.store()
            let known =
                (try? await cache.report().rollouts.contains { $0.name == name }) == true
                || (try? store?.rollout(name)) != nil
            guard known else {
                return Page(
                    status: .notFound, contentType: "application/json",
                    body: JSONOutput.object([("error", .string("there is no rollout named \(name)"))]).render())
            }
            guard let store else {
                return Page(
                    contentType: "application/json",
                    body: JSONOutput.object([
                        ("formatVersion", .string("1.0")),
                        ("entries", .array([])),
                    ]).render())
            }
            let body = try StateViews.history(
                store: store, rollout: name, limit: 500, json: true,
                style: Style(enabled: false))
            return Page(contentType: "application/json", body: body)
        }
        router.get("/metrics") { _, _ -> Page in
            _ = try? await cache.report()
            return Page(contentType: "text/plain; version=0.0.4; charset=utf-8", body: metrics.exposition())
        }
        router.get("/healthz") { _, _ -> Page in
            if await cache.health() { return Page(contentType: "text/plain; charset=utf-8", body: "ok\n") }
            return Page(
                status: .serviceUnavailable, contentType: "text/plain; charset=utf-8",
                body: "the last repository read failed\n")
        }
        return router
    }

    private func header(_ report: RunReport?, plannedAt: Date = Date()) async -> [String: Any] {
        header(report, plannedAt: plannedAt, lastReconcile: await cache.lastReconcile)
    }

    private func header(_ report: RunReport?, plannedAt: Date, lastReconcile: Date?) -> [String: Any] {
        var context = Views.header(report: report, now: plannedAt, lastReconcile: lastReconcile)
        // Without a loop of its own, the last write of any reconcile (a run that changes nothing writes nothing).
        if context["lastReconcile"] == nil, let latest = try? state.store()?.allRollouts().map(\.updatedAt).max() {
            context["lastStateWrite"] = Views.time(latest)
        }
        return context
    }

    func overview(order: OverviewOrder = OverviewOrder()) async -> Page {
        do {
            let snapshot = try await cache.snapshot()
            let lastReconcile = await cache.lastReconcile
            return .html(
                rendered.page(order.key, generation: snapshot.generation) {
                    let header = header(snapshot.report, plannedAt: snapshot.plannedAt, lastReconcile: lastReconcile)
                    return render(Views.overview(report: snapshot.report, header: header, order: order), "overview")
                })
        } catch {
            return await unavailable(error)
        }
    }

    func rolloutPage(name: String) async -> Page {
        let report: RunReport
        do {
            report = try await cache.report()
        } catch {
            return await unavailable(error)
        }
        guard let rollout = report.rollouts.first(where: { $0.name == name }) else {
            var context = await header(report)
            context["title"] = "not found"
            context["message"] = "There is no rollout named \(name)."
            return .html(render(context, "not-found"), status: .notFound)
        }
        let store = state.store()
        let entries = (try? store?.phaseEntries(rollout: name)) ?? []
        let history = (try? store?.history(rollout: name, limit: 50)) ?? []
        let panels = await panels(for: rollout, entries: entries, now: report.now)
        var context = Views.rollout(
            rollout, header: await header(report), entries: entries, history: history,
            panels: panels, now: report.now)
        let backtest =
            await backtests?.report(rollout: name, planBlob: rollout.planBlob, now: report.now)
            ?? .failure(BacktestUnavailable("no Prometheus configured (pass --metrics http…)"))
        if var page = context["rollout"] as? [String: Any] {
            page.merge(Views.backtests(backtest, rollout: name)) { _, new in new }
            context["rollout"] = page
        }
        return .html(render(context, "rollout"))
    }

    /// Each panel's series over the rollout's life (from its first phase entry, at least the last day).
    func panels(
        for rollout: RolloutReport, entries: [(phase: String, enteredAt: Date)]?,
        now: Date
    ) async -> [PanelResult] {
        guard let plan = rollout.plan, !plan.panels.isEmpty else { return [] }
        let oneDay = now.addingTimeInterval(-86_400)
        let start = min(entries?.first?.enteredAt ?? oneDay, oneDay)
        let span = max(60, now.timeIntervalSince(start))
        let step = max(60, Int((span / 240).rounded(.up)))
        let window = RolloutDuration(seconds: max(step, 300))
        let phase =
            rollout.currentPhase.flatMap { plan.phaseIndex(named: $0) }.map { plan.phases[$0] }
            ?? plan.phases.first
        guard let range = configuration.range else {
            return plan.panels.map {
                PanelResult(
                    panel: $0,
                    result: .failure(
                        RangeQueryFailure(reason: "no Prometheus configured (pass --metrics http…)")))
            }
        }
        return await withTaskGroup(of: (Int, PanelResult).self) { group in
            for (index, panel) in plan.panels.enumerated() {
                let query = QueryText.substitute(
                    panel.query, flag: plan.flag, environment: phase?.environment ?? "", phase: phase?.name ?? "",
                    window: window)
                group.addTask {
                    let result = await range.queryRange(query, start: start, end: now, step: step)
                    let chart = result.map { Chart(series: $0, start: start, end: now) }
                    return (index, PanelResult(panel: panel, result: chart))
                }
            }
            var results: [(Int, PanelResult)] = []
            for await result in group { results.append(result) }
            return results.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }

    private func unavailable(_ error: Error) async -> Page {
        var context = await header(nil)
        context["title"] = "unavailable"
        context["message"] = "Reading the repository failed: \(error)"
        return .html(render(context, "unavailable"), status: .serviceUnavailable)
    }

    private func render(_ context: [String: Any], _ template: String) -> String {
        Templates.library.render(context, withTemplate: template) ?? ""
    }
}

/// The state database, opened once it exists (a reconcile may create it after the server started).
final class StateAccess: @unchecked Sendable {
    let path: String
    private let lock = NSLock()
    private var opened: (any StateStorage)?

    init(path: String) {
        self.path = path
    }

    func store() -> (any StateStorage)? {
        lock.lock()
        defer { lock.unlock() }
        // [issue 12] A PostgreSQL session that ended (a server restart) is opened again on the next request.
        if let opened, (opened as? PostgresStateStore)?.isOpen != false { return opened }
        opened = try? StateStores.openReadOnly(path)
        return opened
    }
}
