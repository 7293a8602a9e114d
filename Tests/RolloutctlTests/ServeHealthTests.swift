import Foundation
import RolloutTestSupport
import Testing

/// SPEC §9 [r3]: `/healthz` answers from what the server already knows and never waits on a plan,
/// a flag service or Prometheus. The flag service on 127.0.0.1 hangs until the test releases it:
/// `/healthz` must answer while a plan is stuck on it (no timing threshold is asserted).
@Suite(.serialized) struct ServeHealthTests {
    @Test func healthzAnswersWhileAPlanWaitsOnAHangingFlagService() async throws {
        try await CLIWorld.with { w in
            try await w.seed()
            let serve = try await ServeProcess.start(w.runArguments(now: "2027-01-01T05:00:00Z") + ["--max-age", "0s"])
            defer { w.service.release() }
            // serve made its first plan before it listened; no /healthz before the hold, since a
            // stale answer starts a background plan that the page below could join before the hold.
            w.service.hold()
            // A page plans anew (--max-age 0s), and that plan now waits on the flag service.
            let page = Task { try await serve.request("/api/v1/plan") }
            var waited = 0
            while w.service.heldRequests == 0, waited < 6000 {
                try await Task.sleep(for: .milliseconds(10))
                waited += 1
            }
            #expect(w.service.heldRequests > 0, "the plan never reached the flag service")

            // The plan is in flight and cannot finish: /healthz answers all the same, from the last read.
            for _ in 0..<3 {
                let health = try await serve.request("/healthz")
                #expect(health.status == 200)
                #expect(health.body == "ok\n")
            }
            #expect(w.service.heldRequests > 0)

            w.service.release()
            #expect(try await page.value.status == 200)
            _ = await serve.stop()
        }
    }
}
