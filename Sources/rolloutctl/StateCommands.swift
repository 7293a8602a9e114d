import ArgumentParser
import RolloutAdapters
import RolloutKit

/// Options of the commands that read the state database.
struct StateViewOptions: ParsableArguments {
    @Option(name: .long, help: "Only this rollout.")
    var rollout: String?

    @Flag(name: .long, help: "Print one JSON document.")
    var json = false

    @Option(name: .customLong("state"), help: stateHelp)
    var stateOption: String?

    @Option(name: .long, help: "The git repository whose .rolloutctl/ holds the state.")
    var repo: String = "."

    @Flag(name: .long, help: "No colour (NO_COLOR is honoured too).")
    var noColor = false

    var style: Style { .forStandardOutput(noColor: noColor) }

    var state: String { stateOption ?? RunSettings.defaultStatePath(repositoryPath: repo) }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show each rollout's recorded phase and status.")

    @OptionGroup var options: StateViewOptions

    func run() throws {
        try withStateStore(options.state, absent: StateViews.noState(path: options.state, json: options.json)) {
            store in
            try StateViews.status(store: store, rollout: options.rollout, json: options.json, style: options.style)
        }
    }
}

struct History: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the audit log: every intent, result and event.")

    @OptionGroup var options: StateViewOptions

    @Option(name: .long, help: "Show at most N entries (newest).")
    var limit: Int = 50

    func run() throws {
        try withStateStore(options.state, absent: StateViews.noState(path: options.state, json: options.json)) {
            store in
            try StateViews.history(
                store: store, rollout: options.rollout, limit: limit, json: options.json,
                style: options.style)
        }
    }
}

/// Opens an existing state database read-only and prints what `render` makes of it (saying on stderr
/// when the state cannot be written); without a state, prints `absent` and exits 0 (SPEC §5.10: `status`
/// works without one). A damaged state is exit 1 with the error that says what to do.
func withStateStore(_ path: String, absent: String, _ render: (any StateStorage) throws -> String) throws {
    try exitingOnFailure {
        guard let store = try StateStorageFactory.openReadOnly(path) else {
            print(absent)
            return
        }
        noteReadOnly(store)
        print(try render(store))
    }
}

/// `note: the state at PATH …` on stderr when the state can only be read.
func noteReadOnly(_ state: (any StateStorage)?) {
    if let store = state as? SQLiteStateStore, let reason = store.readOnlyReason {
        printError("note: the state at \(store.path): \(reason)")
    }
}
