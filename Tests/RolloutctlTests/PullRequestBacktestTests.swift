import Foundation
import RolloutCore
import RolloutTestSupport
import Testing

/// `plan --base … --metrics http…` (SPEC §6.2, issue 24): every check a pull request's branch changes is backtested
/// as the base has it and as the merge would have it, against a REAL Prometheus backfilled with
/// `BacktestCommandTests`' samples (known breach episodes, gaps), on a repository made by `git` with a branch that
/// loosens one threshold and tightens another. The before and after figures are checked against the test's own
/// computation over the same samples.
@Suite("plan --base backtests the checks a branch changes", .serialized)
struct PullRequestBacktestTests {
    typealias B = BacktestCommandTests
    static let rollout = "bt-pr"

    static func plan(errorRateMax: String, holdMax: String) -> String {
        """
        {
          "apiVersion": "rolloutctl/v1", "name": "\(rollout)", "flag": "\(B.flag)",
          "phases": [
            { "name": "staging", "environment": "staging", "coverage": 100 },
            { "name": "production", "environment": "production", "coverage": 100, "bake": "24h" }
          ],
          "health": { "checks": [
            { "name": "error-rate", "max": \(errorRateMax), "onBreach": "rollback", "onNoData": "ignore",
              "query": "\(B.ratio)" },
            { "name": "ratio-hold", "max": \(holdMax), "onBreach": "hold", "query": "\(B.ratio)" },
            { "name": "steady", "max": 0.5, "onBreach": "notify", "query": "\(B.ratio)" }
          ] },
          "rollback": { "automatic": true, "notify": ["platform-team"] }
        }
        """
    }

    /// main: error-rate at most 0.02, ratio-hold at most 0.04; the branch loosens error-rate to 0.06 and tightens
    /// ratio-hold to 0.02. Returns the branch's head.
    static func repository(_ w: CLIWorld) throws -> String {
        w.service.setFlag(B.flag, environments: [:])
        try w.repo.commitFiles(
            [
                "policies/approvers.json": CLIWorld.approvers,
                "rollouts/\(rollout)/plan.json": plan(errorRateMax: "0.02", holdMax: "0.04"),
            ], "Add bt-pr", author: CLIWorld.robin)
        try w.repo.git("switch", "-q", "-c", "loosen-error-rate", "main")
        try w.repo.commitFiles(
            ["rollouts/\(rollout)/plan.json": plan(errorRateMax: "0.06", holdMax: "0.02")],
            "Loosen error-rate to 0.06, tighten ratio-hold to 0.02", author: CLIWorld.robin)
        let head = try w.repo.head()
        try w.repo.git("switch", "-q", "main")
        return head
    }

    static func planBase(_ w: CLIWorld, head: String, metrics: String, _ extra: [String]) async throws
        -> ProcessResult
    {
        try await rolloutctl(
            [
                "plan", "--repo", w.repo.path, "--flags", w.service.baseURL, "--state", w.statePath,
                "--metrics", metrics, "--now", B.nowText, "--base", "main", "--ref", head,
            ] + extra, environment: ["ADMIN_TOKEN": CLIWorld.token])
    }

    static func times(_ count: Int) -> String { count == 1 ? "once" : "\(count) times" }

