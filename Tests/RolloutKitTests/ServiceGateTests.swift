import AsyncHTTPClient
import Foundation
import RolloutCore
import RolloutTestSupport
import Testing

@testable import RolloutAdapters

/// Issue 22: calls to one flag service are bounded, and a 429 slows every call of the run down, not only the one
/// refused. Against FakeFlagService on 127.0.0.1 (real HTTP); the service holds requests to show how many are in
/// flight at once.
@Suite struct ServiceGateTests {
    static let flags = (0..<8).map { "flag_\($0)" }

    func withService(
        gate: ServiceGate, _ body: (FakeFlagService, HTTPFlagStore) async throws -> Void
    ) async throws {
        let service = FakeFlagService(token: nil)
        for flag in Self.flags { service.setFlag(flag, environments: ["staging": .disabled]) }
        try await service.start()
        do {
            try await withAdapterHTTPClient { client in
                let store = HTTPFlagStore(
                    baseURL: service.baseURL, token: nil, client: client, retry: .adapterTest(),
                    logger: AdapterLogRecorder.logger(AdapterLogLines()), gate: gate)
                try await body(service, store)
            }
            await service.stop()
        } catch {
            await service.stop()
            throw error
        }
    }

    /// Waits (up to 20 s) until `condition` holds.
    func eventually(_ condition: () async -> Bool) async throws -> Bool {
        for _ in 0..<400 {
            if await condition() { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    @Test func noMoreCallsThanTheBoundAreInFlightAtOnce() async throws {
        try await withService(gate: ServiceGate(limit: 3)) { service, store in
            service.hold()
            try await withThrowingTaskGroup(of: FlagSnapshot.self) { group in
                for flag in Self.flags { group.addTask { try await store.read(flag: flag) } }
                #expect(try await eventually { service.heldRequests == 3 })
                // The other five wait for a slot: none reaches the service while three are held.
                try await Task.sleep(for: .milliseconds(500))
                #expect(service.heldRequests == 3)
                service.release()
                var read: Set<String> = []
                for try await snapshot in group { read.insert(snapshot.key) }
                #expect(read == Set(Self.flags))
            }
            #expect(service.requests.count == Self.flags.count)
        }
    }

    @Test func a429PausesEveryCallToTheServiceNotOnlyTheOneRefused() async throws {
        let gate = ServiceGate(limit: 4)
        try await withService(gate: gate) { service, store in
            service.inject(.status(429, retryAfterSeconds: 2), times: 1)
            let refused = Task { try await store.read(flag: "flag_0") }
            #expect(try await eventually { await gate.isPaused })
            let clock = ContinuousClock()
            let start = clock.now
            try await withThrowingTaskGroup(of: Duration.self) { group in
                for flag in Self.flags.dropFirst() {
                    group.addTask {
                        _ = try await store.read(flag: flag)
                        return clock.now - start
                    }
                }
                // While the pause is in force nothing reaches the service: only the refused request arrived.
                try await Task.sleep(for: .milliseconds(300))
                #expect(service.requests.count == 1)
                for try await waited in group {
                    #expect(waited > .milliseconds(500), "a call went through during the 429's pause")
                }
            }
            #expect(try await refused.value.key == "flag_0")
            #expect(service.requests.count == Self.flags.count + 1)
        }
    }

    @Test func aPauseEndsAndAShorterOneNeverShortensTheOneInForce() async throws {
        let gate = ServiceGate(limit: 1)
        await gate.pause(for: .milliseconds(1))
        try await Task.sleep(for: .milliseconds(20))
        #expect(await !gate.isPaused)
        await gate.pause(for: .seconds(30))
        await gate.pause(for: .seconds(1))  // a shorter pause never shortens the one in force
        #expect(await gate.isPaused)
    }
}
