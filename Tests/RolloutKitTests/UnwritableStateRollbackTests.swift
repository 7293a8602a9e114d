import Foundation
import RolloutCore
import RolloutTestSupport
import Testing

@testable import RolloutAdapters
@testable import RolloutKit

#if canImport(Glibc)
    import Glibc
#endif

/// SPEC §5 rule 3 [r3]: a state that cannot be written never blocks a rollback. The flag is
/// disabled, the notification goes out directly, the run reports the rollback as not recorded
/// (exit 1), and the next run that can write records it. The state's folder is made read-only
/// with a real read-only bind mount, or filled up as a small tmpfs; where this process may not
/// mount, the test says so and skips.
@Suite(.serialized) struct UnwritableStateRollbackTests {
    /// Runs `body` with `folder` made unwritable (`how`: "read-only" or "full"); false when this
    /// process may not mount (the caller skips).
    static func unwritable(_ folder: String, how: String, _ body: () async throws -> Void) async throws -> Bool {
        guard getuid() == 0 else { return false }
        if how == "read-only" {
            guard (try? runProgram("mount", ["--bind", folder, folder])) != nil else { return false }
            guard (try? runProgram("mount", ["-o", "remount,bind,ro", folder])) != nil else {
                _ = try? runProgram("umount", [folder])
                return false
            }
        } else {
            // The folder's files onto a 1 MiB tmpfs mounted over it, then the tmpfs filled up.
            let saved = folder + ".saved"
            try FileManager.default.copyItem(atPath: folder, toPath: saved)
            guard (try? runProgram("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", folder])) != nil else {
                try? FileManager.default.removeItem(atPath: saved)
                return false
            }
            for file in try FileManager.default.contentsOfDirectory(atPath: saved) {
                try FileManager.default.copyItem(atPath: saved + "/" + file, toPath: folder + "/" + file)
            }
            let filler =
                FileHandle(forWritingAtPath: folder + "/filler")
                ?? {
                    FileManager.default.createFile(atPath: folder + "/filler", contents: nil)
                    return FileHandle(forWritingAtPath: folder + "/filler")!
                }()
            let block = Data(count: 4096)
            while (try? filler.write(contentsOf: block)) != nil {}
            try? filler.close()
        }
        defer { _ = try? runProgram("umount", [folder]) }
        try await body()
        return true
    }

    @Test(arguments: ["read-only", "full"])
    func aRollbackOnAnUnwritableStateStillDisablesNotifiesAndIsRecordedLater(how: String) async throws {
        let delivered = LockedBox<[String]>([])
        let hook = HTTPTestServer { request in
            delivered.withLock { $0.append(request.bodyString) }
            return .json(200, "{}")
        }
        try await hook.start()
        defer { Task { await hook.stop() } }
        try await FlagServiceWorld.with { w in
            w.world.notifier = WebhookNotifier(
                urls: ["platform-team": hook.baseURL + "/hook"], client: w.client, logger: w.world.logger)
            try await w.reachCanary10()
            #expect(w.environments() == ["staging": .on(100), "production": .on(10)])
            try w.metrics.set(RollbackOverrideTests.breach)
            let before = try w.stored()

            let mounted = try await Self.unwritable(w.world.stateDirectory.path, how: how) {
                let report = try await w.run(hours: 2)
                let rollout = try #require(report.rollout())
                // Disabled everywhere, although nothing could be written.
                #expect(w.environments() == ["staging": .disabled, "production": .disabled])
                #expect(rollout.errors.contains { $0.message.hasPrefix("rollback not recorded") }, "\(rollout.errors)")
                // The run itself says the state could not be written (exit 1), besides the rollout's error.
                #expect(report.runErrors.count == 1)
                #expect(report.runErrors.first?.message.contains("cannot be written") == true)
                #expect(report.errorCount == 2)
                #expect(
                    report.human(style: Style(enabled: false)).contains("this run applied only what lowers exposure"))
                #expect(delivered.current.count == 1)
                #expect(delivered.current.first?.contains("\"status\":\"rolled-back\"") == true)
                #expect(try w.stored() == before)
            }
            guard mounted else {
                print("skipped: this process may not mount, so no state can be made \(how) here")
                return
            }
            // Writable again, the breach still measured: the next run records the rollback.
            let next = try await w.run(hours: 3)
            #expect(next.rollout()?.status == .rolledBack)
            #expect(try w.stored()?.record.status == .rolledBack)
            // Healthy later: the flag below desired is at worst an override (§5.6), never a raise.
            try w.metrics.set(MetricsFile.healthy)
            for hours in [4.0, 30] { _ = try await w.run(hours: hours) }
            #expect(w.environments() == ["staging": .disabled, "production": .disabled])
        }
    }

    /// A webhook on 127.0.0.1 that records the bodies it is sent, and the world notifying `platform-team` there.
    static func recordingHook(_ w: FlagServiceWorld) async throws -> (HTTPTestServer, LockedBox<[String]>) {
        let delivered = LockedBox<[String]>([])
        let hook = HTTPTestServer { request in
            delivered.withLock { $0.append(request.bodyString) }
            return .json(200, "{}")
        }
        try await hook.start()
        w.world.notifier = WebhookNotifier(
            urls: ["platform-team": hook.baseURL + "/hook"], client: w.client, logger: w.world.logger)
        return (hook, delivered)
    }

    /// An intent left open by an interrupted run (the canary-50 advance, written exactly as a run writes it, its
    /// PATCH never sent) does not stop a rollback on a state that cannot be written: the recovery, which would
    /// write its result, waits for a run that can write; this one lowers the flag.
    @Test func anOpenIntentOfAnInterruptedRunDoesNotStopARollbackOnAReadOnlyState() async throws {
        try await FlagServiceWorld.with { w in
            let (hook, delivered) = try await Self.recordingHook(w)
            defer { Task { await hook.stop() } }
            try await w.reachCanary10()
            let intentID = try SQLiteStateStore(path: w.world.statePath).append(
                AuditEntry(
                    time: w.world.time(hours: 25), rollout: "exp-001-autosave", phase: "canary-50",
                    environment: "production", from: .on(10), to: .on(50), reason: "advance",
                    revision: try w.world.repo.head(), planBlob: try w.world.planBlob(), approvals: [], kind: .intent))
            try w.metrics.set(RollbackOverrideTests.breach)
            let before = try w.stored()

            let mounted = try await Self.unwritable(w.world.stateDirectory.path, how: "read-only") {
                let report = try await w.run(hours: 26)
                let rollout = try #require(report.rollout())
                #expect(w.environments() == ["staging": .disabled, "production": .disabled])
                #expect(
                    !rollout.errors.contains { $0.message.contains("recovering interrupted changes") },
                    "\(rollout.errors)")
                #expect(rollout.errors.contains { $0.message.hasPrefix("rollback not recorded") }, "\(rollout.errors)")
                #expect(delivered.current.count == 1)
                #expect(try w.stored() == before)
            }
            guard mounted else {
                print("skipped: this process may not mount, so no state can be made read-only here")
                return
            }
            // Writable again: the open intent is resolved (never applied) and the rollback recorded.
            let next = try await w.run(hours: 27)
            #expect(next.rollout()?.status == .rolledBack)
            let audit = try w.audit()
            #expect(audit.first { $0.intentID == intentID }?.result == "interrupted-not-applied")
            #expect(
                try SQLiteStateStore(path: w.world.statePath).unresolvedIntents(rollout: "exp-001-autosave").isEmpty)
            #expect(w.environments() == ["staging": .disabled, "production": .disabled])
        }
    }

    /// A guarded rollback (SPEC §5.13: the plan broken by a merge, the checks of the plan whose gates held) on a
    /// state that cannot be written disables the flag and sends its notification directly: it cannot be queued.
    @Test func aGuardedRollbackOnAReadOnlyStateNotifiesDirectly() async throws {
        try await FlagServiceWorld.with { w in
            let (hook, delivered) = try await Self.recordingHook(w)
            defer { Task { await hook.stop() } }
            try await w.reachCanary10()
            try w.world.editPlan("{ \"apiVersion\": \"rolloutctl/v1\", ", message: "Broken merge")
            try w.metrics.set(RollbackOverrideTests.breach)
            let before = try w.stored()

            let mounted = try await Self.unwritable(w.world.stateDirectory.path, how: "read-only") {
                let report = try await w.run(hours: 2)
                let rollout = try #require(report.rollout())
                #expect(rollout.guardNote?.contains("guarded by the checks of plan") == true)
                #expect(w.environments() == ["staging": .disabled, "production": .disabled])
                #expect(rollout.errors.contains { $0.message.hasPrefix("rollback not recorded") }, "\(rollout.errors)")
                #expect(report.runErrors.first?.message.contains("cannot be written") == true)
                #expect(delivered.current.count == 1)
                #expect(delivered.current.first?.contains("\"status\":\"rolled-back\"") == true)
                #expect(try w.stored() == before)
            }
            guard mounted else {
                print("skipped: this process may not mount, so no state can be made read-only here")
                return
            }
            // Writable again, the breach still measured: the next run records the guarded rollback.
            let next = try await w.run(hours: 3)
            #expect(next.rollout()?.status == .rolledBack)
            #expect(try w.stored()?.record.status == .rolledBack)
            #expect(w.environments() == ["staging": .disabled, "production": .disabled])
        }
    }
}
