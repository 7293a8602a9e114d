import Foundation
import GRDB

/// What a state file must be before SQLite touches it, and SQLite's errors about the file put in
/// words (SPEC §6 [r3]): the file named, what happened, what to do; never a bare "SQLite error 11".
/// An empty or foreign file is refused before it is opened, so no schema is ever written into a
/// file that is not a state (only `init` creates one, where no file is).
enum StateFileCheck {
    /// Throws `StateStoreError.damaged` for an empty file, a file that is not SQLite, or one shorter
    /// than its header says. A file that cannot be read is left to SQLite (its error is explained).
    static func check(_ path: String) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else { return }
        defer { try? handle.close() }
        let header = (try? handle.read(upToCount: 100)) ?? Data()
        let size = (try? handle.seekToEnd()).map(Int64.init) ?? Int64(header.count)
        if size == 0 {
            throw StateStoreError.damaged(path: path, detail: "it is empty (0 bytes), not a state")
        }
        let magic = Array("SQLite format 3\0".utf8)
        guard header.count == 100, Array(header.prefix(16)) == magic else {
            throw StateStoreError.damaged(
                path: path, detail: "it is not an SQLite database (\(size) bytes of something else)")
        }
        let bytes = [UInt8](header)
        func big(_ offset: Int, _ count: Int) -> Int64 {
            bytes[offset..<(offset + count)].reduce(0) { $0 << 8 | Int64($1) }
        }
        let pageSize = big(16, 2) == 1 ? 65_536 : big(16, 2)
        let pages = big(28, 4)
        // The in-header size is valid when "version-valid-for" matches the change counter.
        if big(92, 4) == big(24, 4), pages > 0, pageSize >= 512, size < pageSize * pages {
            throw StateStoreError.damaged(
                path: path, detail: "it is truncated (\(size) bytes; its header records \(pageSize * pages))")
        }
    }

    /// SQLite's error about the file, as a `StateStoreError` saying what to do; any other error as it is.
    static func explain(_ error: DatabaseError, path: String) -> Error {
        let message = error.message ?? "\(error.resultCode)"
        switch error.resultCode {
        case .SQLITE_CORRUPT, .SQLITE_NOTADB:
            return StateStoreError.damaged(path: path, detail: "SQLite reports \"\(message)\"")
        case .SQLITE_FULL:
            return StateStoreError.unwritable(path: path, detail: "the disk is full")
        case .SQLITE_READONLY:
            return StateStoreError.unwritable(
                path: path, detail: "it is read-only (a read-only mount or another user's file)")
        case .SQLITE_IOERR:
            return StateStoreError.unwritable(path: path, detail: "an I/O error (\(message))")
        case .SQLITE_CANTOPEN:
            return StateStoreError.unwritable(
                path: path,
                detail: "SQLite cannot open it or its -wal/-shm files (\(message)); check the folder's permissions")
        default:
            return error
        }
    }
}
