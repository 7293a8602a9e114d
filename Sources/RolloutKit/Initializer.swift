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
        /// `--policy-root COMMIT`: the first-parent commit whose policy becomes the root of trust (SPEC §4.3).
        public var policyRoot: String?

        public init(
            repositoryPath: String, ref: String?, statePath: String, adopt: Bool, now: Date,
            policyRoot: String? = nil
        ) {
            self.repositoryPath = repositoryPath
            self.ref = ref
            self.statePath = statePath
            self.adopt = adopt
            self.now = now
            self.policyRoot = policyRoot
        }
    }

    /// What `init` did: the repository recorded, and how each adopted rollout starts.
    public struct Report: Sendable {
        public var statePath: String
        public var repositoryRoot: String
        public var adopted: [(rollout: String, record: RolloutRecord)]
        public var policyRoot: PolicyPoint?
        /// The root an `--policy-root` run replaced.
        public var previousPolicyRoot: PolicyPoint?

        public func human() -> String {
            var lines = [
                "Initialised \(statePath) for the repository whose root commit is \(repositoryRoot.prefix(12))."
            ]
            if let policyRoot {
                lines.append(
                    "Policy root of trust: \(policyRoot.commit.prefix(12)) (digest \(policyRoot.digest.prefix(16))…)"
                        + (previousPolicyRoot.map {
                            "; it replaces \($0.commit.prefix(12)) (recorded in the audit log)"
                        } ?? ""))
            }
            for (rollout, record) in adopted {
                lines.append(
                    record.status == .overridden
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
        if try StateStorageFactory.exists(settings.statePath) {
            return try recordRepository(settings)
        }
        let repository = try GitRepository(path: settings.repositoryPath)
        let policyRoot = try resolvePolicyRoot(settings, repository: repository)
        let loaded = try RepositoryReader.load(
            repository: repository, ref: settings.ref, cacheFile: nil,
            policyRoot: policyRoot)
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
            if let record = Adoption.record(
                plan: plan, planBlob: blob, approvals: approvals, actual: actual,
                now: settings.now)
            {
                adopted.append((rollout.name, record))
            }
        }
        if !exposed.isEmpty && !settings.adopt {
            throw Refusal(
                description: "this installation is already in use: "
                    + exposed.joined(separator: ", ")
                    + " \(exposed.count == 1 ? "has its flag exposed or approvals" : "have their flags exposed or approvals")"
                    + " past phase 0; pass --adopt to start each at the phase its flag matches "
                    + "(or overridden when it matches none)")
        }
        let store = try StateStorageFactory.create(
            settings.statePath,
            installation: Installation(
                repositoryRoot: root, policyRootCommit: loaded.policy.root?.commit,
                policyRootDigest: loaded.policy.root?.digest))
        try recordLine(store, loaded: loaded, settings: settings, accepting: false)
        for (name, record) in adopted {
            guard let plan = loaded.snapshot.rollout(named: name)?.plan else { continue }
            let detail =
                record.status == .overridden
                ? "adopted by init: the flag matches no phase; overridden until plan.json changes"
                : "adopted by init at \(record.phase ?? "?"): the flag matches its desired state; bake from now"
            try store.save(
                rollout: name, flag: plan.flag, record: record, now: settings.now,
                enteredPhase: record.status != .overridden,
                audit: [
                    AuditEntry(
                        time: settings.now, rollout: name, phase: record.phase, environment: nil, from: nil,
                        to: nil, reason: "adopt", revision: loaded.revision, planBlob: record.planBlob,
                        approvals: [], kind: .event, detail: detail)
                ])
            logger.notice("\(name): \(detail)")
        }
        return Report(
            statePath: settings.statePath, repositoryRoot: root, adopted: adopted,
            policyRoot: loaded.policy.root)
    }

    /// Records the branch the state reads (the policy in force's `protectedBranch`) and the tip its line starts
    /// from (SPEC §4.0 rules 1 and 5); audited when an operator accepts a new line.
    private static func recordLine(
        _ store: any StateStorage, loaded: LoadedRepository, settings: Settings, accepting: Bool
    ) throws {
        let branch = RepositoryLayout.protectedBranch(loaded.policy.inForceSet?.approvers?.protectedBranch)
        var audit: [AuditEntry] = []
        if accepting {
            audit.append(
                AuditEntry(
                    time: settings.now, rollout: "*", phase: nil, environment: nil, from: nil, to: nil,
                    reason: "line", revision: loaded.revision, planBlob: nil, approvals: [], kind: .event,
                    detail: "init --adopt: the state now reads refs/heads/\(branch) from \(loaded.revision)"))
        }
        try store.keep(
            [TipTrust.branchKey: branch, TipTrust.tipKey: loaded.revision, TipTrust.notifiedKey: nil], audit: audit)
    }

    /// `--policy-root` names a commit of the protected branch's first-parent line (checked by the walk).
    private static func resolvePolicyRoot(_ settings: Settings, repository: GitRepository) throws -> String? {
        guard let spec = settings.policyRoot else { return nil }
        return try repository.resolveCommit(spec).description
    }

    /// An existing state: one made before `init` existed gets its repository and policy root recorded;
    /// `--policy-root COMMIT --adopt` replaces the root of trust of an installation, recorded in the audit
    /// log with the previous root (SPEC §4.3). Any other existing state is never overwritten.
    private static func recordRepository(_ settings: Settings) throws -> Report {
        let store = try StateStorageFactory.open(settings.statePath)
        let existing = try store.installation()
        let replacing = existing != nil && settings.policyRoot != nil && settings.adopt
        // SPEC §4.0 rules 1 and 5 [r3]: `init --adopt` on an installation accepts the branch the policy in force
        // names and the line of history its tip is on.
        let acceptingLine = existing != nil && settings.adopt && settings.policyRoot == nil
        guard existing == nil || replacing || acceptingLine else {
            if settings.policyRoot != nil {
                throw Refusal(
                    description: "\(settings.statePath) is already initialised; replacing its policy root of "
                        + "trust needs --adopt as well (`rolloutctl init --policy-root COMMIT --adopt`)")
            }
            throw StateStoreError.alreadyInitialised(path: settings.statePath)
        }
        let repository = try GitRepository(path: settings.repositoryPath)
        let (_, tip) = try RepositoryReader.resolve(repository: repository, ref: settings.ref)
        let root = try repository.firstParentRoot(of: tip).description
        if let existing, existing.repositoryRoot != root {
            throw StateStoreError.anotherRepository(
                path: settings.statePath, recorded: existing.repositoryRoot, actual: root)
        }
        let loaded = try RepositoryReader.load(
            repository: repository, ref: settings.ref, cacheFile: nil,
            policyRoot: try resolvePolicyRoot(settings, repository: repository))
        let previous = existing.flatMap { installation in
            installation.policyRootCommit.map { PolicyPoint(commit: $0, digest: installation.policyRootDigest ?? "") }
        }
        if acceptingLine {
            // After a rewrite (the recorded tip is not on the new line), approvals start over: only those merged
            // after this tip count for raising exposure (SPEC §4.0 rule 5).
            let recorded = try store.keptValues(prefix: TipTrust.keyPrefix)[TipTrust.tipKey].flatMap(
                ObjectID.init(hex:))
            if let recorded, !(try repository.isOnFirstParentLine(recorded, of: tip)) {
                let position = try repository.firstParentPosition(of: tip)
                try store.keep(
                    [TipTrust.acceptedTipKey: loaded.revision, TipTrust.acceptedIndexKey: String(position)],
                    audit: [])
            }
            try recordLine(store, loaded: loaded, settings: settings, accepting: true)
            return Report(
                statePath: settings.statePath, repositoryRoot: root, adopted: [], policyRoot: loaded.policy.root,
                previousPolicyRoot: nil)
        }
        try store.setInstallation(
            Installation(
                repositoryRoot: root, policyRootCommit: loaded.policy.root?.commit,
                policyRootDigest: loaded.policy.root?.digest))
        try recordLine(store, loaded: loaded, settings: settings, accepting: replacing)
        if replacing {
            _ = try store.append(
                AuditEntry(
                    time: settings.now, rollout: "*", phase: nil, environment: nil, from: nil, to: nil,
                    reason: "policy-root",
                    revision: loaded.revision, planBlob: nil, approvals: [], kind: .event,
                    detail: "init --policy-root: the root of trust is now \(loaded.policy.root?.commit ?? "none") "
                        + "(digest \(loaded.policy.root?.digest ?? "none")); it was \(previous?.commit ?? "none") "
                        + "(digest \(previous?.digest ?? "none"))"))
        }
        return Report(
            statePath: settings.statePath, repositoryRoot: root, adopted: [], policyRoot: loaded.policy.root,
            previousPolicyRoot: replacing ? previous : nil)
    }
}
