import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import RolloutAdapters
import RolloutCore
import RolloutKit
import RolloutTestSupport
import Testing

@testable import RolloutServe

/// `serve`'s routes (SPEC §9) answered in-process by the server's own router (HummingbirdTesting's router
/// client: no process, no socket), over a real plan-mode run: a repository made by `git`, a `file:` flag store
/// and a SQLite state made by `init`, with one reconcile recorded. The spawned-binary tests
/// (`ServeCommandTests`, `ServeHealthTests`) cover the process, a real browser and a real Prometheus.
@Suite struct ServeRouteTests {
    static let now = Date(timeIntervalSince1970: 1_798_761_600)  // 2027-01-01T00:00:00Z
    static let robin = GitFixture.Person(name: "Robin Release", email: "robin@example.com")
    static let rollout = "exp-001-autosave"
    static let flag = "portal_form_autosave"

    /// EXP-001's phases with no health checks: staging needs nothing, so one reconcile enters it.
    static let plan = """
        {
          "apiVersion": "rolloutctl/v1", "name": "\(rollout)", "flag": "\(flag)", "state": "active",
          "description": "Autosave for the portal form",
          "phases": [
            { "name": "staging", "environment": "staging", "coverage": 100 },
            { "name": "canary-10", "environment": "production", "coverage": 10, "bake": "24h",
              "approvals": ["engineering-lead"] }
          ],
          "health": { "checks": [] },
          "rollback": { "automatic": true }
        }
        """

    /// A repository, its installation's state and its flag file, real, in temp folders.
    final class World: Sendable {
        let repo: GitFixture
        let directory: TemporaryDirectory
        var statePath: String { directory.file("state.sqlite") }
        var flagsPath: String { directory.file("flags.json") }

        init() throws {
            repo = try GitFixture()
            directory = try TemporaryDirectory(prefix: "rolloutctl-serve-routes")
        }

        var ports: RunPorts {
            RunPorts(
                flags: FileFlagStore(path: flagsPath), metrics: nil,
                notifier: WebhookNotifier(urls: [:], client: nil, logger: Logger(label: "test")),
                logger: Logger(label: "test"))
        }

        func settings(_ mode: RunMode, repositoryPath: String? = nil) -> RunSettings {
            RunSettings(
                repositoryPath: repositoryPath ?? repo.path, now: ServeRouteTests.now, statePath: statePath,
                mode: mode)
        }

        /// The policy and EXP-001 committed, `init` run, and one reconcile that enters staging.
        static func seeded() async throws -> World {
            let world = try World()
            try world.repo.commitFiles(
                [
                    "policies/approvers.json": RolloutFixtures.exp001AuthorPolicy,
                    "rollouts/\(ServeRouteTests.rollout)/plan.json": ServeRouteTests.plan,
                ], "Add \(ServeRouteTests.rollout)", author: ServeRouteTests.robin)
            _ = try await Initializer.run(
                Initializer.Settings(
                    repositoryPath: world.repo.path, ref: nil, statePath: world.statePath, adopt: false,
                    now: ServeRouteTests.now),
                flags: FileFlagStore(path: world.flagsPath), logger: Logger(label: "test"))
            let applied = try await Reconciler(settings: world.settings(.reconcile(dryRun: false)), ports: world.ports)
                .run()
            #expect(applied.rollouts.first?.applied == true)
            return world
        }

        /// The server `rolloutctl serve` makes, planning as `plan` does (`repositoryPath`: another folder to read).
        func server(repositoryPath: String? = nil) -> StatusServer {
            let settings = settings(.plan, repositoryPath: repositoryPath)
            let ports = ports
            return StatusServer(
                configuration: ServeConfiguration(
                    host: "127.0.0.1", port: 0,
                    plan: { try await Reconciler(settings: settings, ports: ports).run() },
                    reconcile: nil, reconcileEvery: nil, maxReportAge: 60, statePath: statePath, range: nil,
                    logger: Logger(label: "test")))
        }
    }

    /// One GET through the server's router, in-process.
    static func get(_ server: StatusServer, _ uri: String) async throws -> (HTTPResponse.Status, HTTPFields, String) {
        try await request(server, uri, method: .get)
    }

    static func request(
        _ server: StatusServer, _ uri: String, method: HTTPRequest.Method
    ) async throws -> (HTTPResponse.Status, HTTPFields, String) {
        let app = Application(router: server.router())
        return try await app.test(.router) { client in
            try await client.execute(uri: uri, method: method) { response in
                (response.status, response.headers, String(buffer: response.body))
            }
        }
    }

    static func json(_ body: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
    }

    @Test func theOverviewListsEveryRolloutAsAPageThatIsNeverCachedOrSniffed() async throws {
        let world = try await World.seeded()
        let (status, headers, body) = try await Self.get(world.server(), "/")
        #expect(status == .ok)
        #expect(headers[.contentType] == "text/html; charset=utf-8")
        #expect(headers[.cacheControl] == "no-store")
        #expect(headers[HTTPField.Name("X-Content-Type-Options")!] == "nosniff")
        #expect(headers[HTTPField.Name("Content-Security-Policy")!]?.hasPrefix("default-src 'none'") == true)
        #expect(body.contains(Self.rollout))
        #expect(body.contains(Self.flag))
        // The same page filtered to a status no rollout has: the rollout is not listed.
        let (filteredStatus, _, filtered) = try await Self.get(world.server(), "/?status=rolled-back")
        #expect(filteredStatus == .ok)
        #expect(!filtered.contains("/rollouts/\(Self.rollout)"))
    }

