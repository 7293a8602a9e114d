import Foundation
import Logging
import RolloutAdapters
import RolloutCore
import RolloutGit

/// `rolloutctl init`: creates the state of an installation, recording the repository it belongs to
/// (SPEC §5.10). An installation whose flags are already exposed needs `--adopt`.
public enum Initializer {
    public struct Settings: Sendable {
        public var repositoryPath: String
        public var ref: String?
        public var statePath: String
        public var adopt: Bool
        public var now: Date

        public init(repositoryPath: String, ref: String?, statePath: String, adopt: Bool, now: Date) {
            self.repositoryPath = repositoryPath
            self.ref = ref
            self.statePath = statePath
            self.adopt = adopt
            self.now = now
        }
    }

    /// What `init` did: the repository recorded, and how each adopted rollout starts.
    public struct Report: Sendable {
        public var statePath: String
        public var repositoryRoot: String
        public var adopted: [(rollout: String, record: RolloutRecord)]

        public func human() -> String {
            var lines = ["Initialised \(statePath) for the repository whose root commit is \(repositoryRoot.prefix(12))."]
            for (rollout, record) in adopted {
                lines.append(record.status == .overridden
                    ? "  \(rollout): overridden at \(record.phase ?? "?") (its flag matches no phase; nothing is "
                        + "raised until plan.json changes)"
                    : "  \(rollout): adopted at \(record.phase ?? "?") (bake from now)")
            }
            return lines.joined(separator: "\n")
        }
    }

    public struct Refusal: Error, CustomStringConvertible {
        public var description: String
    }

    public static func run(_ settings: Settings, flags: FlagStore, logger: Logger) async throws -> Report {
        if FileManager.default.fileExists(atPath: settings.statePath) {
            return try recordRepository(settings)
        }
        let repository = try GitRepository(path: settings.repositoryPath)
        let cache = URL(fileURLWithPath: settings.statePath).deletingLastPathComponent()
            .appendingPathComponent("scan-cache.json").path
        try FileManager.default.createDirectory(atPath: URL(fileURLWithPath: cache).deletingLastPathComponent().path,
                                                withIntermediateDirectories: true)
        let loaded = try RepositoryReader.load(repository: repository, ref: settings.ref, cacheFile: cache)
        let root = try repository.firstParentRoot(of: repository.resolveCommit(loaded.revision)).description

        var adopted: [(String, RolloutRecord)] = []
        var exposed: [String] = []
        for rollout in loaded.snapshot.rollouts {
            guard let plan = rollout.plan, let blob = rollout.planBlob, rollout.isValid else { continue }
            let actual: [String: FlagEnvironmentState]
            do {
                actual = try await flags.read(flag: plan.flag).environments
            } catch FlagStoreError.notFound {
                actual = [:]
            }
            let approvals = loaded.approvals[rollout.name] ?? []
            guard Adoption.needsAdopt(plan: plan, approvals: approvals, actual: actual) else { continue }
            exposed.append(rollout.name)
            if let record = Adoption.record(plan: plan, planBlob: blob, approvals: approvals, actual: actual,
                                            now: settings.now) {
                adopted.append((rollout.name, record))
            }
        }
        if !exposed.isEmpty && !settings.adopt {
            throw Refusal(description: "this installation is already in use: "
                + exposed.joined(separator: ", ")
                + " \(exposed.count == 1 ? "has its flag exposed or approvals" : "have their flags exposed or approvals")"
                + " past phase 0; pass --adopt to start each at the phase its flag matches "
                + "(or overridden when it matches none)")
        }
        let store = try StateStore.create(path: settings.statePath, installation: Installation(repositoryRoot: root))
        for (name, record) in adopted {
            guard let plan = loaded.snapshot.rollout(named: name)?.plan else { continue }
            let detail = record.status == .overridden
                ? "adopted by init: the flag matches no phase; overridden until plan.json changes"
                : "adopted by init at \(record.phase ?? "?"): the flag matches its desired state; bake from now"
            try store.save(rollout: name, flag: plan.flag, record: record, now: settings.now,
                           enteredPhase: record.status != .overridden, audit: [AuditEntry(
                               time: settings.now, rollout: name, phase: record.phase, environment: nil, from: nil,
                               to: nil, reason: "adopt", revision: loaded.revision, planBlob: record.planBlob,
                               approvals: [], kind: .event, detail: detail)])
            logger.notice("\(name): \(detail)")
        }
        return Report(statePath: settings.statePath, repositoryRoot: root, adopted: adopted)
    }

    /// A state made before `init` existed keeps its rollouts (they are this installation's) and
    /// gets its repository recorded; any other existing state is never overwritten.
    private static func recordRepository(_ settings: Settings) throws -> Report {
        let store = try StateStore.open(path: settings.statePath)
        guard try store.installation() == nil else { throw StateStoreError.alreadyInitialised(path: settings.statePath) }
        let repository = try GitRepository(path: settings.repositoryPath)
        let (_, tip) = try RepositoryReader.resolve(repository: repository, ref: settings.ref)
        let root = try repository.firstParentRoot(of: tip).description
        try store.setInstallation(Installation(repositoryRoot: root))
        return Report(statePath: settings.statePath, repositoryRoot: root, adopted: [])
    }
}
