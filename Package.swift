// swift-tools-version:6.1
import PackageDescription

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
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
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
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Use cases the commands run: validate, plan, reconcile, approve.
        .target(
            name: "RolloutKit",
            dependencies: [
                "RolloutCore", "RolloutGit", "RolloutAdapters",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // `rolloutctl serve`: the status page, the JSON API and /metrics over the plan-mode run report.
        .target(
            name: "RolloutServe",
            dependencies: [
                "RolloutCore", "RolloutAdapters", "RolloutKit",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "rolloutctl",
            dependencies: [
                "RolloutKit", "RolloutAdapters", "RolloutCore", "RolloutGit", "RolloutServe",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The benchmarks' flag API (scripts/bench-*): the test suite's FakeFlagService on 127.0.0.1. Not shipped:
        // `rolloutctl` links nothing from RolloutTestSupport (scripts/check-link).
        .executableTarget(
            name: "rolloutctl-dev-flags",
            dependencies: [
                "RolloutTestSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Helpers for tests: fixture repositories made by `git`, an HTTP server on 127.0.0.1, the adapters' test
        // settings (a recording logger, fast retries).
        .target(
            name: "RolloutTestSupport",
            dependencies: [
                "RolloutCore", "RolloutAdapters",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "RolloutCoreTests", dependencies: ["RolloutCore", "RolloutTestSupport"]),
        .testTarget(name: "RolloutGitTests", dependencies: ["RolloutGit", "RolloutKit", "RolloutTestSupport"]),
        .testTarget(
            name: "RolloutAdaptersTests",
            dependencies: [
                "RolloutAdapters", "RolloutCore", "RolloutTestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(name: "RolloutKitTests", dependencies: ["RolloutKit", "RolloutTestSupport"]),
        .testTarget(name: "RolloutctlTests", dependencies: ["RolloutCore", "RolloutKit", "RolloutTestSupport"]),
        // `serve`'s pieces, and its routes in-process through HummingbirdTesting's router client.
        .testTarget(
            name: "RolloutServeTests",
            dependencies: [
                "RolloutServe", "RolloutCore", "RolloutKit", "RolloutAdapters", "RolloutTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // The fuzz targets (Fuzz/Targets, run by scripts/fuzz) replaying Fuzz/corpus and Fuzz/regressions.
        .testTarget(
            name: "RolloutFuzzTests",
            dependencies: ["RolloutCore", "RolloutGit", "RolloutAdapters", "RolloutKit"],
            path: "Fuzz", exclude: ["corpus", "regressions"], sources: ["Targets", "Replay"]),
    ]
)
