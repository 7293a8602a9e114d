import Foundation
import RolloutCore
import RolloutTestSupport
import Testing

/// `rolloutctl backtest` (SPEC §6.2) against a REAL Prometheus, backfilled with
/// `promtool tsdb create-blocks-from openmetrics`: known breach episodes (one long, several short) and gaps
/// of no data. Every figure of `--json` is checked against a computation over the same samples done here,
/// with Prometheus' own rule for an instant (the latest sample at most 5 minutes old, its default lookback).
@Suite("rolloutctl backtest with a real Prometheus", .serialized)
struct BacktestCommandTests {
    // MARK: The data

    /// 2027-03-01T00:00:00Z.
    static let t0 = Date(timeIntervalSince1970: 1_803_859_200)
    static let now = t0.addingTimeInterval(8 * 86_400)
    static let nowText = RFC3339.format(now)
    static let flag = "bt_flag"

    static func at(day: Int, _ hour: Int, _ minute: Int) -> Double {
        t0.timeIntervalSince1970 + Double(day * 86_400 + hour * 3600 + minute * 60)
    }

    /// One sample every minute at :30 (never on a step, so the lookback has no ties), from an hour before t0
    /// to `now`; `value(minuteStart)` is the sample's value, nil for none (a gap).
    static func series(_ value: (Double) -> Double?) -> [(Double, Double)] {
        var out: [(Double, Double)] = []
        var t = t0.timeIntervalSince1970 - 3600
        while t < now.timeIntervalSince1970 {
            if let v = value(t) { out.append((t + 30, v)) }
            t += 60
        }
        return out
    }

    static func within(_ t: Double, _ from: Double, minutes: Double) -> Bool { t >= from && t < from + minutes * 60 }

    /// production: 0.01, with one long breach (3 h), several short ones (14, 3, 1 and 7 minutes, one
    /// running into a gap), and gaps of 20 min, 30 min, 2 h and 45 min.
    static let production = series { t in
        if within(t, at(day: 2, 14, 0), minutes: 20) || within(t, at(day: 3, 8, 3), minutes: 30)
            || within(t, at(day: 5, 3, 0), minutes: 120) || within(t, at(day: 7, 0, 0), minutes: 45)
        {
            return nil
        }
        if within(t, at(day: 1, 10, 0), minutes: 180) || within(t, at(day: 2, 2, 10), minutes: 14)
            || within(t, at(day: 3, 8, 0), minutes: 3) || within(t, at(day: 4, 20, 30), minutes: 1)
            || within(t, at(day: 6, 12, 0), minutes: 7)
        {
            return 0.05
        }
        if within(t, at(day: 6, 18, 0), minutes: 50) { return 0.03 }  // only the hold check (max 0.04) passes
        return 0.01
    }

    /// staging: 0.005, a gap of an hour and a breach of 5 minutes.
    static let staging = series { t in
        if within(t, at(day: 1, 4, 0), minutes: 60) { return nil }
        if within(t, at(day: 6, 9, 0), minutes: 5) { return 0.05 }
        return 0.005
    }

    /// `bt_scale` is 1; a second series of it exists for an hour on day 5, so a query joining on it fails
    /// ("duplicate series for the match group") for the requests that cover that hour.
    static let scaleA = series { _ in 1 }
    static let scaleB = series { t in within(t, at(day: 5, 18, 0), minutes: 60) ? 1 : nil }

