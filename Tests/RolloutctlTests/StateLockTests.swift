import Foundation
import RolloutCore
import RolloutTestSupport
import Testing

/// SPEC §5.11 [r3]: the lock belongs to the state, not to a path name. A run holds the lock while
/// the flag service (on 127.0.0.1) keeps it waiting; a cleanup job removes or replaces
/// `state.sqlite.lock` meanwhile; a second run must still find the lock held and exit 0.
@Suite(.serialized) struct StateLockTests {
    @Test(arguments: ["removed", "replaced"])
    func aLockFileRemovedWhileARunHoldsItLetsNoSecondRunIn(what: String) async throws {
        try await CLIWorld.with { w in
            try await w.seed()
            w.service.hold()
            defer { w.service.release() }
            let first = try RunningProcess(
                Binary.path, ["reconcile"] + w.runArguments(), environment: ["ADMIN_TOKEN": CLIWorld.token])
            var waited = 0
            while w.service.heldRequests == 0, waited < 3000 {
                try await Task.sleep(for: .milliseconds(10))
                waited += 1
            }
            #expect(w.service.heldRequests > 0, "the first run never reached the flag service")

            let lockFile = w.statePath + ".lock"
            try FileManager.default.removeItem(atPath: lockFile)
            if what == "replaced" { try Data().write(to: URL(fileURLWithPath: lockFile)) }

            let second = try RunningProcess(
                Binary.path, ["reconcile"] + w.runArguments(), environment: ["ADMIN_TOKEN": CLIWorld.token])
            // Had it got in, it would wait on the held flag service too and never exit by itself.
            let deadline = Date().addingTimeInterval(30)
            while second.process.isRunning, Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
            let secondRunning = second.process.isRunning
            w.service.release()
            let results = [await first.wait(), await second.wait()]
            #expect(!secondRunning, "the second run got past the lock")
            #expect(results[1].status == 0, "\(results[1].all)")
            #expect(results[1].stderr.contains("another reconcile holds the lock"), "\(results[1].stderr)")
            #expect(!results[1].all.contains("interrupted"))
            #expect(results[0].status == 0, "\(results[0].all)")
            #expect(w.service.appliedPatches.count == 1)
            #expect(w.environments() == ["staging": FlagEnvironmentState(enabled: true, coverage: 100)])
        }
    }
}
