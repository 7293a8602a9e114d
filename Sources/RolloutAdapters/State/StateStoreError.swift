import Foundation

/// Why a state database cannot be used. The messages say what to do.
public enum StateStoreError: Error, Equatable, CustomStringConvertible {
    case missing(path: String)
    case newerSchema(path: String, unknown: [String])
    case notInitialised(path: String)
    case anotherRepository(path: String, recorded: String, actual: String)
    case alreadyInitialised(path: String)
    /// A row that cannot be read (a NULL where a value must be, a value of the wrong type, an unknown status).
    case corrupt(path: String, detail: String)
    /// A file that is not a state, or a database SQLite cannot read (empty, garbage, truncated).
    case damaged(path: String, detail: String)
    /// A write the state refused (read-only, disk full, I/O error): nothing was recorded.
    case unwritable(path: String, detail: String)

    public var description: String {
        switch self {
        case .missing(let path):
            return "no state at \(path): run `rolloutctl init` for a new installation, or restore the state"
        case .newerSchema(let path, let unknown):
            return "the state at \(path) was written by a newer rolloutctl (unknown migrations: "
                + "\(unknown.joined(separator: ", "))); upgrade rolloutctl, never downgrade a state"
        case .notInitialised(let path):
            return "the state at \(path) records no repository (it predates `rolloutctl init`); "
                + "run `rolloutctl init` to record this repository (its rollouts are kept)"
        case .anotherRepository(let path, let recorded, let actual):
            return "the state at \(path) belongs to another repository (root commit \(recorded.prefix(12)), this "
                + "repository's is \(actual.prefix(12))); pass the --state of this repository"
        case .alreadyInitialised(let path):
            return "the state at \(path) already exists; `rolloutctl init` never overwrites a state"
        case .corrupt(let path, let detail):
            return "the state at \(path) is damaged: \(detail); restore it from a backup"
        case .damaged(let path, let detail):
            return "the state at \(path) is damaged: \(detail); nothing was written to it. Move it aside, then "
                + "restore it from a backup, or run `rolloutctl init --adopt` to start a new state from the flags"
        case .unwritable(let path, let detail):
            return "the state at \(path) cannot be written: \(detail); nothing was recorded"
        }
    }
}