    @Test func aRolloutPageShowsItsPhasesAndItsHistory() async throws {
        let world = try await World.seeded()
        let (status, headers, body) = try await Self.get(world.server(), "/rollouts/\(Self.rollout)")
        #expect(status == .ok)
        #expect(headers[.contentType] == "text/html; charset=utf-8")
        #expect(body.contains("Autosave for the portal form"))
        #expect(body.contains("canary-10"))
        #expect(body.contains("engineering-lead"))
    }

    @Test func anUnknownRolloutIsAPageThatSaysSoWith404() async throws {
        let world = try await World.seeded()
        let (status, _, body) = try await Self.get(world.server(), "/rollouts/exp-404")
        #expect(status == .notFound)
        #expect(body.contains("There is no rollout named exp-404."))
        let (history, _, document) = try await Self.get(world.server(), "/api/v1/rollouts/exp-404/history")
        #expect(history == .notFound)
        #expect(try Self.json(document)["error"] as? String == "there is no rollout named exp-404")
    }

    @Test func thePlanEndpointIsThePlanDocument() async throws {
        let world = try await World.seeded()
        let server = world.server()
        let (status, headers, body) = try await Self.get(server, "/api/v1/plan")
        #expect(status == .ok)
        #expect(headers[.contentType] == "application/json")
        let document = try Self.json(body)
        let rollouts = try #require(document["rollouts"] as? [[String: Any]])
        #expect(rollouts.map { $0["name"] as? String } == [Self.rollout])
        // The report the page was rendered from is the one `plan --json` prints.
        let report = try await Reconciler(settings: world.settings(.plan), ports: world.ports).run()
        #expect(body == report.json())
    }

    @Test func theHistoryEndpointIsTheAuditOfTheRollout() async throws {
        let world = try await World.seeded()
        let (status, headers, body) = try await Self.get(world.server(), "/api/v1/rollouts/\(Self.rollout)/history")
        #expect(status == .ok)
        #expect(headers[.contentType] == "application/json")
        let entries = try #require(try Self.json(body)["entries"] as? [[String: Any]])
        #expect(
            entries.contains { ($0["rollout"] as? String) == Self.rollout && ($0["phase"] as? String) == "staging" })
    }

    @Test func metricsAreThePrometheusExpositionOfTheLatestReport() async throws {
        let world = try await World.seeded()
        let (status, headers, body) = try await Self.get(world.server(), "/metrics")
        #expect(status == .ok)
        #expect(headers[.contentType] == "text/plain; version=0.0.4; charset=utf-8")
        let info = body.split(separator: "\n").filter { $0.hasPrefix("rolloutctl_rollout_info{") }
        #expect(info.count == 1)
        #expect(info.first?.contains(#"rollout="\#(Self.rollout)""#) == true)
        #expect(info.first?.contains(#"phase="staging""#) == true)
    }

    @Test func healthzSaysWhetherTheLastRepositoryReadSucceeded() async throws {
        let world = try await World.seeded()
        let server = world.server()
        _ = try await Self.get(server, "/api/v1/plan")
        let (status, _, body) = try await Self.get(server, "/healthz")
        #expect(status == .ok)
        #expect(body == "ok\n")

        // A folder that is no repository: every page says the read failed, and so does /healthz.
        let broken = world.server(repositoryPath: world.directory.path)
        let (page, _, text) = try await Self.get(broken, "/")
        #expect(page == .serviceUnavailable)
        #expect(text.contains("Reading the repository failed"))
        let (plan, _, document) = try await Self.get(broken, "/api/v1/plan")
        #expect(plan == .serviceUnavailable)
        #expect(try Self.json(document)["error"] != nil)
        let (health, _, reason) = try await Self.get(broken, "/healthz")
        #expect(health == .serviceUnavailable)
        #expect(reason == "the last repository read failed\n")
    }

    @Test func aPathNoRouteServesIs404AndNoRouteWrites() async throws {
        let world = try await World.seeded()
        let server = world.server()
        let (status, _, _) = try await Self.get(server, "/api/v1/unknown")
        #expect(status == .notFound)
        let flags = try String(contentsOfFile: world.flagsPath, encoding: .utf8)
        for method in [HTTPRequest.Method.post, .put, .delete, .patch] {
            for uri in ["/", "/api/v1/plan", "/rollouts/\(Self.rollout)", "/api/v1/rollouts/\(Self.rollout)/history"] {
                let (answer, _, _) = try await Self.request(server, uri, method: method)
                #expect(answer.kind != .successful, "\(method) \(uri)")
            }
        }
        #expect(try String(contentsOfFile: world.flagsPath, encoding: .utf8) == flags)
    }
}
