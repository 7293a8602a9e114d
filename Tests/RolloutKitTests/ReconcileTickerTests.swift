import Foundation
import Logging
import RolloutAdapters
import RolloutCore
import RolloutTestSupport
import Testing

@testable import RolloutKit

/// The tick loop of `reconcile --interval` and `serve --reconcile-interval` (SPEC §6 [r3]): one
/// summary line per tick plus one per change, rollback, override and error; the whole plan only
/// with `verbose`. The clock is injected: these tests never sleep. Real reconciles over a real
/// repository, state and file flag store.
@Suite(.serialized) struct ReconcileTickerTests {
    static let count = 60

    /// `count` one-phase rollouts committed at once.
    static func world() throws -> RolloutWorld {
        let world = try RolloutWorld()
        var files = ["policies/approvers.json": RolloutWorld.approvers]
        for index in 0..<count {
            let name = String(format: "demo-%03d", index)
            files["rollouts/\(name)/plan.json"] = """
                { "apiVersion": "rolloutctl/v1", "name": "\(name)", "flag": "flag_\(index)",
                  "phases": [ { "name": "staging", "environment": "staging", "coverage": 100 } ] }
                """
        }
        try world.repo.commitFiles(files, "Add \(count) rollouts", author: RolloutWorld.robin)
        _ = try StateStorageFactory.create(
            world.statePath, installation: Installation(repositoryRoot: try world.repositoryRoot()))
        return world
    }

    /// A clock that advances 250 ms per reading and records the waits instead of sleeping.
    final class FakeClock: @unchecked Sendable {
        private let lock = NSLock()
        private var time = RolloutWorld.defaultStart
        private(set) var sleeps: [Duration] = []

        var clock: TickClock {
            TickClock(
                now: {
                    self.lock.withLock {
                        defer { self.time += 0.25 }
                        return self.time
                    }
                },
                sleep: { duration in self.lock.withLock { self.sleeps.append(duration) } })
        }
    }

    static func ticker(
        _ world: RolloutWorld, lines: LogLines, format: ServiceLogFormat = .text, verbose: Bool = false,
        clock: FakeClock
    ) -> ReconcileTicker {
        var logger = Logger(label: "test") { _ in
            ServiceLogHandler(format: format, clock: { RolloutWorld.defaultStart }, write: { lines.append($0) })
        }
        logger.logLevel = .info
        let hours = LockedBox(0.0)
        return ReconcileTicker(
            every: .seconds(60), verbose: verbose, logger: logger, clock: clock.clock,
            tick: {
                let now = hours.withLock { value in
                    defer { value += 1 }
                    return value
                }
                do { return .report(try await world.run(hours: now)) } catch { return .failed("\(error)") }
            })
    }

    final class LogLines: @unchecked Sendable {
        private let lock = NSLock()
        private var lines: [String] = []
        func append(_ line: String) { lock.withLock { lines.append(line) } }
        var all: [String] { lock.withLock { lines } }
        func reset() { lock.withLock { lines = [] } }
    }

    @Test func anIdleTickOverManyRolloutsLogsOneLine() async throws {
        let world = try Self.world()
        let lines = LogLines()
        let clock = FakeClock()
        let ticker = Self.ticker(world, lines: lines, clock: clock)

        // The first tick raises every rollout to staging: the summary and one line per change.
        var memory = await ticker.once(.init())
        let first = lines.all
        #expect(first.count == 1 + Self.count, "\(first.prefix(5))")
        #expect(first[0].hasPrefix("tick 2027-01-01T00:00:00Z main@"), "\(first[0])")
        #expect(first[0].hasSuffix(": \(Self.count) changed, 0 blocked, 0 unchanged, 0 errors in 250 ms\n"))
        #expect(first.dropFirst().allSatisfy { $0.contains("(advance to staging)") })
        #expect(first.allSatisfy { $0.hasSuffix("\n") && $0.dropLast().contains("\n") == false })

        // Idle: exactly one line.
        lines.reset()
        memory = await ticker.once(memory)
        #expect(lines.all.count == 1, "\(lines.all)")
        #expect(
            lines.all.first?.contains(": 0 changed, 0 blocked, \(Self.count) unchanged, 0 errors in 250 ms") == true)
        _ = memory
    }

    @Test func theLoopRunsItsTicksOnTheInjectedClockWithoutSleeping() async throws {
        let world = try Self.world()
        let lines = LogLines()
        let clock = FakeClock()
        try await Self.ticker(world, lines: lines, clock: clock).loop(ticks: 4)
        #expect(clock.sleeps == [.seconds(60), .seconds(60), .seconds(60)])
        let ticks = lines.all.filter { $0.hasPrefix("tick ") }
        #expect(ticks.count == 4)
        // Start line, 4 summaries, the first tick's changes, the stop line.
        #expect(lines.all.count == 1 + 4 + Self.count + 1, "\(lines.all.count)")
        #expect(lines.all.last == "reconcile service stopped\n")
    }

    @Test func jsonLinesParseAndCarryTheFields() async throws {
        let world = try Self.world()
        let lines = LogLines()
        let ticker = Self.ticker(world, lines: lines, format: .json, clock: FakeClock())
        _ = await ticker.once(.init())
        #expect(lines.all.count == 1 + Self.count)
        for line in lines.all {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(object["time"] as? String == "2027-01-01T00:00:00Z")
            #expect(object["level"] != nil && object["message"] != nil)
        }
        let summary = try #require(
            try JSONSerialization.jsonObject(with: Data(lines.all[0].utf8)) as? [String: Any])
        #expect(summary["event"] as? String == "tick")
        #expect(summary["changed"] as? Int == Self.count)
        #expect(summary["unchanged"] as? Int == 0)
        #expect(summary["durationMs"] as? Int == 250)
        let change = try #require(try JSONSerialization.jsonObject(with: Data(lines.all[1].utf8)) as? [String: Any])
        #expect(change["event"] as? String == "change")
        #expect(change["environment"] as? String == "staging")
        #expect(change["to"] as? String == "enabled 100%")
    }

    @Test func verboseLogsTheWholePlanAndErrorsAreOneLineEach() async throws {
        let world = try Self.world()
        let lines = LogLines()
        let ticker = Self.ticker(world, lines: lines, verbose: true, clock: FakeClock())
        var memory = await ticker.once(.init())
        lines.reset()
        memory = await ticker.once(memory)
        #expect(lines.all.count > Self.count, "verbose prints every rollout")
        #expect(lines.all.contains { $0.contains("demo-007") })

        // A broken plan: one error line for it, besides the summary.
        let quiet = Self.ticker(world, lines: lines, clock: FakeClock())
        try world.repo.commitFiles(["rollouts/demo-003/plan.json": "{ not json"], "Break demo-003")
        lines.reset()
        _ = await quiet.once(memory)
        let errors = lines.all.filter { $0.hasPrefix("error: ") }
        #expect(!errors.isEmpty && errors.allSatisfy { $0.contains("demo-003") }, "\(lines.all)")
        #expect(lines.all.count == 1 + errors.count, "\(lines.all)")
    }
}
