import AsyncHTTPClient
import Foundation
import Logging
import RolloutCore
import RolloutTestSupport

@testable import RolloutAdapters
@testable import RolloutKit

/// A `RolloutWorld` whose flag store is the real HTTP flag API (`FakeFlagService` on
/// 127.0.0.1), with healthy metrics and every log line recorded.
final class FlagServiceWorld: @unchecked Sendable {
    let world: RolloutWorld
    let service: FakeFlagService
    let client: HTTPClient
    let logs = AdapterLogLines()
    let metrics: MetricsFile

    static let flag = "portal_form_autosave"
    static let flagPath = "/api/v1/feature-flags/portal_form_autosave"

    /// - Parameters:
    ///   - serviceToken: the token the service accepts.
    ///   - clientToken: the token rolloutctl sends (a wrong one gets 401).
    init(serviceToken: String = "s3cr3t-admin-token-4f1c", clientToken: String? = nil) async throws {
        service = FakeFlagService(token: serviceToken)
        service.setFlag(Self.flag, environments: [:])
        try await service.start()
        client = RolloutHTTPClient.make()
        metrics = try MetricsFile(MetricsFile.healthy)
        world = try RolloutWorld(metrics: FileMetricsProvider(path: metrics.path))
        let logger = AdapterLogRecorder.logger(logs)
        world.logger = logger
        world.flags = HTTPFlagStore(
            baseURL: service.baseURL, token: clientToken ?? serviceToken, client: client,
            retry: .adapterTest(), logger: logger)
    }

    func shutdown() async {
        try? await client.shutdown()
        await service.stop()
    }

    /// Runs `body` with a started world, shut down afterwards whatever happens.
    static func with(
        serviceToken: String = "s3cr3t-admin-token-4f1c", clientToken: String? = nil,
        _ body: (FlagServiceWorld) async throws -> Void
    ) async throws {
        let world = try await FlagServiceWorld(serviceToken: serviceToken, clientToken: clientToken)
        do {
            try await body(world)
            await world.shutdown()
        } catch {
            await world.shutdown()
            throw error
        }
    }

    func run(_ mode: RunMode = .reconcile(dryRun: false), hours: Double, rollouts: [String] = []) async throws
        -> RunReport
    {
        try await world.run(mode, hours: hours, rollouts: rollouts)
    }

    /// The flag's environments as the service holds them (not through rolloutctl).
    func environments(_ flag: String = FlagServiceWorld.flag) -> [String: FlagEnvironmentState] {
        service.flag(flag)?.environments ?? [:]
    }

    func patchRequests(_ flag: String = FlagServiceWorld.flag) -> [TestRequest] {
        service.patchRequests.filter { $0.path == "/api/v1/feature-flags/\(flag)" }
    }

    func getRequests(_ flag: String = FlagServiceWorld.flag) -> [TestRequest] {
        service.requests.filter { $0.method == "GET" && $0.path == "/api/v1/feature-flags/\(flag)" }
    }

    /// The audit log of a rollout, oldest first.
    func audit(_ rollout: String = "exp-001-autosave") throws -> [AuditEntry] {
        try SQLiteStateStore(path: world.statePath).history(rollout: rollout).reversed()
    }

    func stored(_ rollout: String = "exp-001-autosave") throws -> StoredRollout? {
        try SQLiteStateStore.openIfExists(path: world.statePath)?.rollout(rollout)
    }

    /// Staging at 100% (hour 0), canary-10's approvals merged, canary-10 entered (hour 1).
    func reachCanary10() async throws {
        try world.seed()
        _ = try await run(hours: 0)
        try world.approveCanary10()
        _ = try await run(hours: 1)
    }

    /// Every byte of the state database, WAL and shared memory files included.
    func stateBytes() -> Data {
        var data = Data()
        for suffix in ["", "-wal", "-shm", "-journal"] {
            if let bytes = FileManager.default.contents(atPath: world.statePath + suffix) { data.append(bytes) }
        }
        return data
    }
}

extension FlagEnvironmentState {
    static func on(_ coverage: Double) -> FlagEnvironmentState {
        FlagEnvironmentState(enabled: true, coverage: coverage)
    }
}

extension Data {
    func contains(_ text: String) -> Bool {
        range(of: Data(text.utf8)) != nil
    }
}
