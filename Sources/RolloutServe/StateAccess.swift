import Foundation
import RolloutAdapters

/// The state database, opened once it exists (a reconcile may create it after the server started).
final class StateAccess: @unchecked Sendable {
    let path: String
    private let lock = NSLock()
    private var opened: (any StateStorage)?

    init(path: String) {
        self.path = path
    }

    func store() -> (any StateStorage)? {
        lock.lock()
        defer { lock.unlock() }
        // [issue 12] A PostgreSQL session that ended (a server restart) is opened again on the next request.
        if let opened, (opened as? PostgresStateStore)?.isOpen != false { return opened }
        opened = try? StateStorageFactory.openReadOnly(path)
        return opened
    }
}
