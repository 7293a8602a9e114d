import Foundation
import RolloutKit

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
