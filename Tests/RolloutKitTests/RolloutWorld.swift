import Foundation
import Logging
import RolloutAdapters
import RolloutCore
import RolloutTestSupport

@testable import RolloutKit

/// A rollout repository made by `git`, a state database and a flag store: everything one
/// reconcile needs, real, in temp folders. Time moves by `at:`.
final class RolloutWorld: @unchecked Sendable {
    let repo: GitFixture
    let stateDirectory: TemporaryDirectory
    var flags: FlagStore
    var metrics: MetricsProvider?
    var notifier: Notifier
    /// Hour 0 of `run(hours:)`.
    let start: Date
    static let defaultStart = Date(timeIntervalSince1970: 1_798_761_600)  // 2027-01-01T00:00:00Z
    /// The logger runs use (tests that look for secrets record it).
    var logger = Logger(label: "test")
    /// Fixtures that must live as long as the world (e.g. its metrics file).
    var retained: [AnyObject] = []

    static let erin = GitFixture.Person(name: "Erin Lead", email: "erin@example.com")
    static let quinn = GitFixture.Person(name: "Quinn QA", email: "quinn@example.com")
    static let dana = GitFixture.Person(name: "Dana SRE", email: "dana@example.com")
    static let pat = GitFixture.Person(name: "Pat Owner", email: "pat@example.com")
    static let robin = GitFixture.Person(name: "Robin Release", email: "robin@example.com")

    /// [issue 12] A `postgres://` state instead of the SQLite file (the same world on PostgreSQL).
    var stateOverride: String?
    var statePath: String { stateOverride ?? stateDirectory.file("state.sqlite") }

    init(flags: FlagStore? = nil, metrics: MetricsProvider? = nil, start: Date = RolloutWorld.defaultStart) throws {
        self.start = start
        repo = try GitFixture()
        stateDirectory = try TemporaryDirectory(prefix: "rolloutctl-state")
        self.flags = flags ?? FileFlagStore(path: stateDirectory.file("flags.json"))
        self.metrics = metrics
        notifier = WebhookNotifier(urls: [:], client: nil, logger: Logger(label: "test"))
    }

    /// EXP-001 as the project ships it, with author identity (signatures are tested elsewhere).
    static func exp001Plan(
        checks: String? = nil, state: String = "active", name: String = "exp-001-autosave",
        flag: String = "portal_form_autosave"
    ) -> String {
        let defaultChecks = """
                { "name": "error-rate", "query": "error_rate{flag=\\"{{flag}}\\",env=\\"{{environment}}\\"}[{{window}}]", "max": 0.02, "onBreach": "rollback" },
                { "name": "latency-p95-delta", "query": "p95_delta", "max": 0.20, "onBreach": "hold" },
                { "name": "submission-success", "query": "success", "min": 0.95, "onBreach": "rollback" }
            """
        return """
            {
              "apiVersion": "rolloutctl/v1",
              "name": "\(name)",
              "flag": "\(flag)",
              "state": "\(state)",
              "phases": [
                { "name": "staging", "environment": "staging", "coverage": 100 },
                { "name": "canary-10", "environment": "production", "coverage": 10, "bake": "24h",
                  "approvals": ["engineering-lead", "qa-lead", "sre"] },
                { "name": "canary-50", "environment": "production", "coverage": 50, "bake": "24h" },
                { "name": "production", "environment": "production", "coverage": 100, "approvals": ["product-owner"] }
              ],
              "health": { "checks": [
            \(checks ?? defaultChecks)
              ] },
              "rollback": { "automatic": true, "notify": ["platform-team"] }
            }
            """
    }

    static let approvers = RolloutFixtures.exp001AuthorPolicy

    /// Commits the policy and EXP-001's plan (authored by Robin, who approves nothing), and makes
    /// the installation's state as `rolloutctl init` does for flags nothing has exposed yet.
    func seed(plan: String = RolloutWorld.exp001Plan(), rollout: String = "exp-001-autosave") throws {
        try repo.commitFiles(
            ["policies/approvers.json": Self.approvers, "rollouts/\(rollout)/plan.json": plan],
            "Add \(rollout)", author: Self.robin)
        if !(try StateStorageFactory.exists(statePath)) {
            let state = try StateStorageFactory.create(
                statePath, installation: Installation(repositoryRoot: try repositoryRoot()))
            // As `init` does since r3 (SPEC §4.0 rules 1 and 5): the branch it reads and the tip its line starts at.
            try state.keep([TipTrust.branchKey: "main", TipTrust.tipKey: try repo.head()], audit: [])
        }
    }

