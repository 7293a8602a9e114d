import Foundation
import RolloutTestSupport
import Testing

/// `serve`'s overview for 1,000 rollouts (issue 24, SPEC §9): one table, sorted and filtered on the server (no
/// script on the page), laid out by a real headless Chromium in a 1,280-pixel window, where no rollout name,
/// status or phase name breaks across lines (it used to break letter by letter in one narrow card per rollout).
@Suite("serve: the overview of 1,000 rollouts", .serialized)
struct OverviewLayoutTests {
    static let count = 1_000

    static func name(_ index: Int) -> String { "checkout-redesign-\(String(format: "%04d", index))-eu-west" }
    static func flag(_ index: Int) -> String { "portal_checkout_\(String(format: "%04d", count - 1 - index))" }

    static func plan(_ index: Int) -> String {
        """
        {
          "apiVersion": "rolloutctl/v1", "name": "\(name(index))", "flag": "\(flag(index))",\(index % 4 == 0 ? #" "state": "paused","# : "")
          "phases": [
            { "name": "staging-everyone-internal", "environment": "staging", "coverage": 100 },
            { "name": "canary-ten-percent-europe", "environment": "production", "coverage": 10, "bake": "24h" },
            { "name": "production-everyone-worldwide", "environment": "production", "coverage": 100 }
          ],
          "health": { "checks": [ { "name": "error-rate", "query": "error_rate", "max": 0.02, "onBreach": "rollback" } ] },
          "rollback": { "automatic": true, "notify": ["platform-team"] }
        }
        """
    }

    /// Appended to a copy of the page (never to the page served): for each name, status and phase, how many
    /// line boxes it is laid out in.
    static let measure = """
        <script>
        const broken = [];
        let measured = 0;
        for (const el of document.querySelectorAll('td.name a, span.status, .current-phase, .next-phase')) {
          measured += 1;
          if (el.getClientRects().length > 1) broken.push(el.textContent.trim());
        }
        document.body.setAttribute('data-measured', String(measured));
        document.body.setAttribute('data-broken', String(broken.length));
        document.body.setAttribute('data-first-broken', broken.slice(0, 3).join(' / '));
        document.body.setAttribute('data-window', String(window.innerWidth));
        </script>
        """

    static func rows(_ page: String) -> [String] {
        page.components(separatedBy: #"<tr class="rollout" id="rollout-"#).dropFirst().map {
            String($0.prefix { $0 != "\"" })
        }
    }

    @Test(.enabled(if: Chromium.path != nil, "Debian's chromium is not installed"))
    func aThousandRolloutsAreOneTableSortedAndFilteredWithoutAScriptAndNoPhaseNameBreaks() async throws {
        let profile = try TemporaryDirectory(prefix: "rolloutctl-chromium")
        try await CLIWorld.with { w in
            var files = ["policies/approvers.json": CLIWorld.approvers]
            for index in 0..<Self.count {
                files["rollouts/\(Self.name(index))/plan.json"] = Self.plan(index)
                w.service.setFlag(Self.flag(index), environments: [:])
            }
            try w.repo.commitFiles(files, "Add 1,000 rollouts", author: CLIWorld.robin)
            let serve = try await ServeProcess.start([
                "--repo", w.repo.path, "--flags", w.service.baseURL, "--state", w.statePath,
                "--now", "2027-01-01T00:00:00Z",
            ])
            defer { Task { _ = await serve.stop() } }

            let overview = try await serve.request("/")
            #expect(overview.status == 200)
            #expect(!overview.body.lowercased().contains("<script"))
            #expect(occurrences(of: #"<table class="rollouts">"#, in: overview.body) == 1)
            let names = Self.rows(overview.body)
            #expect(names.count == Self.count)
            #expect(names == (0..<Self.count).map(Self.name))  // sorted by name by default

            // Filtered by status on the server: the paused quarter, and a link for each status present.
            #expect(overview.body.contains(#"href="/?sort=name&amp;status=paused""#))
            let paused = try await serve.request("/?status=paused")
            #expect(Self.rows(paused.body) == stride(from: 0, to: Self.count, by: 4).map(Self.name))
            #expect(!paused.body.lowercased().contains("<script"))
            // Sorted by flag on the server: the flags run the other way round from the names.
            let byFlag = try await serve.request("/?sort=flag")
            #expect(Self.rows(byFlag.body) == (0..<Self.count).reversed().map(Self.name))
            #expect(byFlag.body.contains(#"data-sort="flag" aria-sort="ascending""#))

            // Laid out by Chromium in a 1,280-pixel window: every name, status and phase on one line.
            let copy = profile.file("overview.html")
            try Data(overview.body.replacingOccurrences(of: "</body>", with: Self.measure + "</body>").utf8)
                .write(to: URL(fileURLWithPath: copy))
            let dom = try await Chromium.dumpDOM("file://" + copy, profile: profile.path, width: 1280)
            #expect(dom.contains(#"data-window="1280""#))
            let measured = Int(BacktestServeTests.attribute("data-measured", in: dom) ?? "") ?? 0
            // 1,000 names and statuses, 1,000 current phases, the next phase of each.
            #expect(measured >= 3 * Self.count)
            #expect(BacktestServeTests.attribute("data-broken", in: dom) == "0", "\(dom.prefix(400))")
            #expect(
                BacktestServeTests.attribute("data-first-broken", in: dom) == "",
                "broken across lines: \(BacktestServeTests.attribute("data-first-broken", in: dom) ?? "")")
        }
    }
}
