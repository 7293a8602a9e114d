import Foundation
import Testing

@testable import RolloutCore

/// The backtest's pure part (SPEC §6.2): the window and its requests, joining answers into one result per
/// step, and the figures, each step judged by the reconciler's own rule (`HealthResult.gateAction`).
@Suite struct BacktestTests {
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)
    static let window = Backtest.Window(end: t0.addingTimeInterval(9 * 60), step: 60, count: 10)

    static func results(_ values: [Double?]) -> [MetricResult] {
        values.map { $0.map { .value($0) } ?? .noData(reason: "no data") }
    }

    @Test func theWindowEndsAtNowRoundedDownToTheStepAndSplitsIntoRequestsOfAtMost11000Points() {
        let now = Date(timeIntervalSince1970: 1_800_000_059)
        let window = Backtest.Window.ending(at: now, since: 30 * 86_400, step: 60)
        #expect(window.end == Date(timeIntervalSince1970: 1_800_000_000))
        #expect(window.count == 43_200)
        #expect(window.start == window.end.addingTimeInterval(-43_199 * 60))
        let requests = window.requests()
        #expect(requests.count == 4)
        #expect(requests.allSatisfy { $0.count <= Backtest.maxPointsPerRequest })
        #expect(requests.map(\.count).reduce(0, +) == 43_200)
        #expect(zip(requests, requests.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
        #expect(window.index(of: window.time(123)) == 123)
        #expect(window.index(of: window.time(123).addingTimeInterval(30)) == nil)
    }

    @Test func answersJoinIntoOneResultPerStepAsAnInstantQueryReadsThem() {
        let w = Self.window
        let one = (0..<5).map { Backtest.Point(time: w.time($0), value: Double($0)) }
        let second = [Backtest.Point(time: w.time(2), value: 9)]
        let answers = [
            Backtest.Answer(steps: 5..<10, outcome: .failure(Backtest.Failure(reason: "prometheus error execution"))),
            Backtest.Answer(steps: 0..<5, outcome: .success([one, second])),
        ]
        let (results, failed) = Backtest.results(window: w, answers: answers)
        #expect(results[0] == .value(0))
        #expect(results[2] == .noData(reason: "ambiguous: 2 series"))
        #expect(results[4] == .value(4))
        #expect(results[5...].allSatisfy { $0 == .noData(reason: "prometheus error execution") })
        #expect(
            failed == [
                Backtest.FailedRange(start: w.time(5), end: w.time(9), steps: 5, reason: "prometheus error execution")
            ])
    }

    @Test func episodesAreMaximalRunsAndNoDataBreachesWhenTheCheckHoldsOnIt() {
        let hold = HealthCheck(name: "error-rate", query: "q", max: 0.02, onBreach: .rollback, onNoData: .hold)
        var ignore = hold
        ignore.onNoData = .ignore
        let values: [Double?] = [0.01, 0.05, 0.06, nil, 0.01, nil, nil, 0.01, 0.03, 0.01]
        let held = Backtest.evaluate(
            check: hold, environment: "production", automatic: true, window: Self.window,
            results: Self.results(values))
        #expect(held.samples == 10)
        #expect(held.noData == 3)
        #expect(held.breachSteps == 6)
        #expect(held.episodes.map(\.steps) == [3, 2, 1])
        #expect(held.episodes.map(\.rollsBack) == [true, false, true])
        #expect(held.rollbacks == 2)
        #expect(held.heldSteps == 3)
        #expect(held.firstStart == Self.window.time(1))
        #expect(held.longestSeconds == 180)

        let ignored = Backtest.evaluate(
            check: ignore, environment: "production", automatic: true, window: Self.window,
            results: Self.results(values))
        #expect(ignored.episodes.map(\.steps) == [2, 1])
        #expect(ignored.heldSteps == 0)
        #expect(ignored.rollbacks == 2)
        #expect(ignored.noDataShare == 0.3)
    }

    @Test func aRollbackCheckWithoutAutomaticRollbackHoldsAndANotifyCheckNotifiesOncePerEpisode() {
        let rollback = HealthCheck(name: "error-rate", query: "q", max: 0.02, onBreach: .rollback, onNoData: .ignore)
        let values: [Double?] = [0.05, 0.05, 0.01, 0.05, nil, 0.05, 0.01, 0.01, 0.01, 0.01]
        let manual = Backtest.evaluate(
            check: rollback, environment: "production", automatic: false, window: Self.window,
            results: Self.results(values))
        #expect(manual.rollbacks == 0)
        #expect(manual.heldSteps == 4)
        #expect(manual.heldShare == 0.4)

        let notify = HealthCheck(name: "drop", query: "q", min: 0.8, onBreach: .notify, onNoData: .ignore)
        let drops: [Double?] = [0.5, 0.5, 0.9, 0.5, nil, 0.5, 0.9, 0.9, 0.5, 0.9]
        let watched = Backtest.evaluate(
            check: notify, environment: "production", automatic: true, window: Self.window,
            results: Self.results(drops))
        // No data neither starts nor ends a notify episode (NotifyWatch), but it splits a breach episode.
        #expect(watched.episodes.count == 4)
        #expect(watched.notifications == 3)
        #expect(watched.heldSteps == 0)
        #expect(watched.rollbacks == 0)
    }

    @Test func theGateActionIsTheOnePhaseMachineActsOn() {
        let check = HealthCheck(name: "p95", query: "q", max: 0.2, onBreach: .hold, onNoData: .rollback)
        #expect(HealthResult(check: check, result: .value(0.1), environment: "e").gateAction == .ignore)
        #expect(HealthResult(check: check, result: .value(0.3), environment: "e").gateAction == .hold)
        #expect(HealthResult(check: check, result: .noData(reason: "x"), environment: "e").gateAction == .rollback)
        let watch = HealthCheck(name: "w", query: "q", max: 1, onBreach: .notify, onNoData: .ignore)
        #expect(HealthResult(check: watch, result: .value(2), environment: "e").gateAction == .ignore)
        #expect(HealthResult(check: watch, result: .value(2), environment: "e").inBreach)
    }

    @Test func queryTextSubstitutesEveryPlaceholder() {
        let text = QueryText.substitute(
            "x{f=\"{{flag}}\",e=\"{{environment}}\",p=\"{{phase}}\"}[{{window}}] {{flag}}", flag: "f1",
            environment: "production", phase: "canary-10", window: RolloutDuration(seconds: 86_400))
        #expect(text == "x{f=\"f1\",e=\"production\",p=\"canary-10\"}[86400s] f1")
    }
}
