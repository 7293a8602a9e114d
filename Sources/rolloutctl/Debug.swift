import ArgumentParser

/// `rolloutctl debug …`: hidden helpers for benchmarks and diagnosis; not part of the contract.
/// The benchmarks' flag API is the separate `rolloutctl-dev-flags` executable (test code stays out of this binary).
struct Debug: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Helpers for benchmarks and diagnosis (not part of the supported interface).",
        shouldDisplay: false,
        subcommands: [DebugScan.self])
}
