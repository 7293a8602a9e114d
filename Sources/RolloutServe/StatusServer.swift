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
