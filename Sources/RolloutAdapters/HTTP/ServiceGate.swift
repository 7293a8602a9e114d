import Foundation

/// How many calls one service takes at once, and a pause every call honours (issue 22): at most `limit`
/// requests are in flight to the service, and a 429 the service answers holds every caller — the whole run
/// slows down, not only the call that was refused. One gate per service per process.
public actor ServiceGate {
    /// The default bound on calls in flight to one flag service.
    public static let defaultLimit = 4

    public let limit: Int
    private var inFlight = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private var pausedUntil: ContinuousClock.Instant?
    private let clock = ContinuousClock()

    public init(limit: Int = ServiceGate.defaultLimit) {
        self.limit = max(1, limit)
    }

    /// Runs `call` when a slot is free and no pause is in force.
    public func run<T: Sendable>(_ call: @Sendable () async throws -> T) async throws -> T {
        await enter()
        defer { leave() }
        try await waitOutPause()
        return try await call()
    }

    /// Every call starting before `now + wait` waits until then (a 429's `Retry-After`, or its backoff).
    public func pause(for wait: Duration) {
        let until = clock.now + wait
        if pausedUntil.map({ until > $0 }) ?? true { pausedUntil = until }
    }

    /// True while a pause is in force.
    public var isPaused: Bool { pausedUntil.map { $0 > clock.now } ?? false }

    private func enter() async {
        if inFlight < limit {
            inFlight += 1
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    private func leave() {
        if waiters.isEmpty {
            inFlight -= 1
        } else {
            waiters.removeFirst().resume()  // the slot passes to the next caller
        }
    }

    private func waitOutPause() async throws {
        while let until = pausedUntil, until > clock.now {
            try await clock.sleep(until: until)
        }
    }
}
