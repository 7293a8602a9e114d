import Foundation
import RolloutAdapters
import RolloutCore
import RolloutTestSupport
import Testing

@testable import RolloutKit

#if canImport(Glibc)
    import Glibc
#endif

/// The state on a real PostgreSQL (SPEC §10), started by the test in a temporary data directory on 127.0.0.1:
/// the EXP-001 flow unchanged, the audit log kept append-only by the database, migrations, identity, the
/// installation lock and its session, and passwords that never show.
@Suite(
    "PostgreSQL state", .serialized,
    .enabled(if: PostgresFixture.isAvailable, "needs PostgreSQL (Debian's postgresql package)"))
struct PostgresStateTests {
    /// One server per test, stopped (and its directory removed) whatever happens; `PGPASSWORD` is the
    /// test role's while the body runs (the store reads it from the environment, as the command does).
    static func withPostgres(_ body: (PostgresFixture) async throws -> Void) async throws {
        let server = try await PostgresFixture.start()
        setenv("PGPASSWORD", server.password, 1)
        defer {
            unsetenv("PGPASSWORD")
            server.stop()
        }
        try await body(server)
    }

    static func installation() -> Installation { Installation(repositoryRoot: String(repeating: "a", count: 40)) }

    @Test func exp001FlowOnPostgres() async throws {
        try await Self.withPostgres { server in
            let metrics = try MetricsFile(MetricsFile.healthy)
            let world = try RolloutWorld(metrics: FileMetricsProvider(path: metrics.path))
            world.stateOverride = try server.createDatabase()
            try await EXP001ReconcileTests.fromStagingToProduction(world)
            // Nothing of it went to a SQLite file.
            #expect(!FileManager.default.fileExists(atPath: world.stateDirectory.file("state.sqlite")))
        }
    }

    @Test func auditRejectsUpdateDeleteAndTruncateInTheDatabase() async throws {
        try await Self.withPostgres { server in
            let database = "audit_only"
            let url = try server.createDatabase(database)
            let store = try StateStorageFactory.create(url, installation: Self.installation())
            try store.append(
                AuditEntry(
                    time: Date(timeIntervalSince1970: 1_800_000_000), rollout: "r", phase: "p",
                    environment: "production", from: nil, to: .disabled, reason: "rollback",
                    revision: nil, planBlob: nil, approvals: [], kind: .event))
            // Straight to the database as the owner of the tables, bypassing rolloutctl.
            for statement in ["UPDATE audit SET reason = 'advance'", "DELETE FROM audit", "TRUNCATE audit"] {
                let (status, output) = try server.sql(statement, database: database)
                #expect(status != 0, "\(statement) was accepted")
                #expect(output.contains("the audit log is append-only"), "\(statement): \(output)")
            }
            let (_, rows) = try server.sql("SELECT count(*), min(reason) FROM audit", database: database)
            #expect(rows.trimmingCharacters(in: .whitespacesAndNewlines) == "1|rollback")
            #expect(try store.history().map(\.reason) == ["rollback"])
        }
    }