    /// The root commit of main's first-parent line, as git sees it.
    func repositoryRoot() throws -> String {
        try repo.git("rev-list", "--first-parent", "--max-parents=0", "main")
    }

    /// `rolloutctl init` through the Kit layer, against this world's flag store.
    func initialise(adopt: Bool = false, hours: Double = 0) async throws -> Initializer.Report {
        try await Initializer.run(
            Initializer.Settings(
                repositoryPath: repo.path, ref: nil, statePath: statePath,
                adopt: adopt, now: time(hours: hours)),
            flags: flags, logger: logger)
    }

    /// Approves a phase the GitOps way: a branch with the approver's commit, merged with --no-ff.
    func approve(
        _ phase: String, role: String, by person: GitFixture.Person,
        rollout: String = "exp-001-autosave", file: String? = nil
    ) throws {
        let planBlob = try repo.git("rev-parse", "main:rollouts/\(rollout)/plan.json")
        let branch = "approve-\(rollout)-\(phase)-\(role)-\(UUID().uuidString.prefix(6))"
        try repo.git("switch", "-q", "-c", branch, "main")
        try repo.commitFiles(
            [
                "rollouts/\(rollout)/approvals/\(phase)/\(file ?? role).json": """
                { "apiVersion": "rolloutctl/v1", "rollout": "\(rollout)", "phase": "\(phase)", "role": "\(role)",
                  "approver": "\(person.email)", "plan": "\(planBlob)" }
                """
            ], "Approve \(phase) as \(role)", author: person)
        try repo.git("switch", "-q", "main")
        try repo.git("merge", "-q", "--no-ff", "-m", "Merge \(branch)", branch, author: Self.robin)
    }

    func time(hours: Double) -> Date { start.addingTimeInterval(hours * 3600) }

    func settings(_ mode: RunMode, hours: Double, rollouts: [String] = [], concurrency: Int = 8) -> RunSettings {
        RunSettings(
            repositoryPath: repo.path, ref: nil, rollouts: rollouts,
            now: time(hours: hours), statePath: statePath, mode: mode, concurrency: concurrency)
    }

    func run(
        _ mode: RunMode = .reconcile(dryRun: false), hours: Double, rollouts: [String] = [],
        concurrency: Int = 8
    ) async throws -> RunReport {
        let ports = RunPorts(flags: flags, metrics: metrics, notifier: notifier, logger: logger)
        return try await Reconciler(
            settings: settings(mode, hours: hours, rollouts: rollouts, concurrency: concurrency),
            ports: ports
        ).run()
    }

    /// Merges the three approvals canary-10 needs.
    /// `suffix` names new files (approving the same plan content again needs new approval files: SPEC §4.1 rule 3).
    func approveCanary10(rollout: String = "exp-001-autosave", suffix: String = "") throws {
        try approve(
            "canary-10", role: "engineering-lead", by: Self.erin, rollout: rollout, file: "engineering-lead" + suffix)
        try approve("canary-10", role: "qa-lead", by: Self.quinn, rollout: rollout, file: "qa-lead" + suffix)
        try approve("canary-10", role: "sre", by: Self.dana, rollout: rollout, file: "sre" + suffix)
    }

    /// The blob id of a rollout's plan.json at the tip of main.
    func planBlob(rollout: String = "exp-001-autosave") throws -> String {
        try repo.git("rev-parse", "main:rollouts/\(rollout)/plan.json")
    }

    /// Commits a new plan.json for a rollout.
    func editPlan(_ plan: String, rollout: String = "exp-001-autosave", message: String = "Edit plan") throws {
        try repo.commitFiles(["rollouts/\(rollout)/plan.json": plan], message, author: Self.robin)
    }

    func flagState(_ flag: String = "portal_form_autosave") async throws -> [String: FlagEnvironmentState] {
        try await flags.read(flag: flag).environments
    }
}

/// A `file:` metrics source the test rewrites as it goes.
final class MetricsFile: @unchecked Sendable {
    let directory: TemporaryDirectory
    var path: String { directory.file("metrics.json") }

    init(_ values: [String: Double]) throws {
        directory = try TemporaryDirectory(prefix: "rolloutctl-metrics")
        try set(values)
    }

    func set(_ values: [String: Double]) throws {
        let body = "{" + values.map { "\"\($0.key)\": \($0.value)" }.joined(separator: ", ") + "}"
        try Data(body.utf8).write(to: URL(fileURLWithPath: path))
    }

    static let healthy: [String: Double] = ["error-rate": 0.004, "latency-p95-delta": 0.05, "submission-success": 0.98]
}

extension RunReport {
    func rollout(_ name: String = "exp-001-autosave") -> RolloutReport? {
        rollouts.first { $0.name == name }
    }
}
