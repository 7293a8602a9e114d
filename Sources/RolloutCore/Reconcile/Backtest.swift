import Foundation

/// The backtest of SPEC §6.2, as pure code: a check replayed step by step over a past window, each step
/// judged by the reconciler's own rule for one result (`HealthResult.verdict`, `gateAction`, `inBreach`,
/// HealthGate.swift) and its notify episodes by `NotifyWatch`. Values in (the answers of range queries),
/// figures out; the requests themselves are the adapters' (`PrometheusBacktestClient`).
public enum Backtest {
    /// No single request asks Prometheus for more points than this (its own limit is 11,000 per series).
    public static let maxPointsPerRequest = 11_000

    /// The steps of a backtest: `count` instants, `step` seconds apart, the last at `end`.
    public struct Window: Equatable, Sendable {
        public var end: Date
        public var step: Int
        public var count: Int

        public init(end: Date, step: Int, count: Int) {
            self.end = end
            self.step = max(1, step)
            self.count = max(1, count)
        }

        /// The window of `since` seconds before `now` at `step` seconds: the last step is `now` rounded down
        /// to a multiple of the step (so that two runs in the same step ask the same instants), and there are
        /// `since / step` steps.
        public static func ending(at now: Date, since: Int, step: Int) -> Window {
            let step = max(1, step)
            let seconds = Int(now.timeIntervalSince1970.rounded(.down))
            let end = seconds - ((seconds % step) + step) % step
            return Window(end: Date(timeIntervalSince1970: Double(end)), step: step, count: max(1, since / step))
        }

        public var start: Date { time(0) }

        /// The instant of step `index`.
        public func time(_ index: Int) -> Date {
            end.addingTimeInterval(-Double((count - 1 - index) * step))
        }

        /// The step at `date`, when `date` is one of the window's instants.
        public func index(of date: Date) -> Int? {
            let offset = date.timeIntervalSince(start) / Double(step)
            let index = Int(offset.rounded())
            guard index >= 0, index < count, abs(offset - Double(index)) < 1e-6 else { return nil }
            return index
        }

        /// The steps split into consecutive requests of at most `maxPoints` points each.
        public func requests(maxPoints: Int = Backtest.maxPointsPerRequest) -> [Range<Int>] {
            let size = max(1, maxPoints)
            return stride(from: 0, to: count, by: size).map { $0..<min(count, $0 + size) }
        }
    }

    /// One point of one series of a range answer.
    public struct Point: Equatable, Sendable {
        public var time: Date
        public var value: Double

        public init(time: Date, value: Double) {
            self.time = time
            self.value = value
        }
    }

    /// What one range request answered for its steps: the series, or why there are none.
    public struct Answer: Equatable, Sendable {
        public var steps: Range<Int>
        public var outcome: Result<[[Point]], Failure>

        public init(steps: Range<Int>, outcome: Result<[[Point]], Failure>) {
            self.steps = steps
            self.outcome = outcome
        }
    }

    /// Why one request has no series (Prometheus' error, a timeout, an unreachable server).
    public struct Failure: Error, Equatable, Sendable {
        public var reason: String
        public init(reason: String) { self.reason = reason }
    }

    /// A part of the window whose request failed: its steps are no data, with the reason.
    public struct FailedRange: Equatable, Sendable {
        public var start: Date
        public var end: Date
        public var steps: Int
        public var reason: String

        public init(start: Date, end: Date, steps: Int, reason: String) {
            self.start = start
            self.end = end
            self.steps = steps
            self.reason = reason
        }
    }

    /// Each step's result as an instant query at that step would have given it (SPEC §8): one series with a
    /// point → its value; none → no data; several → no data, "ambiguous"; a failed request → no data with
    /// its reason. Answers may come in any order; steps no answer covers are no data.
    public static func results(window: Window, answers: [Answer]) -> (results: [MetricResult], failed: [FailedRange]) {
        var seen = [UInt16](repeating: 0, count: window.count)
        var values = [Double](repeating: 0, count: window.count)
        var failure = [String?](repeating: nil, count: window.count)
        var failed: [FailedRange] = []
        for answer in answers.sorted(by: { $0.steps.lowerBound < $1.steps.lowerBound }) {
            let steps = answer.steps.clamped(to: 0..<window.count)
            switch answer.outcome {
            case .failure(let reason):
                guard !steps.isEmpty else { continue }
                for index in steps { failure[index] = reason.reason }
                failed.append(
                    FailedRange(
                        start: window.time(steps.lowerBound), end: window.time(steps.upperBound - 1),
                        steps: steps.count, reason: reason.reason))
            case .success(let series):
                for points in series {
                    for point in points {
                        guard let index = window.index(of: point.time), steps.contains(index) else { continue }
                        seen[index] &+= 1
                        values[index] = point.value
                    }
                }
            }
        }
        var results: [MetricResult] = []
        results.reserveCapacity(window.count)
        for index in 0..<window.count {
            if let reason = failure[index] {
                results.append(.noData(reason: reason))
            } else if seen[index] == 0 {
                results.append(.noData(reason: "no data"))
            } else if seen[index] > 1 {
                results.append(.noData(reason: "ambiguous: \(seen[index]) series"))
            } else {
                results.append(.value(values[index]))
            }
        }
        return (results, failed)
    }

