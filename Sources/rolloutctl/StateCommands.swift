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
        try withStateStore(options.state) { store in
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
        try withStateStore(options.state) { store in
            try StateViews.history(
                store: store, rollout: options.rollout, limit: limit, json: options.json,
                style: options.style)
        }
    }
}

/// Opens an existing state database read-only and prints what `render` makes of it; exit 1 with a hint otherwise.
func withStateStore(_ path: String, _ render: (any StateStorage) throws -> String) throws {
    try exitingOnFailure {
        guard let store = try StateStores.openReadOnly(path) else {
            printError(
                "rolloutctl: no state database at \(path); run `rolloutctl init` for a new installation "
                    + "(or pass --state)")
            throw ExitCode(1)
        }
        print(try render(store))
    }
}
