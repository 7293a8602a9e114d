import ArgumentParser
import Foundation
import RolloutAdapters
import RolloutKit

struct Plan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what the next reconcile would change, and why; change nothing.")

    @OptionGroup var options: RunOptions

    @Flag(name: .long, help: "Exit 0 when there are no changes, 2 when changes are pending, 1 on error.")
    var detailedExitcode = false

    func run() async throws {
        let logger = makeLogger(level: .warning)
        // Options are checked before the HTTP client exists: an HTTPClient dropped without
        // shutdown() traps, which would hide the message behind a crash.
        let now = try options.parsedNow()
        let wiring = try Wiring.forCommand(options: options, logger: logger)
        var settings = RunSettings(
            repositoryPath: options.repository.repo, ref: options.repository.ref,
            rollouts: options.rollouts, now: now,
            statePath: options.state, mode: .plan, clockSupplied: options.now != nil)
        let report: RunReport
        do {
            // Opened here to say when it can only be read (SPEC §6 [r3]); plan never writes it anyway.
            settings.openedState = try StateStores.openReadOnly(options.state)
            noteReadOnly(settings.openedState)
            report = try await Reconciler(settings: settings, ports: wiring.ports).run()
        } catch {
            await wiring.shutdown()
            printError("rolloutctl: \(error)")
            throw ExitCode(1)
        }
        await wiring.shutdown()
        print(options.json ? report.json() : report.human(style: .forStandardOutput(noColor: options.noColor)))
        if report.errorCount > 0 { throw ExitCode(1) }
        if detailedExitcode && report.changeCount > 0 { throw ExitCode(2) }
    }
}