    /// A maximal run of steps in breach.
    public struct Episode: Equatable, Sendable {
        /// The first step in breach.
        public var start: Date
        /// How many steps the run lasts.
        public var steps: Int
        /// Its length: `steps × step` seconds.
        public var seconds: Int
        /// True when a step of it would have rolled back (a `rollback` check, `rollback.automatic` true).
        public var rollsBack: Bool

        public init(start: Date, steps: Int, seconds: Int, rollsBack: Bool) {
            self.start = start
            self.steps = steps
            self.seconds = seconds
            self.rollsBack = rollsBack
        }
    }

    /// The figures of one check in one phase (SPEC §6.2).
    public struct Figures: Equatable, Sendable {
        public var samples: Int
        /// Steps with no data (no sample, several series, a failed request).
        public var noData: Int
        /// Steps in breach (a value outside the threshold, or no data the check does not ignore).
        public var breachSteps: Int
        /// Steps where the reconciler would have held (a `hold` breach, no data with `onNoData: hold`, a
        /// `rollback` breach with `rollback.automatic` false).
        public var heldSteps: Int
        public var episodes: [Episode]
        /// Notifications a `notify` check would have sent (one per episode, as `NotifyWatch` counts them).
        public var notifications: Int

        public init(
            samples: Int, noData: Int, breachSteps: Int, heldSteps: Int, episodes: [Episode], notifications: Int
        ) {
            self.samples = samples
            self.noData = noData
            self.breachSteps = breachSteps
            self.heldSteps = heldSteps
            self.episodes = episodes
            self.notifications = notifications
        }

        public var noDataShare: Double { samples == 0 ? 0 : Double(noData) / Double(samples) }
        public var heldShare: Double { samples == 0 ? 0 : Double(heldSteps) / Double(samples) }
        /// Episodes that would have rolled back; the first one would have ended the rollout.
        public var rollbacks: Int { episodes.count(where: \.rollsBack) }
        public var firstStart: Date? { episodes.first?.start }
        public var firstRollback: Date? { episodes.first(where: \.rollsBack)?.start }
        public var longestSeconds: Int { episodes.map(\.seconds).max() ?? 0 }
    }

    /// Replays `check` over the window's results, one step at a time, as the reconciler would have judged
    /// each one (`HealthResult.gateAction` and `inBreach`; `NotifyWatch.step` for notifications).
    public static func evaluate(
        check: HealthCheck, environment: String, automatic: Bool, window: Window, results: [MetricResult]
    ) -> Figures {
        var figures = Figures(
            samples: results.count, noData: 0, breachSteps: 0, heldSteps: 0, episodes: [], notifications: 0)
        var open: Episode?
        var watching: Set<String> = []
        let checks = [check]
        for (index, result) in results.enumerated() {
            let health = HealthResult(check: check, result: result, environment: environment)
            if case .noData = result { figures.noData += 1 }
            let action = health.gateAction
            let rollsBack = action == .rollback && automatic
            if action == .hold || (action == .rollback && !automatic) { figures.heldSteps += 1 }
            if check.onBreach == .notify {
                let outcome = NotifyWatch.step(previous: watching, checks: checks, results: [health])
                figures.notifications += outcome.newEpisodes.count
                watching = outcome.breaching
            }
            if health.inBreach {
                figures.breachSteps += 1
                if open == nil {
                    open = Episode(start: window.time(index), steps: 0, seconds: 0, rollsBack: false)
                }
                open!.steps += 1
                open!.seconds += window.step
                if rollsBack { open!.rollsBack = true }
            } else if let episode = open {
                figures.episodes.append(episode)
                open = nil
            }
        }
        if let episode = open { figures.episodes.append(episode) }
        return figures
    }
}