    @Test(.enabled(if: PrometheusFixture.isAvailable, "prometheus/promtool are not installed"))
    func aLoosenedThresholdShowsItsRollbacksBeforeAndAfterAsTheTestComputesThem() async throws {
        let prometheus = try await PrometheusFixture.start(openMetrics: B.openMetrics)
        defer { prometheus.stop() }
        let metrics = prometheus.baseURL.absoluteString
        try await CLIWorld.with { w in
            let head = try Self.repository(w)
            #expect(try await w.initialise().status == 0)

            // The test's own computation over the same samples, for each side.
            let series = ["staging": B.values(B.staging), "production": B.values(B.production)]
            func expected(_ check: String, _ environment: String, after: Bool) throws -> B.Expected {
                let values = try #require(series[environment])
                switch check {
                case "error-rate":
                    return B.expected(
                        values: values, start: B.start, max: after ? 0.06 : 0.02, onBreach: "rollback",
                        onNoData: "ignore", automatic: true)
                default:
                    return B.expected(
                        values: values, start: B.start, max: after ? 0.02 : 0.04, onBreach: "hold",
                        onNoData: "hold", automatic: true)
                }
            }

            let json = try await Self.planBase(w, head: head, metrics: metrics, ["--json", "--backtest-since", "8d"])
            #expect(json.status == 0, "\(json.all)")
            let document = try exactJSON(json.stdout)
            let backtest = try #require(document["backtest"] as? [String: Any])
            let window = try #require(backtest["window"] as? [String: Any])
            #expect(window["steps"] as? Int == B.steps)
            #expect(window["end"] as? String == B.nowText)
            // Both checks and both sides share one query text per environment: 2 queries, 11,520 steps each in two
            // requests of at most 11,000 points; each side is not fetched again.
            #expect(backtest["requests"] as? Int == 4)
            let checks = try #require(backtest["checks"] as? [[String: Any]])
            // The unchanged check is not backtested; two changed checks × two phases.
            #expect(
                checks.map { "\($0["check"] as? String ?? "") \($0["phase"] as? String ?? "")" }
                    == ["error-rate staging", "error-rate production", "ratio-hold staging", "ratio-hold production"])
            var rollbacks: [String: (before: Int, after: Int)] = [:]
            for entry in checks {
                let check = entry["check"] as? String ?? ""
                let environment = entry["environment"] as? String ?? ""
                #expect(entry["rollout"] as? String == Self.rollout)
                let before = try #require(entry["before"] as? [String: Any])
                let after = try #require(entry["after"] as? [String: Any])
                let old = try expected(check, environment, after: false)
                let new = try expected(check, environment, after: true)
                B.check(before, against: old, "before \(check)/\(environment)")
                B.check(after, against: new, "after \(check)/\(environment)")
                #expect(before["max"] as? Double == (check == "error-rate" ? 0.02 : 0.04))
                #expect(after["max"] as? Double == (check == "error-rate" ? 0.06 : 0.02))
                if check == "error-rate" {
                    rollbacks[environment] = (
                        old.episodes.filter(\.rollsBack).count, new.episodes.filter(\.rollsBack).count
                    )
                }
            }
            // The scenario itself: loosening to 0.06 removes every rollback (the breaches are at 0.05).
            let production = try #require(rollbacks["production"])
            let staging = try #require(rollbacks["staging"])
            #expect(production.before > 1 && production.after == 0)
            #expect(staging.before == 1 && staging.after == 0)
            // The plan documents are as without the backtest.
            #expect(document["base"] is [String: Any] && document["merged"] is [String: Any])

            let human = try await Self.planBase(w, head: head, metrics: metrics, ["--backtest-since", "8d"])
            #expect(human.status == 0, "\(human.all)")
            #expect(
                human.stdout.contains(
                    "backtest error-rate in production (8 days): would have rolled back "
                        + "\(Self.times(production.before)) → 0 times; breach episodes "
                        + "\(try expected("error-rate", "production", after: false).episodes.count) → 0"),
                "\(human.stdout)")
            #expect(
                human.stdout.contains(
                    "backtest error-rate in staging (8 days): would have rolled back once → 0 times"))
            let tightened = try expected("ratio-hold", "production", after: true)
            let loose = try expected("ratio-hold", "production", after: false)
            #expect(tightened.heldSteps > loose.heldSteps)
            #expect(human.stdout.contains("backtest ratio-hold in production (8 days): held "), "\(human.stdout)")
            #expect(!human.stdout.contains("backtest steady"))
            #expect(human.stdout.contains("backtested 2 changed checks over 8 days (4 query_range requests)"))

            let markdown = try await Self.planBase(
                w, head: head, metrics: metrics, ["--format", "markdown", "--backtest-since", "8d"])
            #expect(markdown.status == 0, "\(markdown.all)")
            #expect(markdown.stdout.contains("| backtest over 8 days | phases | what the branch changes | before |"))
            #expect(
                markdown.stdout.contains(
                    "| error-rate | production | would have rolled back \(Self.times(production.before)) → 0 times;"))
            #expect(
                markdown.stdout.contains("would have rolled back \(Self.times(production.before)) in 8 days; first"))
            #expect(markdown.stdout.contains("backtested 2 changed checks over 8 days"))

            // Without Prometheus (file: metrics), nothing changes: no backtest.
            let plain = try await Self.planBase(w, head: head, metrics: "file:" + w.metricsPath, ["--json"])
            #expect(plain.status == 0, "\(plain.all)")
            #expect(try exactJSON(plain.stdout)["backtest"] == nil)
            let plainHuman = try await Self.planBase(w, head: head, metrics: "file:" + w.metricsPath, [])
            #expect(!plainHuman.stdout.contains("backtest"), "\(plainHuman.stdout)")
        }
    }

    @Test func backtestOptionsNeedABaseAndPrometheus() async throws {
        try await CLIWorld.with { w in
            let head = try Self.repository(w)
            let noBase = try await rolloutctl(
                ["plan", "--repo", w.repo.path, "--flags", w.service.baseURL, "--backtest-since", "8d"])
            #expect(noBase.status != 0)
            #expect(noBase.stderr.contains("give --base, --ref and --metrics http(s)://"), "\(noBase.all)")
            let file = try await Self.planBase(
                w, head: head, metrics: "file:" + w.metricsPath, ["--backtest-since", "8d"])
            #expect(file.status != 0)
            #expect(file.stderr.contains("give --base, --ref and --metrics http(s)://"), "\(file.all)")
            let bad = try await Self.planBase(
                w, head: head, metrics: "http://127.0.0.1:1", ["--backtest-since", "soon"])
            #expect(bad.status != 0)
            #expect(bad.stderr.contains("--backtest-since takes a duration such as 30d, got \"soon\""), "\(bad.all)")
        }
    }
}
