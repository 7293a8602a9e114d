import Foundation
import RolloutCore

/// The range requests of a backtest (SPEC §6.2): every query over a window, split so that no request asks
/// Prometheus for more than `Backtest.maxPointsPerRequest` points, made concurrently within a small bound.
/// A request that fails is that part of the window's answer (`Backtest.Answer` with the reason), never an
/// error of the whole backtest. The requests themselves are `PrometheusRangeClient`'s (the panels' client).
public struct PrometheusBacktestClient: Sendable {
    public let range: PrometheusRangeClient
    /// How many requests are in flight at once.
    public let concurrency: Int
    /// Points per request: at most `Backtest.maxPointsPerRequest` (a smaller number makes more requests).
    public let pointsPerRequest: Int

    public init(
        range: PrometheusRangeClient, concurrency: Int = 4, pointsPerRequest: Int = Backtest.maxPointsPerRequest
    ) {
        self.range = range
        self.concurrency = max(1, concurrency)
        self.pointsPerRequest = min(max(1, pointsPerRequest), Backtest.maxPointsPerRequest)
    }

    /// What the requests brought back.
    public struct Fetched: Sendable {
        /// Query text → its answers, one per request.
        public var answers: [String: [Backtest.Answer]]
        /// How many requests were made.
        public var requests: Int
    }

    /// Fetches each distinct query over the window. `progress` is called after each request with the
    /// number done and the total.
    public func fetch(
        queries: [String], window: Backtest.Window,
        progress: (@Sendable (_ done: Int, _ total: Int) -> Void)? = nil
    ) async -> Fetched {
        var distinct: [String] = []
        var known: Set<String> = []
        for query in queries where known.insert(query).inserted { distinct.append(query) }
        let parts = window.requests(maxPoints: pointsPerRequest)
        var jobs: [(query: String, steps: Range<Int>)] = []
        for query in distinct {
            for steps in parts { jobs.append((query, steps)) }
        }
        let total = jobs.count
        let range = self.range
        let step = window.step
        var answers: [String: [Backtest.Answer]] = [:]
        await withTaskGroup(of: (String, Backtest.Answer).self) { group in
            var next = 0
            func launch() {
                guard next < jobs.count else { return }
                let (query, steps) = jobs[next]
                next += 1
                let start = window.time(steps.lowerBound)
                let end = window.time(steps.upperBound - 1)
                group.addTask {
                    let result = await range.queryRange(query, start: start, end: end, step: step)
                    let outcome = result.map { series in
                        series.map { $0.points.map { Backtest.Point(time: $0.time, value: $0.value) } }
                    }.mapError { Backtest.Failure(reason: $0.reason) }
                    return (query, Backtest.Answer(steps: steps, outcome: outcome))
                }
            }
            for _ in 0..<concurrency { launch() }
            var done = 0
            for await (query, answer) in group {
                answers[query, default: []].append(answer)
                done += 1
                progress?(done, total)
                launch()
            }
        }
        return Fetched(answers: answers, requests: total)
    }
}
