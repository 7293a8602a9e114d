import ArgumentParser
import Foundation
import RolloutTestSupport

/// `rolloutctl-dev-flags`: the test suite's in-memory flag API (`FakeFlagService`) as a process, for the
/// benchmarks in `scripts/`. Its own executable so that the shipped `rolloutctl` links nothing from tests.
@main
struct DevFlags: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rolloutctl-dev-flags",
        abstract: "Serve an in-memory flag API on 127.0.0.1 (SPEC §7) for benchmarks.")

    @Option(name: .long, help: "The port to listen on (0: any free port; the port is printed).")
    var port: Int = 0

    @Option(name: .long, help: "How many flags to create, named <prefix>-0001 … (every environment absent).")
    var flags: Int = 0

    @Option(name: .long, help: "The flag name prefix.")
    var prefix: String = "flag"

    @Option(
        name: .long,
        help: "The environment variable holding the token PATCH requests must carry; unset: no check.")
    var tokenEnv: String = "ADMIN_TOKEN"

    func run() async throws {
        var initial: [String: FakeFlagService.Flag] = [:]
        for index in 0..<max(0, flags) {
            initial[String(format: "%@-%04d", prefix, index + 1)] = FakeFlagService.Flag(environments: [:])
        }
        let token = ProcessInfo.processInfo.environment[tokenEnv].flatMap { $0.isEmpty ? nil : $0 }
        let service = FakeFlagService(token: token, flags: initial)
        try await service.server.start(port: port)
        FileHandle.standardOutput.write(Data("serving \(initial.count) flags on \(service.baseURL)\n".utf8))
        // Until SIGTERM or SIGINT.
        let stop = AsyncStream<Void> { continuation in
            for sig in [SIGTERM, SIGINT] {
                signal(sig, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: sig, queue: .main)
                source.setEventHandler { continuation.yield(()) }
                source.resume()
                Self.sources.append(source)
            }
        }
        for await _ in stop { break }
        await service.stop()
    }

    nonisolated(unsafe) static var sources: [DispatchSourceSignal] = []
}
