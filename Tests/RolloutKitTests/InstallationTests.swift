import Foundation
import Logging
import RolloutCore
import RolloutTestSupport
import Testing

@testable import RolloutAdapters
@testable import RolloutKit

/// A state that cannot silently vanish (SPEC §5.10): `init` creates it, `reconcile` never does,
/// it knows its repository and refuses another one or a newer schema; `plan` never writes it.
@Suite(.serialized) struct InstallationTests {
    /// A world with healthy metrics (no data would hold every phase).
    private func healthyWorld() throws -> RolloutWorld {
        let metrics = try MetricsFile(MetricsFile.healthy)
        let world = try RolloutWorld(metrics: FileMetricsProvider(path: metrics.path))
        world.retained.append(metrics)
        return world
    }

    @Test func reconcileWithoutAStateRefusesWithTheMessageAndCreatesNothing() async throws {
        let world = try RolloutWorld()
        try world.repo.commitFiles(
            [
                "policies/approvers.json": RolloutWorld.approvers,
                "rollouts/exp-001-autosave/plan.json": RolloutWorld.exp001Plan(),
            ], "Add",
            author: RolloutWorld.robin)
        await #expect {
            _ = try await world.run(hours: 0)
        } throws: { error in
            "\(error)"
                == "no state at \(world.statePath): run `rolloutctl init` for a new installation, or restore the state"
        }
        #expect(!FileManager.default.fileExists(atPath: world.statePath))
        #expect(try await world.flagState().isEmpty)

        // plan works without one, and writes none.
        let plan = try await world.run(.plan, hours: 0)
        #expect(plan.rollout()?.changes.count == 1)
        #expect(!FileManager.default.fileExists(atPath: world.statePath))

