import ArgumentParser

/// `rolloutctl debug …`: hidden helpers for benchmarks and diagnosis; not part of the contract.
struct Debug: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Helpers for benchmarks and diagnosis (not part of the supported interface).",
        shouldDisplay: false,
        subcommands: [DebugScan.self, ServeFlags.self])
}
