import Foundation

/// Runs blocking work (waiting for a child process, reading its pipes) on a thread of its own.
///
/// Swift concurrency's cooperative pool has one thread per CPU: on a 2-core CI machine two
/// tests that block in `Process.waitUntilExit()` stall every other test (their timeouts and
/// timing assertions fail) until the child exits.
public func runOffCooperativePool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Result { try work() })
        }
        thread.stackSize = 8 << 20
        thread.start()
    }
}