        // init, then reconcile works.
        let report = try await world.initialise()
        #expect(report.repositoryRoot == (try world.repositoryRoot()))
        #expect(
            try SQLiteStateStore(path: world.statePath).installation()?.repositoryRoot == (try world.repositoryRoot()))
        #expect(try await world.run(hours: 0).rollout()?.applied == true)
        // init never overwrites a state.
        await #expect(throws: StateStoreError.alreadyInitialised(path: world.statePath)) {
            _ = try await world.initialise()
        }
    }

    @Test func aStateOfAnotherRepositoryIsRefused() async throws {
        let world = try healthyWorld()
        try world.seed()
        _ = try await world.run(hours: 0)
        let other = try RolloutWorld()
        // The same files, but another history (the fixture's clock would make identical first commits).
        try other.repo.commitFiles(["README.md": "another team's rollouts"], "Start", author: RolloutWorld.robin)
        try other.seed()
        let root = try world.repositoryRoot()
        let settings = RunSettings(
            repositoryPath: other.repo.path, now: other.start, statePath: world.statePath,
            mode: .reconcile(dryRun: false))
        let ports = RunPorts(flags: other.flags, metrics: nil, notifier: other.notifier, logger: Logger(label: "test"))
        await #expect {
            _ = try await Reconciler(settings: settings, ports: ports).run()
        } throws: { error in
            guard case StateStoreError.anotherRepository(_, let recorded, let actual)? = error as? StateStoreError
            else {
                return false
            }
            return recorded == root && actual == (try? other.repositoryRoot())
        }
        #expect(try await other.flagState().isEmpty)
        // The root is that of the first-parent line: merges of approval branches do not change it.
        try world.approveCanary10()
        #expect(try await world.run(hours: 1).rollout()?.errors.isEmpty == true)
    }

    @Test func aStateWrittenByANewerRolloutctlIsRefused() async throws {
        let world = try RolloutWorld()
        try world.seed()
        _ = try await world.run(hours: 0)
        try runProgram(
            "python3",
            [
                "-c",
                """
                import sqlite3, sys
                db = sqlite3.connect(sys.argv[1]); db.execute("INSERT INTO grdb_migrations VALUES "
                    + "('v99-from-the-future')")
                db.commit()
                """, world.statePath,
            ])
        let before = try Data(contentsOf: URL(fileURLWithPath: world.statePath))
        await #expect(throws: StateStoreError.newerSchema(path: world.statePath, unknown: ["v99-from-the-future"])) {
            _ = try await world.run(hours: 1)
        }
        await #expect(throws: StateStoreError.self) { _ = try await world.run(.plan, hours: 1) }
        #expect(try Data(contentsOf: URL(fileURLWithPath: world.statePath)) == before)
    }

    @Test func planAndDryRunNeverWriteTheState() async throws {
        let world = try healthyWorld()
        try world.seed()
        _ = try await world.run(hours: 0)
        try world.approveCanary10()
        let files = { () -> [String: Data] in
            var result: [String: Data] = [:]
            for suffix in ["", "-wal", "-shm"] {
                result[suffix] = FileManager.default.contents(atPath: world.statePath + suffix)
            }
            return result
        }
        let before = files()
        let plan = try await world.run(.plan, hours: 1)
        #expect(plan.rollout()?.nextPhase == "canary-10")
        #expect(plan.rollout()?.changes.count == 1)
        _ = try await world.run(.reconcile(dryRun: true), hours: 1)
        #expect(files()[""] == before[""])
        #expect(try SQLiteStateStore(path: world.statePath).history().count == 2)
    }

    @Test func initOnAnExposedInstallationNeedsAdoptAndThenNeverReexposesARolledBackRollout() async throws {
        let world = try healthyWorld()
        try world.seed()
        _ = try await world.run(hours: 0)
        try world.approveCanary10()
        _ = try await world.run(hours: 1)
        // The state is lost (no backup); the flag shows canary-10.
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: world.statePath + suffix) }
        await #expect {
            _ = try await world.initialise(hours: 2)
        } throws: { error in
            "\(error)".contains("exp-001-autosave") && "\(error)".contains("--adopt")
        }
        #expect(!FileManager.default.fileExists(atPath: world.statePath))
        let adopted = try await world.initialise(adopt: true, hours: 2)
        #expect(
            adopted.adopted.map(\.record) == [
                RolloutRecord(
                    phase: "canary-10", enteredAt: world.time(hours: 2),
                    status: .progressing, planBlob: try world.planBlob())
            ])
        let next = try await world.run(hours: 3)
        #expect(next.rollout()?.currentPhase == "canary-10")
        #expect(next.rollout()?.blockers.contains { $0.kind == .bake && $0.remainingSeconds == 23 * 3600 } == true)

        // A rollout rolled back before the state was lost: approvals past phase 0, flag off. Adopted
        // as overridden, it is never raised again by its approvals.
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: world.statePath + suffix) }
        let version = try await world.flags.read(flag: "portal_form_autosave").version
        _ = try await world.flags.apply(
            flag: "portal_form_autosave",
            patch: FlagPatch(environment: nil, enabled: false, coverage: 0), ifMatch: version)
        let again = try await world.initialise(adopt: true, hours: 4)
        #expect(again.adopted.map(\.record.status) == [.overridden])
        for hours in [5.0, 50] {
            let run = try await world.run(hours: hours)
            #expect(run.rollout()?.status == .overridden)
            #expect(run.rollout()?.changes.isEmpty == true)
        }
        #expect(try await world.flagState().values.allSatisfy { !$0.enabled })
    }

    @Test func aTimeEarlierThanTheLatestRunIsRefusedAndASuppliedClockIsAudited() async throws {
        let world = try RolloutWorld()
        try world.seed()
        func run(_ hours: Double) async throws -> RunReport {
            var settings = world.settings(.reconcile(dryRun: false), hours: hours)
            settings.clockSupplied = true
            let ports = RunPorts(flags: world.flags, metrics: nil, notifier: world.notifier, logger: world.logger)
            return try await Reconciler(settings: settings, ports: ports).run()
        }
        _ = try await run(5)
        await #expect {
            _ = try await run(4)
        } throws: { error in
            "\(error)".contains("earlier than the latest reconcile") && "\(error)".contains("time never runs backwards")
        }
        _ = try await run(5)  // the same time is not earlier
        let audit = try SQLiteStateStore(path: world.statePath).history()
        #expect(!audit.isEmpty)
        #expect(audit.allSatisfy { $0.clockSupplied })
    }

    @Test func aRecoveryReadsOnlyTheOpenIntentsWhateverTheAuditSize() async throws {
        let world = try RolloutWorld()
        try world.seed()
        _ = try await world.run(hours: 0)
        let store = try SQLiteStateStore(path: world.statePath)
        let intent = AuditEntry(
            time: world.start, rollout: "exp-001-autosave", phase: "canary-10",
            environment: "production", from: nil, to: .init(enabled: true, coverage: 10),
            reason: "advance", revision: nil, planBlob: nil, approvals: [], kind: .intent)
        let id = try store.append(intent)
        #expect(try store.unresolvedIntents(rollout: "exp-001-autosave").map(\.id) == [id])
        #expect(try store.allUnresolvedIntents().mapValues { $0.map(\.id) } == ["exp-001-autosave": [id]])
        var result = intent
        result.kind = .result
        result.intentID = id
        result.result = "applied"
        try store.append(result)
        #expect(try store.allUnresolvedIntents().isEmpty)
    }
}