    static var openMetrics: String {
        func lines(_ name: String, _ labels: String, _ points: [(Double, Double)]) -> String {
            points.map { "\(name){\(labels)} \(exactNumberText($0.1)) \(Int($0.0))" }.joined(separator: "\n")
        }
        return [
            "# TYPE bt_ratio gauge",
            lines("bt_ratio", #"flag="\#(flag)",environment="production""#, production),
            lines("bt_ratio", #"flag="\#(flag)",environment="staging""#, staging),
            "# TYPE bt_scale gauge",
            lines("bt_scale", #"flag="\#(flag)",instance="a""#, scaleA),
            lines("bt_scale", #"flag="\#(flag)",instance="b""#, scaleB),
            "# EOF",
        ].joined(separator: "\n") + "\n"
    }

    // MARK: The repository

    static let ratio = #"bt_ratio{flag=\"{{flag}}\",environment=\"{{environment}}\"}"#
    static let phases = """
          "phases": [
            { "name": "staging", "environment": "staging", "coverage": 100 },
            { "name": "canary", "environment": "production", "coverage": 10, "bake": "24h" },
            { "name": "dark", "environment": "production", "coverage": 0 },
            { "name": "production", "environment": "production", "coverage": 100 }
          ],
        """

    static let mainPlan = """
        {
          "apiVersion": "rolloutctl/v1", "name": "bt-main", "flag": "\(flag)",
        \(phases)
          "health": { "checks": [
            { "name": "error-rate", "max": 0.02, "onBreach": "rollback", "onNoData": "hold",
              "query": "bt_ratio{flag=\\"{{flag}}\\",environment=\\"{{environment}}\\",phase!=\\"{{phase}}\\",window!=\\"{{window}}\\"}" },
            { "name": "error-rate-ignoring-gaps", "max": 0.02, "onBreach": "rollback", "onNoData": "ignore",
              "query": "\(ratio)" },
            { "name": "ratio-hold", "max": 0.04, "onBreach": "hold", "query": "\(ratio)" },
            { "name": "ratio-watch", "max": 0.02, "onBreach": "notify", "query": "\(ratio)" }
          ] },
          "rollback": { "automatic": true, "notify": ["platform-team"] }
        }
        """

    static let partialPlan = """
        {
          "apiVersion": "rolloutctl/v1", "name": "bt-partial", "flag": "bt_other",
          "phases": [ { "name": "production", "environment": "production", "coverage": 100 } ],
          "health": { "checks": [
            { "name": "scaled", "max": 0.02, "onBreach": "rollback",
              "query": "bt_ratio{flag=\\"\(flag)\\",environment=\\"{{environment}}\\"} * on(flag) bt_scale{flag=\\"\(flag)\\"}" }
          ] },
          "rollback": { "automatic": false }
        }
        """

    final class World: @unchecked Sendable {
        let prometheus: PrometheusFixture
        let repo: GitFixture
        let state: TemporaryDirectory
        var metrics: String { prometheus.baseURL.absoluteString }

        init(prometheus: PrometheusFixture, repo: GitFixture, state: TemporaryDirectory) {
            self.prometheus = prometheus
            self.repo = repo
            self.state = state
        }

        func backtest(_ extra: [String]) async throws -> ProcessResult {
            try await rolloutctl(
                [
                    "backtest", "--repo", repo.path, "--metrics", metrics, "--now", BacktestCommandTests.nowText,
                    "--since", "8d", "--state", state.file("none.sqlite"),
                ] + extra)
        }

        func json(_ extra: [String]) async throws -> [String: Any] {
            let result = try await backtest(["--json"] + extra)
            #expect(result.status == 0 || result.status == 2, "\(result.all)")
            return try exactJSON(result.stdout)
        }
    }

    static func withWorld(_ body: (World) async throws -> Void) async throws {
        let prometheus = try await PrometheusFixture.start(openMetrics: openMetrics)
        defer { prometheus.stop() }
        let repo = try GitFixture()
        try repo.commitFiles(
            [
                "policies/approvers.json": CLIWorld.approvers, "rollouts/bt-main/plan.json": mainPlan,
                "rollouts/bt-partial/plan.json": partialPlan,
            ], "Add the backtest rollouts", author: CLIWorld.robin)
        try await body(World(prometheus: prometheus, repo: repo, state: try TemporaryDirectory(prefix: "backtest")))
    }

    // MARK: The test's own computation

    /// What an instant query at `t` gives: the latest sample in [t − 5m, t] (Prometheus 2's lookback).
    static func instant(_ points: [(Double, Double)], at t: Double) -> Double? {
        var low = 0
        var high = points.count
        while low < high {  // the first sample after t
            let mid = (low + high) / 2
            if points[mid].0 <= t { low = mid + 1 } else { high = mid }
        }
        guard low > 0, points[low - 1].0 >= t - 300 else { return nil }
        return points[low - 1].1
    }

    struct Expected {
        var samples = 0
        var noData = 0
        var breachSteps = 0
        var heldSteps = 0
        var episodes: [(start: Double, steps: Int, rollsBack: Bool)] = []
    }

    /// Steps of 60 s ending at `now`, `count` of them; for each step the value (nil: no data), then the episodes.
    static func expected(
        values: [Double?], start: Double, max: Double, onBreach: String, onNoData: String, automatic: Bool
    ) -> Expected {
        var e = Expected()
        var open: (start: Double, steps: Int, rollsBack: Bool)?
        for (index, value) in values.enumerated() {
            e.samples += 1
            let breach: Bool
            var rollsBack = false
            if let value {
                breach = value > max
                if breach && onBreach == "rollback" && automatic { rollsBack = true }
                if breach && (onBreach == "hold" || (onBreach == "rollback" && !automatic)) { e.heldSteps += 1 }
            } else {
                e.noData += 1
                breach = onNoData != "ignore"
                if onNoData == "hold" { e.heldSteps += 1 }
            }
            if breach {
                e.breachSteps += 1
                if open == nil { open = (start + Double(index * 60), 0, false) }
                open!.steps += 1
                if rollsBack { open!.rollsBack = true }
            } else if let episode = open {
                e.episodes.append(episode)
                open = nil
            }
        }
        if let open { e.episodes.append(open) }
        return e
    }

    static func check(_ row: [String: Any], against e: Expected, _ label: String) {
        #expect(row["samples"] as? Int == e.samples, "\(label) samples")
        #expect(row["noData"] as? Int == e.noData, "\(label) noData")
        #expect(row["noDataShare"] as? Double == Double(e.noData) / Double(e.samples), "\(label) noDataShare")
        #expect(row["breachSteps"] as? Int == e.breachSteps, "\(label) breachSteps")
        #expect(row["heldSteps"] as? Int == e.heldSteps, "\(label) heldSteps")
        #expect(row["heldShare"] as? Double == Double(e.heldSteps) / Double(e.samples), "\(label) heldShare")
        let episodes = row["episodes"] as? [String: Any] ?? [:]
        #expect(episodes["count"] as? Int == e.episodes.count, "\(label) episodes")
        let first = e.episodes.first.map { RFC3339.format(Date(timeIntervalSince1970: $0.start)) }
        #expect(episodes["firstStart"] as? String == first, "\(label) firstStart")
        #expect(episodes["longestSeconds"] as? Int == (e.episodes.map { $0.steps * 60 }.max() ?? 0), "\(label) longest")
        let list = episodes["list"] as? [[String: Any]] ?? []
        #expect(
            list.map {
                "\($0["start"] as? String ?? "") \($0["steps"] as? Int ?? -1) \($0["rollsBack"] as? Bool ?? false)"
            }
                == e.episodes.map {
                    "\(RFC3339.format(Date(timeIntervalSince1970: $0.start))) \($0.steps) \($0.rollsBack)"
                }, "\(label) episode list")
        let rollbacks = e.episodes.filter(\.rollsBack)
        #expect(row["rollbacks"] as? Int == rollbacks.count, "\(label) rollbacks")
        let firstRollback = rollbacks.first.map { RFC3339.format(Date(timeIntervalSince1970: $0.start)) }
        #expect(row["firstRollback"] as? String == firstRollback, "\(label) firstRollback")
    }

    static func rows(_ document: [String: Any], rollout: String) -> [[String: Any]] {
        let rollouts = document["rollouts"] as? [[String: Any]] ?? []
        return rollouts.first { $0["name"] as? String == rollout }?["checks"] as? [[String: Any]] ?? []
    }

    static let steps = 8 * 1440
    static var start: Double { now.timeIntervalSince1970 - Double((steps - 1) * 60) }
    static func values(_ points: [(Double, Double)]) -> [Double?] {
        (0..<steps).map { instant(points, at: start + Double($0 * 60)) }
    }

    // MARK: Tests

    @Test(.enabled(if: PrometheusFixture.isAvailable, "prometheus/promtool are not installed"))
    func everyFigureMatchesTheTestsOwnComputationOverTheSameSamples() async throws {
        try await Self.withWorld { world in
            let document = try await world.json(["--rollout", "bt-main", "--detailed-exitcode"])
            let window = try #require(document["window"] as? [String: Any])
            #expect(window["steps"] as? Int == Self.steps)
            #expect(window["stepSeconds"] as? Int == 60)
            #expect(window["end"] as? String == Self.nowText)
            // 11,520 steps: two requests of at most 11,000 points per distinct query. error-rate names its phase
            // (3 queries); the three other checks share one query text, staging's and production's: 5 queries.
            #expect(document["requests"] as? Int == 10)
            let rows = Self.rows(document, rollout: "bt-main")
            // Four checks × three phases that expose users (the coverage-0 phase is never evaluated).
            #expect(rows.count == 12)
            #expect(!rows.contains { $0["phase"] as? String == "dark" })
            let series = ["staging": Self.values(Self.staging), "production": Self.values(Self.production)]
            let checks: [String: (max: Double, onBreach: String, onNoData: String)] = [
                "error-rate": (0.02, "rollback", "hold"), "error-rate-ignoring-gaps": (0.02, "rollback", "ignore"),
                "ratio-hold": (0.04, "hold", "hold"), "ratio-watch": (0.02, "notify", "ignore"),
            ]
            for row in rows {
                let name = row["check"] as? String ?? ""
                let environment = row["environment"] as? String ?? ""
                let spec = try #require(checks[name])
                let expected = Self.expected(
                    values: try #require(series[environment]), start: Self.start, max: spec.max,
                    onBreach: spec.onBreach, onNoData: spec.onNoData, automatic: true)
                Self.check(row, against: expected, "\(name)/\(row["phase"] ?? "")")
                #expect((row["failed"] as? [Any])?.isEmpty == true)
            }
            // The placeholders, substituted per phase: {{window}} is the bake, or 1h.
            let canary = try #require(
                rows.first { $0["check"] as? String == "error-rate" && $0["phase"] as? String == "canary" })
            #expect(
                canary["query"] as? String
                    == #"bt_ratio{flag="bt_flag",environment="production",phase!="canary",window!="86400s"}"#)
            let staging = try #require(
                rows.first { $0["check"] as? String == "error-rate" && $0["phase"] as? String == "staging" })
            #expect((staging["query"] as? String)?.contains(#"window!="3600s""#) == true)

            // The scenario itself: hold counts gaps as breaches, ignore does not; one long episode, short ones.
            let production = try #require(
                rows.first { $0["check"] as? String == "error-rate" && $0["phase"] as? String == "production" })
            let ignoring = try #require(
                rows.first {
                    $0["check"] as? String == "error-rate-ignoring-gaps" && $0["phase"] as? String == "production"
                })
            #expect((production["episodes"] as? [String: Any])?["count"] as? Int == 9)
            #expect((ignoring["episodes"] as? [String: Any])?["count"] as? Int == 6)
            #expect((ignoring["episodes"] as? [String: Any])?["longestSeconds"] as? Int == 180 * 60)
            #expect(ignoring["heldSteps"] as? Int == 0)
            #expect((production["heldSteps"] as? Int ?? 0) > 0)
            #expect(
                production["firstRollback"] as? String
                    == RFC3339.format(Date(timeIntervalSince1970: Self.at(day: 1, 10, 1))))
            let summary = try #require(document["summary"] as? [String: Any])
            #expect(summary["wouldRollBack"] as? Bool == true)

