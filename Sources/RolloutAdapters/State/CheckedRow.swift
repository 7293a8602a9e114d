import GRDB
import RolloutCore

/// A row of the SQLite state read without traps. GRDB's `row["column"] as String` stops the
/// process on a NULL or a value it cannot convert; in a damaged or hand-edited database that would
/// stop every rollout of the installation, so here it is a `StateStoreError.corrupt` naming the
/// table and column, and the run reports it.
struct CheckedRow {
    let row: Row
    let table: String
    let path: String

    func value<T: DatabaseValueConvertible>(_ column: String) throws -> T {
        guard let value: T = try optional(column) else {
            throw StateStoreError.corrupt(path: path, detail: "\(table).\(column) is NULL")
        }
        return value
    }

    func optional<T: DatabaseValueConvertible>(_ column: String) throws -> T? {
        let stored: DatabaseValue = row[column] ?? .null
        if stored.isNull { return nil }
        guard let value = T.fromDatabaseValue(stored) else {
            throw StateStoreError.corrupt(path: path, detail: "\(table).\(column) holds \(stored), not a \(T.self)")
        }
        return value
    }
}

extension StateStoreError {
    /// A stored status this rolloutctl does not know: the state is damaged (a newer schema is refused
    /// before any row is read). Never read as "progressing", which could raise a rolled-back flag.
    static func unknownStatus(_ text: String, rollout: String, path: String) -> StateStoreError {
        .corrupt(path: path, detail: "rollout \(rollout) has the unknown status \"\(text)\"")
    }
}
