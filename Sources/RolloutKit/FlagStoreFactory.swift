import AsyncHTTPClient
import Foundation
import Logging
import RolloutAdapters
import RolloutCore

/// Turns the `--flags` arguments (SPEC §6, §7.1) into one `FlagStore`. The store behind a URL is
/// chosen by its scheme, here and nowhere else, so a further service is one case below plus its adapter.
///
/// - `file:PATH` the embedded store; `http(s)://…` the flag API (§7); `flagd:PATH` a flagd file;
///   `unleash+http(s)://HOST/api?project=P` Unleash's admin API; `launchdarkly+http(s)://HOST?project=P`
///   LaunchDarkly's REST API v2.
/// - `ENV=URL` (repeatable) sends environment ENV to its own store; one plain `URL` serves the
///   environments not named. No argument at all means `file:.rolloutctl/flags.json`.
/// - A flagd file is one environment, so it is only accepted as `ENV=flagd:PATH`: a plain one
///   would write every environment of a plan into the same file.
public enum FlagStoreFactory {
    /// One `--flags` argument.
    public struct Specification: Equatable, Sendable {
        /// The environment it serves; nil for the plain form.
        public var environment: String?
        public var url: String

        public init(environment: String?, url: String) {
            self.environment = environment
            self.url = url
        }
    }

    /// Why the `--flags` arguments cannot be used; the message names the argument.
    public struct SpecificationError: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    public static let defaultURL = "file:.rolloutctl/flags.json"

    /// Splits and checks the arguments; nothing is opened.
    /// - Parameter defaultURL: the store when no argument is given (the embedded file inside --repo).
    public static func parse(_ arguments: [String], defaultURL: String = defaultURL) throws -> [Specification] {
        if arguments.isEmpty { return [Specification(environment: nil, url: defaultURL)] }
        var specifications: [Specification] = []
        for argument in arguments {
            var specification = Specification(environment: nil, url: argument)
            if let equals = argument.firstIndex(of: "="), Names.isValid(String(argument[..<equals])) {
                specification = Specification(
                    environment: String(argument[..<equals]),
                    url: String(argument[argument.index(after: equals)...]))
            }
            try check(specification.url, argument: argument)
            if specification.environment == nil, specification.url.hasPrefix("flagd:") {
                throw SpecificationError(
                    description: "--flags \(argument): a flagd file is one environment; "
                        + "write --flags ENV=\(argument) (e.g. production=\(argument))")
            }
            if let environment = specification.environment,
                specifications.contains(where: { $0.environment == environment })
            {
                throw SpecificationError(description: "--flags names environment \(environment) twice")
            }
            if specification.environment == nil, specifications.contains(where: { $0.environment == nil }) {
                throw SpecificationError(
                    description: "--flags: only one URL may serve the environments not named "
                        + "(the others take the form ENV=URL)")
            }
            specifications.append(specification)
        }
        return specifications
    }

    private static func check(_ url: String, argument: String) throws {
        let problem: String?
        if url.hasPrefix("file:") || url.hasPrefix("flagd:") {
            problem = url.split(separator: ":", maxSplits: 1).count < 2 ? "the path is missing" : nil
        } else if url.hasPrefix("http://") || url.hasPrefix("https://") {
            problem = URL(string: url)?.host == nil ? "not a URL" : nil
        } else if url.hasPrefix("unleash+") {
            problem = UnleashFlagStore.parse(url) == nil ? "write unleash+https://HOST/api?project=PROJECT" : nil
        } else if url.hasPrefix("launchdarkly+") {
            problem =
                LaunchDarklyFlagStore.parse(url) == nil ? "write launchdarkly+https://HOST?project=PROJECT" : nil
        } else {
            throw SpecificationError(
                description: "--flags takes file:PATH, http(s)://…, flagd:PATH, "
                    + "unleash+http(s)://HOST/api?project=P or launchdarkly+http(s)://HOST?project=P, "
                    + "optionally as ENV=URL; got \"\(argument)\"")
        }
        if let problem { throw SpecificationError(description: "--flags \(argument): \(problem)") }
    }

    /// Whether any store needs the HTTP client.
    public static func needsHTTP(_ specifications: [Specification]) -> Bool {
        specifications.contains {
            $0.url.hasPrefix("http") || $0.url.hasPrefix("unleash+") || $0.url.hasPrefix("launchdarkly+")
        }
    }

    /// Whether any store sends the token (so a missing one is worth a warning).
    public static func usesToken(_ specifications: [Specification]) -> Bool { needsHTTP(specifications) }

    /// Builds the store: the one store itself when there is a single plain argument, else a router.
    /// - Parameter callsAtOnce: the bound on calls in flight to each flag service (`--flag-calls`).
    public static func make(
        _ specifications: [Specification], token: String?, client: HTTPClient?,
        logger: Logger, callsAtOnce: Int = ServiceGate.defaultLimit
    ) throws -> FlagStore {
        func store(_ specification: Specification) throws -> FlagStore {
            let url = specification.url
            if url.hasPrefix("file:") { return FileFlagStore(path: String(url.dropFirst(5))) }
            if url.hasPrefix("flagd:"), let environment = specification.environment {
                return FlagdFlagStore(path: String(url.dropFirst(6)), environment: environment)
            }
            guard let client else { throw SpecificationError(description: "--flags \(url): no HTTP client") }
            if let (apiURL, project) = UnleashFlagStore.parse(url) {
                return UnleashFlagStore(
                    apiURL: apiURL, project: project, token: token, client: client, logger: logger,
                    gate: ServiceGate(limit: callsAtOnce))
            }
            if let (baseURL, project) = LaunchDarklyFlagStore.parse(url) {
                return LaunchDarklyFlagStore(
                    baseURL: baseURL, project: project, token: token, client: client, logger: logger,
                    gate: ServiceGate(limit: callsAtOnce))
            }
            return HTTPFlagStore(
                baseURL: url, token: token, client: client, logger: logger, gate: ServiceGate(limit: callsAtOnce))
        }
        if specifications.count == 1, specifications[0].environment == nil {
            return try store(specifications[0])
        }
        var routes: [(environment: String, store: FlagStore)] = []
        var fallback: FlagStore?
        for specification in specifications {
            if let environment = specification.environment {
                routes.append((environment, try store(specification)))
            } else {
                fallback = try store(specification)
            }
        }
        return RoutingFlagStore(routes: routes, fallback: fallback)
    }
}
