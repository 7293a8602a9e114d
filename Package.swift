// swift-tools-version:6.1
import PackageDescription

// The products more than one target depends on.
let logging = Target.Dependency.product(name: "Logging", package: "swift-log")
let asyncHTTPClient = Target.Dependency.product(name: "AsyncHTTPClient", package: "async-http-client")
let nioCore = Target.Dependency.product(name: "NIOCore", package: "swift-nio")
let serviceLifecycle = Target.Dependency.product(name: "ServiceLifecycle", package: "swift-service-lifecycle")
let grdb = Target.Dependency.product(name: "GRDB", package: "GRDB.swift")
let httpTypes = Target.Dependency.product(name: "HTTPTypes", package: "swift-http-types")
let hummingbird = Target.Dependency.product(name: "Hummingbird", package: "hummingbird")
let argumentParser = Target.Dependency.product(name: "ArgumentParser", package: "swift-argument-parser")
let crypto = Target.Dependency.product(name: "Crypto", package: "swift-crypto")
let cryptoExtras = Target.Dependency.product(name: "_CryptoExtras", package: "swift-crypto")

let package = Package(
    name: "rolloutctl",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "rolloutctl", targets: ["rolloutctl"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // libgit2 from the system (Debian: libgit2-dev).
        .systemLibrary(
            name: "CLibgit2",
            pkgConfig: "libgit2",
            providers: [.apt(["libgit2-dev"])]
        ),
        // Pure core: file formats, validation, approval rules, the phase state machine. No I/O.
        .target(
            name: "RolloutCore",
            dependencies: [
                crypto,
                cryptoExtras,
            ]
        ),
        // Reads a rollout repository through libgit2: refs, trees, blobs, history, signatures.
        .target(
            name: "RolloutGit",
            dependencies: ["CLibgit2", "RolloutCore"]
        ),
        // Flag stores, metrics providers, the state database, notifications.
        .target(
            name: "RolloutAdapters",
            dependencies: [
                "RolloutCore",
                asyncHTTPClient,
                nioCore,
                grdb,
                .product(name: "PostgresNIO", package: "postgres-nio"),
                logging,
            ]
        ),
        // Use cases the commands run: validate, plan, reconcile, approve.
        .target(
            name: "RolloutKit",
            dependencies: [
                "RolloutCore", "RolloutGit", "RolloutAdapters",
                logging,
                serviceLifecycle,
                asyncHTTPClient,
            ]
        ),
        // `rolloutctl serve`: the status page, the JSON API and /metrics over the plan-mode run report.
        .target(
            name: "RolloutServe",
            dependencies: [
                "RolloutCore", "RolloutAdapters", "RolloutKit",
                hummingbird,
                nioCore,
                httpTypes,
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                logging,
                serviceLifecycle,
            ]
        ),
        .executableTarget(
            name: "rolloutctl",
            dependencies: [
                "RolloutKit", "RolloutAdapters", "RolloutCore", "RolloutGit", "RolloutServe",
                argumentParser,
                asyncHTTPClient,
                logging,
                serviceLifecycle,
            ]
        ),
        // The benchmarks' flag API (scripts/bench-*): the test suite's FakeFlagService on 127.0.0.1. Not shipped:
        // `rolloutctl` links nothing from RolloutTestSupport (scripts/check-link).
        .executableTarget(
            name: "rolloutctl-dev-flags",
            dependencies: [
                "RolloutTestSupport",
                argumentParser,
            ]
        ),
        // Helpers for tests: fixture repositories made by `git`, an HTTP server on 127.0.0.1, the adapters' test
        // settings (a recording logger, fast retries).
        .target(
            name: "RolloutTestSupport",
            dependencies: [
                "RolloutCore", "RolloutAdapters",
                asyncHTTPClient,
                logging,
                nioCore,
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // Each test target declares what its files import.
        .testTarget(
            name: "RolloutCoreTests",
            dependencies: [
                "RolloutCore", "RolloutTestSupport",
                crypto,
                cryptoExtras,
            ]),
        // RolloutKit: `validate`'s verdict on the oracles' histories (EvidenceMeaningTests, ApprovalTrustTests).
        .testTarget(
            name: "RolloutGitTests", dependencies: ["RolloutGit", "RolloutCore", "RolloutKit", "RolloutTestSupport"]),
        .testTarget(
            name: "RolloutAdaptersTests",
            dependencies: [
                "RolloutAdapters", "RolloutCore", "RolloutTestSupport",
                asyncHTTPClient,
                grdb,
                logging,
            ]),
        .testTarget(
            name: "RolloutKitTests",
            dependencies: [
                "RolloutKit", "RolloutAdapters", "RolloutCore", "RolloutGit", "RolloutTestSupport",
                asyncHTTPClient,
                logging,
                nioCore,
            ]),
        .testTarget(
            name: "RolloutctlTests", dependencies: ["RolloutCore", "RolloutGit", "RolloutKit", "RolloutTestSupport"]),
        // `serve`'s pieces, and its routes in-process through HummingbirdTesting's router client.
        .testTarget(
            name: "RolloutServeTests",
            dependencies: [
                "RolloutServe", "RolloutCore", "RolloutKit", "RolloutAdapters", "RolloutTestSupport",
                hummingbird,
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                httpTypes,
                logging,
            ]),
        // The fuzz targets (Fuzz/Targets, run by scripts/fuzz) replaying Fuzz/corpus and Fuzz/regressions.
        .testTarget(
            name: "RolloutFuzzTests",
            dependencies: ["RolloutCore", "RolloutGit", "RolloutAdapters"],
            path: "Fuzz", exclude: ["corpus", "regressions"], sources: ["Targets", "Replay"]),
    ]
)
