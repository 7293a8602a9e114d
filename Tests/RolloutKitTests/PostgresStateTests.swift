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
            let store = try StateStores.create(url, installation: Self.installation())
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

    @Test func aNewerSchemaIsRefused() async throws {
        try await Self.withPostgres { server in
            let database = "newer"
            let url = try server.createDatabase(database)
            _ = try StateStores.create(url, installation: Self.installation())
            let (status, output) = try server.sql(
                "INSERT INTO schemaMigration (identifier, appliedAt) VALUES ('v99-from-the-future', 0)",
                database: database)
            #expect(status == 0, "\(output)")
            for open in [{ _ = try StateStores.open(url) }, { _ = try StateStores.openReadOnly(url) }] {
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
            #expect(try StateStores.exists(url) == false)
            let report = try await world.initialise()
            #expect(report.repositoryRoot == (try world.repositoryRoot()))
            #expect(try StateStores.exists(url))
            #expect(try StateStores.open(url).installation()?.repositoryRoot == (try world.repositoryRoot()))
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
            #expect(try StateStores.open(url).installation()?.repositoryRoot == (try world.repositoryRoot()))
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
                await #expect(throws: StateLockLost.self) { _ = try await guarded.read(flag: FlagServiceWorld.flag) }
                #expect(flags.service.requests.isEmpty, "the flag service was called after the session dropped")
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
            _ = try StateStores.create(url, installation: Self.installation())
            let wrong = "wrong-\(UUID().uuidString.prefix(8))"
            setenv("PGPASSWORD", wrong, 1)
            do {
                _ = try StateStores.open(url)
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
}
