import Foundation
import RolloutCore
import RolloutTestSupport
import Testing

/// `rolloutctl serve` as a process: a real headless Chromium reads its pages, a real Prometheus scrapes
/// `/metrics`, and a flood of requests changes nothing.
@Suite(.serialized) struct ServeCommandTests {
    static let base = RFC3339Time.parse("2026-11-01T00:00:00Z")
    static func at(hours: Double) -> String { RFC3339Time.format(base.addingTimeInterval(hours * 3600)) }

    /// The project's own EXP-001 plan (with its notify watches and dashboard panels).
    static var projectPlan: String {
        get throws {
            try String(contentsOfFile: Binary.packageRoot + "/rollouts/exp-001-autosave/plan.json", encoding: .utf8)
        }
    }

    static let hostileDescription = #"<script>document.title='owned'</script> & \"quoted\" <b>bold</b>"#

    /// EXP-001 (the project's plan) and a second rollout whose description is hostile markup.
    static func seed(_ w: CLIWorld) throws {
        w.service.setFlag("checkout_banner", environments: [:])
        try w.repo.commitFiles(
            [
                "policies/approvers.json": CLIWorld.approvers,
                "rollouts/exp-001-autosave/plan.json": try projectPlan,
                "rollouts/checkout-banner/plan.json": RolloutFixtures.plan(
                    name: "checkout-banner", flag: "checkout_banner", description: hostileDescription
                ).replacingOccurrences(of: #""query": "q""#, with: Self.errorRateQuery),
            ], "Add rollouts", author: CLIWorld.robin)
    }

    /// Every flag's 5xx share over the backfilled telemetry (0.005), so the second rollout's check passes.
    static let errorRateQuery =
        #""query": "sum(rate(http_requests_total{code=\"500\"}[1h])) / sum(rate(http_requests_total[1h]))""#

    /// An approval merged into main with `--no-ff`, authored by the approver (the policy's identity is `author`).
    static func approve(
        _ w: CLIWorld, rollout: String, phase: String, role: String,
        by person: GitFixture.Person
    ) throws {
        let planBlob = try w.repo.git("rev-parse", "main:rollouts/\(rollout)/plan.json")
        let branch = "approve-\(rollout)-\(phase)-\(role)"
        try w.repo.git("switch", "-q", "-c", branch, "main")
        try w.repo.commitFiles(
            [
                "rollouts/\(rollout)/approvals/\(phase)/\(role).json":
                    RolloutFixtures.approval(
                        rollout: rollout, phase: phase, role: role, approver: person.email,
                        plan: planBlob)
            ], "Approve \(phase) as \(role)", author: person)
        try w.repo.git("switch", "-q", "main")
        try w.repo.git("merge", "-q", "--no-ff", "-m", "Merge \(branch)", branch, author: CLIWorld.robin)
    }

    func reconcile(_ w: CLIWorld, metrics: String, now: String) async throws {
        let result = try await rolloutctl(
            [
                "reconcile", "--repo", w.repo.path, "--flags", w.service.baseURL,
                "--state", w.statePath, "--metrics", metrics, "--now", now,
            ],
            environment: ["ADMIN_TOKEN": CLIWorld.token])
        #expect(result.status == 0, "\(result.all)")
    }

    @Test(
        .enabled(if: Chromium.path != nil, "Debian's chromium is not installed"),
        .enabled(if: PrometheusFixture.isAvailable, "prometheus/promtool are not installed"))
    func aRealBrowserReadsTheStatusPages() async throws {
        // Healthy, then ten hours of a worse (still passing) stretch so the charts move, then healthy again.
        var worse = TelemetrySegment.healthy(start: Self.base.addingTimeInterval(-12 * 3600), hours: 10)
        worse.errorRate = 0.012
        worse.submissionSuccess = 0.96
        worse.draftRecoveryRate = 0.09
        let prometheus = try await PrometheusFixture.start(segments: [
            .healthy(start: Self.base.addingTimeInterval(-26 * 3600), hours: 14),
            worse,
            .healthy(start: Self.base.addingTimeInterval(-2 * 3600), hours: 36),
        ])
        defer { prometheus.stop() }
        let metrics = prometheus.baseURL.absoluteString
        let profile = try TemporaryDirectory(prefix: "rolloutctl-chromium")
        try await CLIWorld.with { w in
            try Self.seed(w)
            let initialised = try await w.initialise()
            #expect(initialised.status == 0, "\(initialised.all)")
            try await reconcile(w, metrics: metrics, now: Self.at(hours: 0))  // both enter staging
            for (role, person) in [
                ("engineering-lead", RolloutFixtures.erin), ("qa-lead", RolloutFixtures.quinn),
                ("sre", RolloutFixtures.dana),
            ] {
                try Self.approve(w, rollout: "exp-001-autosave", phase: "canary-10", role: role, by: person)
            }
            try Self.approve(
                w, rollout: "checkout-banner", phase: "canary-10", role: "engineering-lead",
                by: RolloutFixtures.erin)
            try await reconcile(w, metrics: metrics, now: Self.at(hours: 1))  // EXP-001 enters canary-10

            let serve = try await ServeProcess.start([
                "--repo", w.repo.path, "--flags", w.service.baseURL,
                "--state", w.statePath, "--metrics", metrics,
                "--now", Self.at(hours: 6),
            ])
            defer { Task { _ = await serve.stop() } }

            // The overview: statuses, missing approvers by role, bake left, projected start.
            let overview = try await Chromium.dumpDOM(serve.baseURL + "/", profile: profile.path)
            let exp = try #require(section(overview, id: "rollout-exp-001-autosave"))
            let banner = try #require(section(overview, id: "rollout-checkout-banner"))
            #expect(exp.contains(#"data-status="blocked""#))
            #expect(exp.contains("canary-10 must bake 1d before canary-50; 19h left"))
            #expect(exp.contains("2026-11-02 01:00 UTC"))  // canary-50's earliest start: canary-10 + 24h
            #expect(exp.contains(#"data-phase="production""#) && exp.contains("approval:product-owner"))
            #expect(exp.contains("10%"))  // production's coverage, desired and actual
            #expect(banner.contains(#"data-status="blocked""#))
            #expect(banner.contains(#"data-role="qa-lead""#) && banner.contains(#"data-role="sre""#))
            #expect(!banner.contains(#"data-role="engineering-lead""#))

            // EXP-001's page: health values, one SVG chart with points per panel, approve commands.
            let page = try await Chromium.dumpDOM(serve.baseURL + "/rollouts/exp-001-autosave", profile: profile.path)
            for check in [
                "error-rate", "latency-p95-delta", "submission-success", "form-submitted-drop",
                "form-abandoned-rise",
            ] {
                #expect(page.contains(#"data-check="\#(check)""#), "\(check)")
            }
            #expect(page.contains(#"<td class="value">0.005</td>"#))  // error-rate: 5 of 1000 requests
            #expect(page.contains(#"<td class="value">0.98</td>"#))  // submission-success
            #expect(occurrences(of: #"<svg class="chart""#, in: page) == 4)
            for title in [
                "Event counts", "Abandonment rate, treatment vs before (control)",
                "Draft recovery usage rate", "Error rate by flag status",
            ] {
                #expect(page.contains(#"data-title="\#(title)""#), "\(title)")
            }
            let counts = page.components(separatedBy: #"data-points=""#).dropFirst()
                .compactMap { Int($0.prefix { $0.isNumber }) }
            #expect(counts.count == 4 && counts.allSatisfy { $0 > 10 }, "\(counts)")
            #expect(!page.contains("no chart:"))
            #expect(!page.contains("approve-commands"))  // canary-50 needs no approval: nothing to run
            #expect(page.contains("canary-10 must bake 1d before canary-50; 19h left"))

            // Hostile text is shown as text: no script element, the markup escaped.
            let hostile = try await Chromium.dumpDOM(serve.baseURL + "/rollouts/checkout-banner", profile: profile.path)
            #expect(hostile.contains("&lt;script&gt;document.title='owned'&lt;/script&gt;"))
            #expect(hostile.contains("&lt;b&gt;bold&lt;/b&gt;"))
            #expect(!hostile.lowercased().contains("<script"))
            #expect(!hostile.contains("<title>owned"))
            #expect(hostile.contains("rolloutctl approve checkout-banner canary-10 --role qa-lead"))

            // Screenshots (the README's come from here: ROLLOUTCTL_SCREENSHOTS=docs/images).
            let directory = ProcessInfo.processInfo.environment["ROLLOUTCTL_SCREENSHOTS"] ?? profile.path
            let shots = [("serve-overview.png", "/", 900), ("serve-exp-001.png", "/rollouts/exp-001-autosave", 1900)]
            for (name, path, height) in shots {
                let file = directory + "/" + name
                try await Chromium.screenshot(
                    serve.baseURL + path, to: file, width: 1280, height: height,
                    profile: profile.path)
                let png = try Data(contentsOf: URL(fileURLWithPath: file))
                #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]), "\(name) is not a PNG")
                #expect(png.count > 10_000)
            }
        }
    }

    /// The row (`<tr id="…">`) of one rollout in the overview.
    func section(_ dom: String, id: String) -> String? {
        guard let start = dom.range(of: #"id="\#(id)""#) else { return nil }
        let rest = dom[start.lowerBound...]
        guard let end = rest.range(of: "</tr>") else { return nil }
        return String(rest[..<end.upperBound])
    }

    @Test(.enabled(if: PrometheusFixture.isAvailable, "prometheus/promtool are not installed"))
    func aRealPrometheusScrapesMetrics() async throws {
        try await CLIWorld.with { w in
            try await w.seed()
            let serve = try await ServeProcess.start([
                "--repo", w.repo.path, "--flags", w.service.baseURL,
                "--state", w.statePath, "--metrics", "file:" + w.metricsPath,
                "--reconcile-interval", "1s", "--max-age", "0s",
            ])
            let prometheus = try await PrometheusFixture.start(
                segments: [.healthy(start: Self.base, hours: 0.2)],
                scrapeTargets: ["127.0.0.1:\(serve.port)"])
            defer { prometheus.stop() }

            func value(_ promql: String) async throws -> Double? {
                let (status, body) = try await prometheus.query(promql, at: Date())
                guard status == 200, let object = try JSONSerialization.jsonObject(with: body) as? [String: Any],
                    let data = object["data"] as? [String: Any], let result = data["result"] as? [[String: Any]],
                    let sample = result.first?["value"] as? [Any], let text = sample.last as? String
                else {
                    return nil
                }
                return Double(text)
            }
            var runs: Double?
            var coverage: Double?
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline {
                runs = try await value(#"rolloutctl_reconcile_runs_total{result="ok",job="rolloutctl"}"#)
                coverage = try await value(
                    #"rolloutctl_rollout_coverage{rollout="exp-001-autosave",environment="staging",kind="actual"}"#)
                if (runs ?? 0) >= 2, coverage == 100 { break }
                try await Task.sleep(for: .milliseconds(500))
            }
            #expect((runs ?? 0) >= 2, "rolloutctl_reconcile_runs_total never reached 2 in Prometheus")
            #expect(coverage == 100, "staging's actual coverage as Prometheus scraped it")
            #expect(try await value(#"rolloutctl_reconcile_duration_seconds_count{job="rolloutctl"}"#) ?? 0 >= 1)
            #expect(
                try await value(
                    #"rolloutctl_rollout_info{rollout="exp-001-autosave",status="blocked",phase="staging"}"#) == 1)
            #expect(
                try await value(
                    #"rolloutctl_approvals_missing{rollout="exp-001-autosave",phase="canary-10"}"#) == 3)
            let lastRun = try await value("rolloutctl_last_reconcile_timestamp_seconds") ?? 0
            #expect(lastRun > Date().timeIntervalSince1970 - 60)

            let exposition = try await serve.request("/metrics")
            #expect(exposition.status == 200)
            #expect(exposition.type.hasPrefix("text/plain"))
            let file = w.stateDirectory.file("metrics.txt")
            try exposition.body.write(toFile: file, atomically: true, encoding: .utf8)
            let check = try await RunningProcess(
                "/bin/sh",
                [
                    "-c", "\"$0\" check metrics < \"$1\"",
                    PrometheusFixture.promtoolPath!, file,
                ]
            ).wait()
            #expect(check.status == 0, "promtool check metrics: \(check.all)")

            // SIGTERM: the reconcile in flight finishes, the server stops, exit 0.
            let stopped = await serve.stop()
            #expect(stopped.status == 0, "\(stopped.stderr)")
        }
    }

    @Test func everyRouteIsReadOnlyUnderAFloodAndUnknownRoutesAre404() async throws {
        try await CLIWorld.with { w in
            try await w.seed()
            #expect(try await w.reconcile().status == 0)
            try Self.approve(w, rollout: "exp-001-autosave", phase: "canary-10", role: "sre", by: RolloutFixtures.dana)
            let stateBefore = w.stateBytes()
            let flagsBefore = w.environments()
            let patchesBefore = w.service.patchRequests.count
            let repoBefore = try digest(directory: w.repo.path)

            let serve = try await ServeProcess.start(w.runArguments(now: "2027-01-01T05:00:00Z") + ["--max-age", "0s"])
            let routes: [(String, String, Int)] = [
                ("GET", "/", 200), ("GET", "/rollouts/exp-001-autosave", 200), ("GET", "/api/v1/plan", 200),
                ("GET", "/api/v1/rollouts/exp-001-autosave/history", 200), ("GET", "/metrics", 200),
                ("GET", "/healthz", 200), ("GET", "/nope", 404), ("GET", "/rollouts/no-such-rollout", 404),
                ("GET", "/api/v1/flags", 404), ("GET", "/api/v1/rollouts/no-such-rollout/history", 404),
                ("GET", "/../state.sqlite", 404),
                ("POST", "/", 405), ("PATCH", "/api/v1/plan", 405), ("DELETE", "/rollouts/exp-001-autosave", 405),
            ]
            var failures: [String] = []
            var tokenSeen = false
            for batch in 0..<100 {
                let results = try await withThrowingTaskGroup(of: (String, Int, Int, String).self) { group in
                    for i in 0..<10 {
                        let (method, path, expected) = routes[(batch * 10 + i) % routes.count]
                        group.addTask {
                            let answer = try await serve.request(path, method: method)
                            return ("\(method) \(path)", expected, answer.status, answer.body)
                        }
                    }
                    var all: [(String, Int, Int, String)] = []
                    for try await result in group { all.append(result) }
                    return all
                }
                for (route, expected, status, body) in results {
                    // Hummingbird answers a known path with another method 405, an unknown one 404: both refuse.
                    let refused = expected == 405 && [404, 405].contains(status)
                    if status != expected && !refused { failures.append("\(route): \(status)") }
                    if body.contains(CLIWorld.token) { tokenSeen = true }
                }
            }
            #expect(failures.isEmpty, "\(failures.prefix(5))")
            #expect(!tokenSeen)
            let plan = try await serve.request("/api/v1/plan")
            #expect(try parseJSON(plan.body)["formatVersion"] as? String == "1.0")
            #expect(plan.type.hasPrefix("application/json"))
            let stopped = await serve.stop()
            #expect(!stopped.all.contains(CLIWorld.token))

            #expect(w.stateBytes() == stateBefore)
            #expect(w.environments() == flagsBefore)
            #expect(w.service.patchRequests.count == patchesBefore)
            #expect(try digest(directory: w.repo.path) == repoBefore)
        }
    }

    /// Every file under `directory` (the repository with its `.git`), path and bytes, in path order.
    func digest(directory: String) throws -> [String: Data] {
        var files: [String: Data] = [:]
        let enumerator = FileManager.default.enumerator(atPath: directory)
        while let relative = enumerator?.nextObject() as? String {
            let path = directory + "/" + relative
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
                files[relative] = FileManager.default.contents(atPath: path) ?? Data()
            }
        }
        return files
    }
}

enum RFC3339Time {
    static func parse(_ text: String) -> Date {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)!
    }

    static func format(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }
}