/// A flag store that stages its writes until `flush()` (as issue 10's file store does), over a
/// real `FileFlagStore`: a test double of the staging behaviour, with a flush that can be made to fail.
final class StagingFlagStoreDouble: FlagStore, @unchecked Sendable {
    let inner: FileFlagStore
    private let lock = NSLock()
    private var staged: [(flag: String, patch: FlagPatch)] = []
    var failFlush = false
    private(set) var flushes = 0

    init(inner: FileFlagStore) { self.inner = inner }

    var stagesWrites: Bool { true }

    func read(flag: String) async throws -> FlagSnapshot {
        var snapshot = try await inner.read(flag: flag)
        for (name, patch) in lock.withLock({ staged }) where name == flag {
            if let environment = patch.environment {
                snapshot.environments[environment] = FlagEnvironmentState(
                    enabled: patch.enabled,
                    coverage: patch.coverage ?? 0)
            }
        }
        return snapshot
    }

    func apply(flag: String, patch: FlagPatch, ifMatch version: String) async throws -> FlagSnapshot {
        lock.withLock { staged.append((flag, patch)) }
        return try await read(flag: flag)
    }

    func flush() async throws {
        lock.withLock { flushes += 1 }
        if failFlush { throw FlagStoreError.unavailable("disk full (injected)") }
        for (flag, patch) in lock.withLock({ staged }) {
            let version = try await inner.read(flag: flag).version
            _ = try await inner.apply(flag: flag, patch: patch, ifMatch: version)
        }
        lock.withLock { staged.removeAll() }
    }
}

@Suite(.serialized) struct StagingFlagStoreTests {
    @Test func resultsAndStatesAreWrittenAfterTheOneFlushOfTheRun() async throws {
        let world = try RolloutWorld()
        let staging = StagingFlagStoreDouble(inner: FileFlagStore(path: world.stateDirectory.file("flags.json")))
        world.flags = staging
        try world.seed()
        try world.repo.commitFiles(
            ["rollouts/exp-002/plan.json": RolloutWorld.exp001Plan(name: "exp-002", flag: "other_flag")],
            "Add exp-002", author: RolloutWorld.robin)
        let report = try await world.run(hours: 0)
        #expect(report.rollouts.allSatisfy { $0.applied && $0.errors.isEmpty })
        #expect(staging.flushes == 1)
        #expect(try await staging.inner.read(flag: "other_flag").environments["staging"]?.coverage == 100)
        // Both intents come before both results: the results waited for the flush.
        let audit = try SQLiteStateStore(path: world.statePath).history().reversed().map(\.kind)
        #expect(Array(audit) == [.intent, .intent, .result, .result])
        #expect(try SQLiteStateStore(path: world.statePath).rollout("exp-002")?.record.phase == "staging")
    }

    @Test func aFailedFlushRecordsFailedResultsAndKeepsTheState() async throws {
        let world = try RolloutWorld()
        let staging = StagingFlagStoreDouble(inner: FileFlagStore(path: world.stateDirectory.file("flags.json")))
        staging.failFlush = true
        world.flags = staging
        try world.seed()
        let report = try await world.run(hours: 0)
        let rollout = try #require(report.rollout())
        #expect(!rollout.applied)
        #expect(rollout.errors.contains { $0.message.contains("disk full") })
        let store = try SQLiteStateStore(path: world.statePath)
        #expect(try store.history().compactMap(\.result) == ["failed"])
        #expect(try store.rollout("exp-001-autosave") == nil)
        #expect(try store.allUnresolvedIntents().isEmpty)
    }
}