    /// The same audit-row codec as SQLite's (`AuditRow`): an unknown kind reads as `event` (DamagedStateTests, AuditRowFixture).
    @Test func anAuditRowOfAnUnknownKindReadsAsAnEvent() async throws {
        try await Self.withPostgres { server in
            let database = "unknown_kind"
            let store = try StateStorageFactory.create(
                try server.createDatabase(database), installation: Self.installation())
            let intentID = try store.append(AuditRowFixture.intent)
            let (status, output) = try server.sql(
                """
                INSERT INTO audit (time, rollout, reason, approvals, kind, intentID)
                VALUES (1800000100, 'exp-001', 'by hand', '[]', 'compensation', \(intentID))
                """, database: database)
            #expect(status == 0, "\(output)")
            #expect(
                AuditRowFixture.unknownKindProblem(try store.history(rollout: "exp-001"), intentID: intentID) == nil)
            #expect(try store.unresolvedIntents(rollout: "exp-001").map(\.id) == [intentID])
        }
    }

    @Test func aNewerSchemaIsRefused() async throws {
        try await Self.withPostgres { server in
            let database = "newer"
            let url = try server.createDatabase(database)
            _ = try StateStorageFactory.create(url, installation: Self.installation())
            let (status, output) = try server.sql(
                "INSERT INTO schemaMigration (identifier, appliedAt) VALUES ('v99-from-the-future', 0)",
                database: database)
            #expect(status == 0, "\(output)")
            for open in [{ _ = try StateStorageFactory.open(url) }, { _ = try StateStorageFactory.openReadOnly(url) }] {
                #expect(throws: StateStoreError.newerSchema(path: url, unknown: ["v99-from-the-future"])) {
                    try open()
                }
            }
        }
    }

    @Test func initCreatesTheSchemaAndRefusesAnotherRepository() async throws {
        try await Self.withPostgres { server in
            let url = try server.createDatabase()
            let world = try RolloutWorld()
            world.stateOverride = url
            try world.repo.commitFiles(
                [
                    "policies/approvers.json": RolloutWorld.approvers,
                    "rollouts/exp-001-autosave/plan.json": RolloutWorld.exp001Plan(),
                ],
                "Add exp-001-autosave", author: RolloutWorld.robin)
            #expect(try StateStorageFactory.exists(url) == false)
            let report = try await world.initialise()
            #expect(report.repositoryRoot == (try world.repositoryRoot()))
            #expect(try StateStorageFactory.exists(url))
            #expect(try StateStorageFactory.open(url).installation()?.repositoryRoot == (try world.repositoryRoot()))
            // init never overwrites a state.
            await #expect(throws: StateStoreError.alreadyInitialised(path: url)) { _ = try await world.initialise() }

            let other = try RolloutWorld()
            other.stateOverride = url
            try other.repo.commitFiles(
                [
                    "policies/approvers.json": RolloutWorld.approvers,
                    "rollouts/exp-001-autosave/plan.json": RolloutWorld.exp001Plan(),
                ],
                "Another repository", author: RolloutWorld.robin)
            // Another repository's init is refused as with SQLite (an initialised state is never overwritten),
            // and leaves the recorded repository as it was; its runs are refused as another repository's.
            await #expect(throws: StateStoreError.alreadyInitialised(path: url)) { _ = try await other.initialise() }
            #expect(try StateStorageFactory.open(url).installation()?.repositoryRoot == (try world.repositoryRoot()))
            let expected = StateStoreError.anotherRepository(
                path: url, recorded: try world.repositoryRoot(),
                actual: try other.repositoryRoot())
            await #expect(throws: expected) { _ = try await other.run(hours: 0) }
            await #expect(throws: expected) { _ = try await other.run(.plan, hours: 0) }
        }
    }

    @Test func theLockIsHeldBySessionAndAGuardedFlagCallStopsWhenTheSessionDrops() async throws {
        try await Self.withPostgres { server in
            let database = "locks"
            guard case .postgres(let location) = try StateLocation(parsing: try server.createDatabase(database)) else {
                Issue.record("not a postgres location")
                return
            }
            _ = try PostgresStateStore.create(location, installation: Self.installation())
            let first = try PostgresStateStore.open(location)
            let second = try PostgresStateStore.open(location)
            #expect(try first.lockInstallation(timeout: .zero))
            #expect(try second.lockInstallation(timeout: .milliseconds(300)) == false)

            // The first session is killed from outside (as a dropped connection would end it).
            let (status, output) = try server.sql(
                """
                SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted
                """, database: database)
            #expect(status == 0, "\(output)")
            try await FlagServiceWorld.with { flags in
                let guarded = SessionGuardedFlagStore(inner: flags.world.flags, lock: first)
                await #expect(throws: StateLockLost.self) {
                    _ = try await guarded.apply(
                        flag: FlagServiceWorld.flag,
                        patch: FlagPatch(
                            environment: "production", enabled: true, coverage: 10), ifMatch: "*")
                }
                #expect(flags.service.requests.isEmpty, "the flag service was called after the session dropped")
                // [r3] Reads change nothing and disabling needs no lock (SPEC §5 rule 3): both still go ahead.
                let read = try await guarded.read(flag: FlagServiceWorld.flag)
                _ = try await guarded.apply(
                    flag: FlagServiceWorld.flag,
                    patch: FlagPatch(environment: "production", enabled: false, coverage: 0), ifMatch: read.version)
                #expect(flags.service.patchRequests.count == 1)
            }
            // The server released the lock with the session: the other replica takes it.
            #expect(try second.lockInstallation(timeout: .seconds(5)))
            #expect(throws: PostgresStateError.self) {
                try first.append(
                    AuditEntry(
                        time: Date(), rollout: "r", phase: nil, environment: nil, from: nil, to: nil, reason: "late",
                        revision: nil, planBlob: nil, approvals: [], kind: .event))
            }
            second.close()
        }
    }

    @Test func aWrongPasswordIsAClearErrorThatNeverShowsAPassword() async throws {
        try await Self.withPostgres { server in
            let url = try server.createDatabase()
            _ = try StateStorageFactory.create(url, installation: Self.installation())
            let wrong = "wrong-\(UUID().uuidString.prefix(8))"
            setenv("PGPASSWORD", wrong, 1)
            do {
                _ = try StateStorageFactory.open(url)
                Issue.record("a wrong password was accepted")
            } catch {
                let text = "\(error)"
                #expect(text.contains("password authentication failed"), "\(text)")
                #expect(text.contains(url))
                #expect(!text.contains(wrong) && !text.contains(server.password), "\(text)")
            }
            // A password in the URL is refused without being repeated.
            let inURL = url.replacingOccurrences(of: "rollout@", with: "rollout:\(server.password)@")
            do {
                _ = try StateLocation(parsing: inURL)
                Issue.record("a password in the URL was accepted")
            } catch {
                #expect("\(error)".contains("PGPASSWORD"))
                #expect(!"\(error)".contains(server.password))
            }
        }
    }

    // MARK: SPEC §5 rule 3 [r3]: a lost session or a database that refuses writes never blocks a rollback

    /// EXP-001 at canary-10 on a PostgreSQL state, the breach measured, a webhook recording what it is sent.
    static func atCanary10Breaching(
        _ server: PostgresFixture, database: String,
        _ body: (FlagServiceWorld, LockedBox<[String]>, String) async throws -> Void
    ) async throws {
        try await FlagServiceWorld.with { w in
            let url = try server.createDatabase(database)
            w.world.stateOverride = url
            let (hook, delivered) = try await UnwritableStateRollbackTests.recordingHook(w)
            defer { Task { await hook.stop() } }
            try await w.reachCanary10()
            #expect(w.environments() == ["staging": .on(100), "production": .on(10)])
            try w.metrics.set(RollbackOverrideTests.breach)
            try await body(w, delivered, url)
        }
    }

    static func stored(_ url: String) throws -> StoredRollout? {
        try StateStorageFactory.openReadOnly(url)?.rollout("exp-001-autosave")
    }

    /// What a rollback that could not be recorded reports, and what it did all the same.
    static func expectUnrecordedRollback(
        _ report: RunReport, _ w: FlagServiceWorld, _ delivered: LockedBox<[String]>, runError: String
    ) throws {
        let rollout = try #require(report.rollout())
        #expect(w.environments() == ["staging": .disabled, "production": .disabled])
        #expect(rollout.errors.contains { $0.message.hasPrefix("rollback not recorded") }, "\(rollout.errors)")
        #expect(report.runErrors.contains { $0.message.contains(runError) }, "\(report.runErrors)")
        #expect(report.errorCount >= 2)  // exit 1
        #expect(delivered.current.count == 1)
        #expect(delivered.current.first?.contains("\"status\":\"rolled-back\"") == true)
    }

    /// The session that holds the run's lock is ended by the server (`pg_terminate_backend`, as a dropped
    /// connection ends it) before the run reads its records: the run reads them on a new read-only session,
    /// disables the flag through the guarded flag store (disabling needs no lock), notifies directly, reports the
    /// rollback as not recorded, and the next run records it.
    @Test func aRollbackWhoseSessionWasLostStillDisablesNotifiesAndIsRecordedLater() async throws {
        try await Self.withPostgres { server in
            let database = "lost_session"
            try await Self.atCanary10Breaching(server, database: database) { w, delivered, url in
                let before = try Self.stored(url)
                guard case .held(let lock) = try RunLock.acquire(statePath: url, wait: .zero, dryRun: false) else {
                    Issue.record("the lock was not taken")
                    return
                }
                let (status, output) = try server.sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted",
                    database: database)
                #expect(status == 0, "\(output)")
                let session = try #require(lock.state as? PostgresStateStore)
                try await SessionWait.until { !session.isOpen }
                #expect(session.unwritableReason?.contains("its session was lost") == true)

                var settings = w.world.settings(.reconcile(dryRun: false), hours: 2)
                settings.openedState = lock.state
                let ports = RunPorts(
                    flags: w.world.flags, metrics: w.world.metrics, notifier: w.world.notifier, logger: w.world.logger)
                let report = try await Reconciler(settings: settings, ports: lock.guarding(ports)).run()
                lock.unlock()
                try Self.expectUnrecordedRollback(report, w, delivered, runError: "cannot be written")
                #expect(try Self.stored(url) == before)

                // A new session, the breach still measured: the next run records the rollback.
                let next = try await w.run(hours: 3)
                #expect(next.rollout()?.status == .rolledBack)
                #expect(try Self.stored(url)?.record.status == .rolledBack)
                try w.metrics.set(MetricsFile.healthy)
                for hours in [4.0, 30] { _ = try await w.run(hours: hours) }
                #expect(w.environments() == ["staging": .disabled, "production": .disabled])
            }
        }
    }

    /// The session is ended by the server in the middle of the run: after the run read its records, while it
    /// reads the flag (the flag store below calls `pg_terminate_backend` then, a real fault at a chosen moment).
    /// The rolled-back record cannot be committed; the flag is disabled all the same and the notification sent.
    @Test func aSessionLostMidRunStillLetsTheRollbackDisableAndNotify() async throws {
        try await Self.withPostgres { server in
            let database = "lost_mid_run"
            try await Self.atCanary10Breaching(server, database: database) { w, delivered, url in
                let before = try Self.stored(url)
                guard case .held(let lock) = try RunLock.acquire(statePath: url, wait: .zero, dryRun: false),
                    let session = lock.state as? PostgresStateStore
                else {
                    Issue.record("the lock was not taken")
                    return
                }
                let cutting = SessionCuttingFlagStore(inner: w.world.flags) {
                    _ = try server.sql(
                        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted",
                        database: database)
                    try await SessionWait.until { !session.isOpen }
                }
                var settings = w.world.settings(.reconcile(dryRun: false), hours: 2)
                settings.openedState = lock.state
                let ports = RunPorts(
                    flags: cutting, metrics: w.world.metrics, notifier: w.world.notifier, logger: w.world.logger)
                let report = try await Reconciler(settings: settings, ports: lock.guarding(ports)).run()
                lock.unlock()
                let rollout = try #require(report.rollout())
                #expect(w.environments() == ["staging": .disabled, "production": .disabled])
                #expect(rollout.errors.contains { $0.message.hasPrefix("rollback not recorded") }, "\(rollout.errors)")
                #expect(report.errorCount >= 1)  // exit 1
                #expect(delivered.current.count == 1)
                #expect(try Self.stored(url) == before)

                let next = try await w.run(hours: 3)
                #expect(next.rollout()?.status == .rolledBack)
                #expect(try Self.stored(url)?.record.status == .rolledBack)
            }
        }
    }

    /// The database refuses writes (`default_transaction_read_only`, set by its owner as an operator would to
    /// freeze it): the run opens the state for reading, disables, notifies directly and exits 1; once writes are
    /// allowed again the next run records the rollback.
    @Test func aRollbackOnADatabaseThatRefusesWritesStillDisablesNotifiesAndIsRecordedLater() async throws {
        try await Self.withPostgres { server in
            let database = "frozen"
            try await Self.atCanary10Breaching(server, database: database) { w, delivered, url in
                let before = try Self.stored(url)
                // From another database: in a read-only one, ALTER DATABASE itself would be refused.
                func setReadOnly(_ on: Bool) throws {
                    let (status, output) = try server.sql(
                        "ALTER DATABASE \(database) SET default_transaction_read_only = \(on ? "on" : "off")",
                        database: "postgres")
                    #expect(status == 0, "\(output)")
                }
                try setReadOnly(true)
                let report = try await w.run(hours: 2)
                try Self.expectUnrecordedRollback(report, w, delivered, runError: "read-only transactions")
                #expect(try Self.stored(url) == before)

                try setReadOnly(false)
                let next = try await w.run(hours: 3)
                #expect(next.rollout()?.status == .rolledBack)
                #expect(try Self.stored(url)?.record.status == .rolledBack)
            }
        }
    }
}

