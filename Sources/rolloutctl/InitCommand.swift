import ArgumentParser
import Foundation
import RolloutKit

struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create the state of a new installation (reconcile never creates one).")

    @OptionGroup var repository: RepositoryOptions

    @Option(name: .customLong("state"), help: stateHelp)
    var stateOption: String?

    @Option(
        name: .customLong("flags"),
        help: ArgumentHelp(
            "Flag store, as plan's --flags (repeatable ENV=URL; default: file:<repo>/.rolloutctl/flags.json).",
            valueName: "[ENV=]URL"))
    var flagsOption: [String] = []

    @Option(name: .long, help: "The environment variable holding the flag API token.")
    var tokenEnv: String = "ADMIN_TOKEN"

    @Flag(
        name: .long,
        help:
            ArgumentHelp(
                "Adopt an installation whose flags are already exposed (each rollout starts at the phase its flag "
                    + "matches, or overridden).")
    )
    var adopt = false

    @Option(name: .long, help: "The time adopted phases are entered at, RFC 3339 (for drills and tests).")
    var now: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Make this first-parent commit's policy the root of trust (with --adopt on an existing installation).",
            valueName: "COMMIT"))
    var policyRoot: String?

    func run() async throws {
        let logger = makeLogger(level: .notice)
        var arguments: [String] = ["--repo", repository.repo, "--token-env", tokenEnv]
        if let ref = repository.ref { arguments += ["--ref", ref] }
        if let stateOption { arguments += ["--state", stateOption] }
        for flag in flagsOption { arguments += ["--flags", flag] }
        if let now { arguments += ["--now", now] }
        var options = try RunOptions.parse(arguments)
        options.notifyURL = []
        let time = try options.parsedNow()
        let wiring = try Wiring(options: options, logger: logger)
        do {
            let report = try await Initializer.run(
                Initializer.Settings(
                    repositoryPath: repository.repo, ref: repository.ref, statePath: options.state,
                    adopt: adopt, now: time, policyRoot: policyRoot),
                flags: wiring.ports.flags, logger: logger)
            await wiring.shutdown()
            print(report.human())
        } catch {
            await wiring.shutdown()
            printFailure(error)
            throw ExitCode(1)
        }
    }
}
