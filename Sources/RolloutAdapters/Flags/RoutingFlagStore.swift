import Foundation
import RolloutCore

/// Several flag stores behind one (`--flags ENV=URL`, repeatable, plus a plain `--flags URL` for the
/// environments not named): the reconciler sees one store and never needs to know.
///
/// - read: every store is read; each named store contributes its environment only, the fallback
///   every environment not named. The version is the list of the stores' versions.
/// - apply to one environment: that environment's store alone, with its own part of the version;
///   the other stores are not called. A failure there is that call's error: changes already made
///   in other environments stay made (each had its own intent and result), and the next run reads
///   every store again, so nothing is applied twice.
/// - apply to every environment (no environment in the patch): each environment, one call each.
/// - flush: every store is flushed, even when one fails; the error names the ones that failed.
/// - planProblems: each store judges the phases of its environments; an environment no store
///   serves is an error at the phase.
public final class RoutingFlagStore: FlagStore, @unchecked Sendable {
    /// The named environments, in the order given.
    public let routes: [(environment: String, store: FlagStore)]
    /// The store for every environment not named, if any.
    public let fallback: FlagStore?
    /// The last environments each part reported, per flag (to answer `apply` with the whole flag).
    private var lastParts: [String: [Int: [String: FlagEnvironmentState]]] = [:]
    private let lock = NSLock()

    public init(routes: [(environment: String, store: FlagStore)], fallback: FlagStore?) {
        self.routes = routes
        self.fallback = fallback
    }

    private var parts: [FlagStore] { routes.map(\.store) + (fallback.map { [$0] } ?? []) }
    private var named: Set<String> { Set(routes.map(\.environment)) }

    /// Which part serves `environment`.
    private func part(for environment: String) -> Int? {
        if let index = routes.firstIndex(where: { $0.environment == environment }) { return index }
        return fallback == nil ? nil : routes.count
    }

    /// The environments part `index` is trusted for in a snapshot it returned.
    private func contribution(_ index: Int, of snapshot: FlagSnapshot) -> FlagSnapshot {
        var part = snapshot
        if index < routes.count {
            let environment = routes[index].environment
            part.environments = snapshot.environments.filter { $0.key == environment }
            part.warnings = snapshot.warnings.filter { $0.environment == environment }
            part.errors = snapshot.errors.filter { $0.environment == environment }
        } else {
            let named = self.named
            part.environments = snapshot.environments.filter { !named.contains($0.key) }
            part.warnings = snapshot.warnings.filter { !named.contains($0.environment) }
            part.errors = snapshot.errors.filter { !named.contains($0.environment) }
        }
        return part
    }

    public var stagesWrites: Bool { parts.contains { $0.stagesWrites } }

    // MARK: FlagStore

    public func read(flag: String) async throws -> FlagSnapshot {
        var pieces: [FlagSnapshot] = []
        for (index, store) in parts.enumerated() {
            pieces.append(contribution(index, of: try await store.read(flag: flag)))
        }
        return merge(flag: flag, pieces)
    }

    public func apply(flag: String, patch: FlagPatch, ifMatch version: String) async throws -> FlagSnapshot {
        var versions = try Self.decode(version, count: parts.count, flag: flag)
        let targets: [String]
        if let environment = patch.environment {
            targets = [environment]
        } else {
            targets = lock.withLock { lastParts[flag]?.values.flatMap(\.keys) ?? [] }.sorted()
        }
        var updated: [Int: FlagSnapshot] = [:]
        for environment in targets {
            guard let index = part(for: environment) else {
                throw FlagStoreError.notManaged(
                    "no --flags serves environment \(environment) "
                        + "(give --flags \(environment)=URL, or a plain --flags URL for the rest)")
            }
            var single = patch
            single.environment = environment
            let snapshot = try await parts[index].apply(flag: flag, patch: single, ifMatch: versions[index])
            versions[index] = snapshot.version
            updated[index] = contribution(index, of: snapshot)
        }
        let pieces = lock.withLock { () -> [FlagSnapshot] in
            (0..<parts.count).map { index in
                updated[index]
                    ?? FlagSnapshot(
                        key: flag, version: versions[index],
                        environments: lastParts[flag]?[index] ?? [:])
            }
        }
        var merged = merge(flag: flag, pieces)
        merged.version = Self.encode(versions)
        return merged
    }

    public func flush() async throws {
        var failures: [String] = []
        for (index, store) in parts.enumerated() {
            do {
                try await store.flush()
            } catch {
                let label = index < routes.count ? "environment \(routes[index].environment)" : "the other environments"
                failures.append("\(label): \(error)")
            }
        }
        guard failures.isEmpty else { throw FlagStoreError.unavailable(failures.joined(separator: "; ")) }
    }

    public func planProblems(_ plan: Plan, path: String) -> [Diagnostic] {
        var problems: [Diagnostic] = []
        for phase in plan.phases where part(for: phase.environment) == nil {
            problems.append(
                Diagnostic(
                    path: path, line: phase.position.line, column: phase.position.column,
                    message: "no --flags serves environment \(phase.environment) of phase \(phase.name) "
                        + "(give --flags \(phase.environment)=URL, or a plain --flags URL for the rest)"))
        }
        for (index, store) in parts.enumerated() {
            var own = plan
            own.phases = plan.phases.filter { part(for: $0.environment) == index }
            if !own.phases.isEmpty { problems += store.planProblems(own, path: path) }
        }
        return problems.sorted()
    }

    // MARK: Versions and merging

    private func merge(flag: String, _ pieces: [FlagSnapshot]) -> FlagSnapshot {
        var environments: [String: FlagEnvironmentState] = [:]
        var warnings: [FlagWarning] = []
        var errors: [FlagWarning] = []
        for piece in pieces {
            environments.merge(piece.environments) { first, _ in first }
            warnings += piece.warnings
            errors += piece.errors
        }
        lock.withLock {
            lastParts[flag] = Dictionary(
                uniqueKeysWithValues: pieces.enumerated().map {
                    ($0.offset, $0.element.environments)
                })
        }
        return FlagSnapshot(
            key: flag, version: Self.encode(pieces.map(\.version)), environments: environments,
            warnings: warnings, errors: errors)
    }

    /// The stores' versions as one string: a JSON array, so any version text survives.
    static func encode(_ versions: [String]) -> String {
        JSONOutput.array(versions.map { .string($0) }).render(pretty: false)
    }

    static func decode(_ version: String, count: Int, flag: String) throws -> [String] {
        guard let value = try? JSONParser.parse(Array(version.utf8)), case .array(let elements) = value.kind,
            elements.count == count
        else {
            throw FlagStoreError.versionConflict(flag: flag)
        }
        return elements.map { element in
            if case .string(let text) = element.kind { return text }
            return ""
        }
    }
}