            // --detailed-exitcode: 2 when a rollback check would have fired.
            let exit = try await world.backtest(["--rollout", "bt-main", "--detailed-exitcode"])
            #expect(exit.status == 2, "\(exit.all)")
            #expect(
                exit.stdout.contains(
                    "would have rolled back 6 times in 8 days; first 2027-03-02 10:01 UTC, longest 3 h"))
            #expect(exit.stdout.contains("the first rollback, 2027-03-02 10:01 UTC, would have ended the rollout"))
            #expect(exit.stdout.contains("would have held"))
            #expect(exit.stderr.isEmpty, "no progress line when stderr is not a terminal: \(exit.stderr)")
            let plain = try await world.backtest(["--rollout", "bt-main"])
            #expect(plain.status == 0, "\(plain.all)")
        }
    }

    @Test(.enabled(if: PrometheusFixture.isAvailable, "prometheus/promtool are not installed"))
    func aWindowNeedingSeveralRequestsGivesTheSameFiguresAsOneRequest() async throws {
        try await Self.withWorld { world in
            // 7 days at 1m: 10,080 steps, one request per query; then 21 requests of at most 500 points each.
            let one = try await world.json(["--rollout", "bt-main", "--since", "7d"])
            let many = try await world.json(["--rollout", "bt-main", "--since", "7d", "--points-per-request", "500"])
            #expect(one["requests"] as? Int == 5)
            #expect(many["requests"] as? Int == 5 * 21)
            let a = Self.rows(one, rollout: "bt-main")
            let b = Self.rows(many, rollout: "bt-main")
            #expect(a.count == 12)
            #expect(NSArray(array: a).isEqual(to: b))
            // …and as the test computes them over the same samples.
            let values = Self.values(Self.production).suffix(10_080)
            let row = try #require(
                a.first { $0["check"] as? String == "error-rate" && $0["phase"] as? String == "production" })
            Self.check(
                row,
                against: Self.expected(
                    values: Array(values), start: Self.now.timeIntervalSince1970 - 10_079 * 60, max: 0.02,
                    onBreach: "rollback", onNoData: "hold", automatic: true), "7d error-rate")
        }
    }

    @Test(.enabled(if: PrometheusFixture.isAvailable, "prometheus/promtool are not installed"))
    func aQueryThatErrorsForPartOfTheWindowIsReportedNotFatal() async throws {
        try await Self.withWorld { world in
            let result = try await world.backtest(["--json", "--points-per-request", "1000", "--detailed-exitcode"])
            // bt-main would roll back (2); the failing part of bt-partial is no error of the run.
            #expect(result.status == 2, "\(result.all)")
            let document = try exactJSON(result.stdout)
            let row = try #require(Self.rows(document, rollout: "bt-partial").first)
            let failed = row["failed"] as? [[String: Any]] ?? []
            // Which requests of 1,000 steps fail: those with a step that sees bt_scale's second series.
            var failing: Set<Int> = []
            var values = Self.values(Self.production)
            for index in 0..<Self.steps where Self.instant(Self.scaleB, at: Self.start + Double(index * 60)) != nil {
                failing.insert(index / 1000)
            }
            #expect(!failing.isEmpty)
            for chunk in failing {
                for index in (chunk * 1000)..<min(Self.steps, chunk * 1000 + 1000) { values[index] = nil }
            }
            #expect(failed.count == failing.count)
            #expect(failed.allSatisfy { ($0["reason"] as? String ?? "").contains("duplicate series") }, "\(failed)")
            #expect(
                failed.map { $0["start"] as? String }
                    == failing.sorted().map {
                        RFC3339.format(Date(timeIntervalSince1970: Self.start + Double($0 * 1000 * 60)))
                    })
            // automatic false: the rollback check's breaches hold; the failed steps are no data, which holds.
            Self.check(
                row,
                against: Self.expected(
                    values: values, start: Self.start, max: 0.02, onBreach: "rollback", onNoData: "hold",
                    automatic: false), "scaled")
            #expect(row["rollbacks"] as? Int == 0)
            let human = try await world.backtest(["--rollout", "bt-partial", "--points-per-request", "1000"])
            #expect(human.status == 0, "\(human.all)")
            #expect(human.stdout.contains("unread: "))
            #expect(human.stdout.contains("part of the window could not be read"))
        }
    }

    @Test(.enabled(if: PrometheusFixture.isAvailable, "prometheus/promtool are not installed"))
    func markdownStartsWithTheSummaryLineAndHasATablePerRollout() async throws {
        try await Self.withWorld { world in
            let result = try await world.backtest(["--format", "markdown"])
            #expect(result.status == 0, "\(result.all)")
            let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            #expect(
                lines.first?.hasPrefix("**rolloutctl backtest** · Backtest of 5 checks in 2 rollouts over 8 days")
                    == true)
            #expect(result.stdout.contains("### bt-main (`bt_flag`)"))
            #expect(result.stdout.contains("### bt-partial (`bt_other`)"))
            #expect(occurrences(of: "| check | threshold |", in: result.stdout) == 2)
            #expect(result.stdout.count <= 60_000)
            #expect(!result.stdout.contains("\u{1B}["))
            let both = try await world.backtest(["--json", "--format", "markdown"])
            #expect(both.status == 1)
            #expect(both.stderr.contains("--json is the short form of --format json"))
        }
    }
}

/// A JSON document read with the core's parser, numbers as `Double(text)` reads them (exactly: Foundation's
/// JSONSerialization on Linux may be one ulp off), as Foundation objects.
func exactJSON(_ text: String) throws -> [String: Any] {
    func convert(_ value: JSONValue) -> Any {
        switch value.kind {
        case .object(let members):
            var out: [String: Any] = [:]
            for member in members { out[member.key] = convert(member.value) }
            return out
        case .array(let elements): return elements.map(convert)
        case .string(let text): return text
        case .number(let number): return NSNumber(value: number)
        case .bool(let flag): return flag
        case .null: return NSNull()
        }
    }
    guard let document = convert(try JSONParser.parse(Array(text.utf8))) as? [String: Any] else {
        throw FixtureError("not a JSON object: \(text.prefix(200))")
    }
    return document
}