/// Polls a condition a real server reaches asynchronously (a terminated session is seen closed a moment later).
enum SessionWait {
    static func until(timeout: Duration = .seconds(10), _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while !condition() {
            guard ContinuousClock.now < deadline else { throw PostgresFixture.Failure.unavailable("timed out") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}

/// A flag store that, on its first read, runs `cut` (a real fault: the test ends the state's session on the
/// server) before it reads; everything else goes to `inner`.
final class SessionCuttingFlagStore: FlagStore, @unchecked Sendable {
    let inner: FlagStore
    private let cut: @Sendable () async throws -> Void
    private let done = LockedBox(false)

    init(inner: FlagStore, cut: @escaping @Sendable () async throws -> Void) {
        self.inner = inner
        self.cut = cut
    }

    func read(flag: String) async throws -> FlagSnapshot {
        let first = done.withLock { wasDone -> Bool in
            defer { wasDone = true }
            return !wasDone
        }
        if first { try await cut() }
        return try await inner.read(flag: flag)
    }

    func apply(flag: String, patch: FlagPatch, ifMatch version: String) async throws -> FlagSnapshot {
        try await inner.apply(flag: flag, patch: patch, ifMatch: version)
    }

    func flush() async throws { try await inner.flush() }
    var stagesWrites: Bool { inner.stagesWrites }
    func planProblems(_ plan: Plan, path: String) -> [Diagnostic] { inner.planProblems(plan, path: path) }
}
