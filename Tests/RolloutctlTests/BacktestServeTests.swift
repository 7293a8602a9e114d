import Foundation
import RolloutCore
import RolloutTestSupport
import Testing

/// `serve` draws each check's backtest (SPEC §6.2, §9) from the numbers `rolloutctl backtest` prints, read
/// by a real headless Chromium; the overview is a table sorted and filtered on the server (no script).
@Suite("serve: backtest charts and the overview table", .serialized)
struct BacktestServeTests {
    @Test(
        .enabled(if: Chromium.path != nil, "Debian's chromium is not installed"),
        .enabled(if: PrometheusFixture.isAvailable, "prometheus/promtool are not installed"))
    func theRolloutPageDrawsEachChecksBacktestWithItsThresholdAndEpisodes() async throws {
        let prometheus = try await PrometheusFixture.start(openMetrics: BacktestCommandTests.openMetrics)
        defer { prometheus.stop() }
        let metrics = prometheus.baseURL.absoluteString
        let profile = try TemporaryDirectory(prefix: "rolloutctl-chromium")
        try await CLIWorld.with { w in
            w.service.setFlag(BacktestCommandTests.flag, environments: [:])
            w.service.setFlag("bt_other", environments: [:])
            let paused = BacktestCommandTests.partialPlan.replacingOccurrences(
                of: #""flag": "bt_other","#, with: #""flag": "bt_other", "state": "paused","#)
            try w.repo.commitFiles(
                [
                    "policies/approvers.json": CLIWorld.approvers,
                    "rollouts/bt-main/plan.json": BacktestCommandTests.mainPlan,
                    "rollouts/bt-partial/plan.json": paused,
                ], "Add the backtest rollouts", author: CLIWorld.robin)
            let now = BacktestCommandTests.nowText
            let serve = try await ServeProcess.start([
                "--repo", w.repo.path, "--flags", w.service.baseURL, "--state", w.statePath, "--metrics", metrics,
                "--now", now,
            ])
            defer { Task { _ = await serve.stop() } }

            let page = try await Chromium.dumpDOM(serve.baseURL + "/rollouts/bt-main", profile: profile.path)
            #expect(!page.lowercased().contains("<script"))
            #expect(!page.contains("no backtest:"), "\(page.prefix(3000))")
            // The command's own numbers, same repository, same end of window, its defaults (30 days at 1m).
            let command = try await rolloutctl([
                "backtest", "--repo", w.repo.path, "--metrics", metrics, "--now", now, "--json",
                "--state", w.statePath, "--rollout", "bt-main",
            ])
            let document = try exactJSON(command.stdout)
            let rows = BacktestCommandTests.rows(document, rollout: "bt-main")
            #expect(rows.count == 12)

            let figures = page.components(separatedBy: #"<figure class="backtest""#).dropFirst().map {
                $0.components(separatedBy: "</figure>")[0]
            }
            // Rows with the same figures share a chart: error-rate names its phase (three charts); the others
            // have staging's and production's queries (canary and production share theirs).
            #expect(figures.count == 3 + 2 * 3, "\(figures.count)")
            for figure in figures {
                #expect(figure.contains(#"<svg class="chart backtest-chart""#))
                #expect(occurrences(of: #"<line class="threshold""#, in: figure) == 1)
                let check = try #require(Self.attribute("data-check", in: figure))
                let phases = try #require(Self.attribute("data-phases", in: figure)).components(separatedBy: ", ")
                let row = try #require(
                    rows.first { $0["check"] as? String == check && $0["phase"] as? String == phases[0] })
                let episodes = (row["episodes"] as? [String: Any])?["count"] as? Int
                #expect(Self.attribute("data-episodes", in: figure) == episodes.map(String.init), "\(check)")
                #expect(occurrences(of: #"<rect class="episode""#, in: figure) == episodes, "\(check) \(phases)")
                #expect(Self.attribute("data-rollbacks", in: figure) == (row["rollbacks"] as? Int).map(String.init))
                #expect(figure.contains("<polyline"))
            }
            let errorRate = try #require(
                figures.first { $0.contains(#"data-check="error-rate""#) && $0.contains(#"data-phases="production""#) })
            #expect((Self.attribute("data-episodes", in: errorRate).flatMap(Int.init) ?? 0) > 5)
            #expect(errorRate.contains("max 0.02"))
            #expect(errorRate.contains("would have rolled back"))

            // The overview: a table, filtered and sorted by links the server reads (no script).
            let overview = try await Chromium.dumpDOM(serve.baseURL + "/", profile: profile.path)
            #expect(overview.contains(#"<table class="rollouts">"#))
            #expect(overview.contains(#"id="rollout-bt-main""#) && overview.contains(#"id="rollout-bt-partial""#))
            #expect(overview.contains(#"href="/?sort=name&amp;status=paused""#))
            #expect(!overview.lowercased().contains("<script"))
            let filtered = try await Chromium.dumpDOM(
                serve.baseURL + "/?sort=status&status=paused", profile: profile.path)
            #expect(filtered.contains(#"id="rollout-bt-partial""#))
            #expect(!filtered.contains(#"id="rollout-bt-main""#))
            #expect(filtered.contains(#"data-filter="paused""#) && filtered.contains(#"aria-current="page""#))
            let byFlag = try await serve.request("/?sort=flag")
            let main = try #require(byFlag.body.range(of: #"id="rollout-bt-main""#))
            let partial = try #require(byFlag.body.range(of: #"id="rollout-bt-partial""#))
            #expect(main.lowerBound < partial.lowerBound)  // bt_flag before bt_other
            let unknown = try await serve.request("/?sort=%3Cscript%3E&status=nonsense")
            #expect(unknown.status == 200)
            #expect(!unknown.body.contains("nonsense") && !unknown.body.contains("<script"))

            let directory = ProcessInfo.processInfo.environment["ROLLOUTCTL_SCREENSHOTS"] ?? profile.path
            let file = directory + "/serve-backtest.png"
            try await Chromium.screenshot(
                serve.baseURL + "/rollouts/bt-main", to: file, width: 1280, height: 1900, profile: profile.path)
            let png = try Data(contentsOf: URL(fileURLWithPath: file))
            #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]))
        }
    }

    /// The value of the first `name="…"` in `text`.
    static func attribute(_ name: String, in text: String) -> String? {
        guard let range = text.range(of: name + "=\"") else { return nil }
        return String(text[range.upperBound...].prefix { $0 != "\"" })
    }
}
