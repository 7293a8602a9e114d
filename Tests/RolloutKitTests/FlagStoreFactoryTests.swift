import Foundation
import Logging
import RolloutCore
import RolloutTestSupport
import Testing

@testable import RolloutAdapters
@testable import RolloutKit

/// `--flags` (SPEC §6): the forms, the per-environment routing, and what is refused before anything opens.
@Suite struct FlagStoreFactoryTests {
    typealias Spec = FlagStoreFactory.Specification

    @Test func forms() throws {
        #expect(try FlagStoreFactory.parse([]) == [Spec(environment: nil, url: "file:.rolloutctl/flags.json")])
        #expect(
            try FlagStoreFactory.parse([
                "staging=flagd:/etc/flagd/staging.json",
                "unleash+https://unleash.example.com/api?project=portal",
            ]) == [
                Spec(environment: "staging", url: "flagd:/etc/flagd/staging.json"),
                Spec(environment: nil, url: "unleash+https://unleash.example.com/api?project=portal"),
            ])
        // A URL with "=" in its path or query is not an ENV= form.
        #expect(
            try FlagStoreFactory.parse(["file:/tmp/a=b.json"])
                == [Spec(environment: nil, url: "file:/tmp/a=b.json")])
        #expect(try FlagStoreFactory.parse(["production=https://flags.example.com"]).first?.environment == "production")
    }

    @Test func refusals() {
        let cases: [([String], String)] = [
            (["flagd:/etc/flagd.json"], "a flagd file is one environment"),
            (["ftp://x"], "--flags takes"),
            (["a=file:/x", "a=file:/y"], "names environment a twice"),
            (["file:/x", "https://y"], "only one URL may serve the environments not named"),
            (["unleash+https://x/api?project="], "unleash+https://HOST/api?project=PROJECT"),
            (["production=launchdarkly+https://app.launchdarkly.com"], "launchdarkly+https://HOST?project=PROJECT"),
            (["launchdarkly://app.launchdarkly.com?project=p"], "--flags takes"),
            (["production=flagd:"], "the path is missing"),
        ]
        for (arguments, expected) in cases {
            #expect(throws: FlagStoreFactory.SpecificationError.self) { try FlagStoreFactory.parse(arguments) }
            do {
                _ = try FlagStoreFactory.parse(arguments)
            } catch {
                #expect("\(error)".contains(expected), "\(arguments): \(error)")
            }
        }
    }

    @Test func buildsOneStoreOrARouter() throws {
        let logger = Logger(label: "test")
        let single = try FlagStoreFactory.make(
            FlagStoreFactory.parse(["file:/tmp/x.json"]), token: nil, client: nil,
            logger: logger)
        #expect(single is FileFlagStore)
        let routed = try FlagStoreFactory.make(
            FlagStoreFactory.parse(["staging=flagd:/tmp/s.json", "file:/tmp/rest.json"]), token: nil, client: nil,
            logger: logger)
        let router = try #require(routed as? RoutingFlagStore)
        #expect(router.routes.map(\.environment) == ["staging"])
        #expect(router.routes.first?.store is FlagdFlagStore)
        #expect(router.fallback is FileFlagStore)
        #expect(router.stagesWrites)
        #expect(FlagStoreFactory.needsHTTP(try FlagStoreFactory.parse(["production=unleash+http://h/api"])))
    }
}
