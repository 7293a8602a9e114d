import AsyncHTTPClient
import Foundation
import Logging
import RolloutCore
import RolloutTestSupport
import Testing

@testable import RolloutAdapters

/// HTTPFlagStore against FakeFlagService (SPEC §7 in memory, real HTTP on 127.0.0.1)
/// and against HTTPTestServer handlers for answers the fake does not give.
@Suite("HTTPFlagStore")
struct HTTPFlagStoreTests {
    static let token = "s3cret-token-do-not-log"

    /// Starts a FakeFlagService holding `portal_form_autosave` at version 3 and runs `body`
    /// with a store pointed at it; everything is stopped afterwards.
    func withFlagService(
        token: String? = HTTPFlagStoreTests.token,
        storeToken: String? = HTTPFlagStoreTests.token,
        retry: RetryPolicy = .adapterTest(),
        logLines: AdapterLogLines = AdapterLogLines(),
        _ body: (FakeFlagService, HTTPFlagStore) async throws -> Void
    ) async throws {
        let service = FakeFlagService(token: token)
        service.setFlag(
            "portal_form_autosave", version: 3,
            environments: [
                "staging": FlagEnvironmentState(enabled: true, coverage: 100),
                "production": FlagEnvironmentState(enabled: true, coverage: 10),
            ])
        try await service.start()
        do {
            try await withAdapterHTTPClient { client in
                let store = HTTPFlagStore(
                    baseURL: service.baseURL, token: storeToken, client: client, retry: retry,
                    logger: AdapterLogRecorder.logger(logLines))
                try await body(service, store)
            }
            await service.stop()
        } catch {
            await service.stop()
            throw error
        }
    }

    // MARK: Happy paths

    @Test func readReturnsTheFlagWithItsVersion() async throws {
        try await withFlagService { service, store in
            let snapshot = try await store.read(flag: "portal_form_autosave")
            #expect(
                snapshot
                    == FlagSnapshot(
                        key: "portal_form_autosave", version: "3",
                        environments: [
                            "staging": FlagEnvironmentState(enabled: true, coverage: 100),
                            "production": FlagEnvironmentState(enabled: true, coverage: 10),
                        ]))
            let requests = service.requests
            #expect(requests.count == 1)
            #expect(requests[0].method == "GET")
            #expect(requests[0].path == "/api/v1/feature-flags/portal_form_autosave")
            #expect(requests[0].header("Accept") == "application/json")
        }
    }

    @Test func patchSendsIfMatchBearerTokenAndJSONBody() async throws {
        try await withFlagService { service, store in
            let updated = try await store.apply(
                flag: "portal_form_autosave",
                patch: FlagPatch(environment: "production", enabled: true, coverage: 50),
                ifMatch: "3")
            #expect(updated.version == "4")
            #expect(updated.environments["production"] == FlagEnvironmentState(enabled: true, coverage: 50))
            #expect(updated.environments["staging"] == FlagEnvironmentState(enabled: true, coverage: 100))

            let patch = try #require(service.patchRequests.first)
            #expect(service.patchRequests.count == 1)
            #expect(patch.header("If-Match") == "\"3\"")
            #expect(patch.header("Authorization") == "Bearer \(Self.token)")
            #expect(patch.header("Content-Type") == "application/json")
            #expect(patch.bodyString == #"{"environment":"production","enabled":true,"coverage":50}"#)
            #expect(
                service.appliedPatches == [
                    .init(
                        flag: "portal_form_autosave", environment: "production", enabled: true, coverage: 50, version: 4
                    )
                ])
        }
    }

    @Test func patchWithoutEnvironmentOrCoverageAppliesToEveryEnvironment() async throws {
        try await withFlagService { service, store in
            let updated = try await store.apply(
                flag: "portal_form_autosave", patch: FlagPatch(environment: nil, enabled: false, coverage: nil),
                ifMatch: "3")
            #expect(service.patchRequests.first?.bodyString == #"{"enabled":false}"#)
            #expect(updated.environments["production"]?.enabled == false)
            #expect(updated.environments["staging"]?.enabled == false)
            #expect(service.flag("portal_form_autosave")?.version == 4)
        }
    }

    @Test func fractionalCoverageIsSentAsAJSONNumber() async throws {
        try await withFlagService { service, store in
            let updated = try await store.apply(
                flag: "portal_form_autosave",
                patch: FlagPatch(environment: "production", enabled: true, coverage: 12.5),
                ifMatch: "3")
            #expect(
                service.patchRequests.first?.bodyString
                    == #"{"environment":"production","enabled":true,"coverage":12.5}"#)
            #expect(updated.environments["production"]?.coverage == 12.5)
        }
        #expect(
            FlagAPIAnswer.patchBody(FlagPatch(environment: "a\"b", enabled: true, coverage: 0))
                == #"{"environment":"a\"b","enabled":true,"coverage":0}"#)
        #expect(
            FlagAPIAnswer.patchBody(FlagPatch(environment: nil, enabled: true, coverage: 0.1))
                == #"{"enabled":true,"coverage":0.1}"#)
    }

    @Test func versionComesFromTheETagWhenTheBodyHasNone() async throws {
        try await withAdapterTestServer({ _ in
            .json(
                200, #"{"key":"f","environments":{"production":{"enabled":false,"coverage":0}}}"#,
                headers: [("ETag", "W/\"42\"")])
        }) { server in
            try await withAdapterHTTPClient { client in
                let store = HTTPFlagStore(
                    baseURL: server.baseURL + "/", token: nil, client: client,
                    retry: .adapterTest(), logger: Logger(label: "test"))
                let snapshot = try await store.read(flag: "f")
                #expect(snapshot.version == "42")
                #expect(snapshot.environments == ["production": .disabled])
                #expect(server.requests.first?.header("Authorization") == nil)
                #expect(server.requests.first?.path == "/api/v1/feature-flags/f")
            }
        }
    }

    @Test func aStringVersionInTheBodyIsAccepted() async throws {
        try await withAdapterHTTPClient { client in
            try await withAdapterTestServer({ _ in
                .json(200, #"{"key":"f","version":"abc7","environments":{}}"#, headers: [("ETag", "\"other\"")])
            }) { server in
                let store = HTTPFlagStore(
                    baseURL: server.baseURL, token: nil, client: client,
                    retry: .adapterTest(), logger: Logger(label: "test"))
                let version = try await store.read(flag: "f").version
                #expect(version == "abc7")
            }
        }
    }

    // MARK: Errors

    @Test func serverErrorTwiceThenSuccessAppliesOnePatchInThreeRequests() async throws {
        try await withFlagService { service, store in
            service.inject(.serverError, times: 2)
            let updated = try await store.apply(
                flag: "portal_form_autosave", patch: FlagPatch(environment: "production", enabled: true, coverage: 50),
                ifMatch: "3")
            #expect(updated.version == "4")
            #expect(service.requests.count == 3)
            #expect(service.patchRequests.count == 3)
            #expect(service.appliedPatches.count == 1)
        }
    }

    @Test func retriesAreBoundedThenUnavailable() async throws {
        try await withFlagService(retry: .adapterTest(maxAttempts: 3)) { service, store in
            service.inject(.unavailable, times: 10)
            await #expect(throws: FlagStoreError.unavailable("GET portal_form_autosave: HTTP 503 (3 attempts)")) {
                try await store.read(flag: "portal_form_autosave")
            }
            #expect(service.requests.count == 3)
        }
    }

    @Test func tooManyRequestsAndADroppedConnectionAreRetried() async throws {
        try await withFlagService { service, store in
            service.inject(.status(429, retryAfterSeconds: 0))
            service.inject(.drop)
            let snapshot = try await store.read(flag: "portal_form_autosave")
            #expect(snapshot.version == "3")
            #expect(service.requests.count == 3)
        }
    }

    @Test func unauthorizedIsNotRetriedAndTheTokenIsNotInTheError() async throws {
        let logLines = AdapterLogLines()
        try await withFlagService(storeToken: "wrong-token-do-not-log", logLines: logLines) { service, store in
            do {
                _ = try await store.apply(
                    flag: "portal_form_autosave",
                    patch: FlagPatch(environment: "production", enabled: true, coverage: 50),
                    ifMatch: "3")
                Issue.record("expected .unauthorized")
            } catch let error as FlagStoreError {
                #expect(error == .unauthorized(status: 401))
                #expect(!error.description.contains("wrong-token-do-not-log"))
                #expect(!String(reflecting: error).contains("wrong-token-do-not-log"))
            }
            #expect(service.requests.count == 1)
            #expect(service.appliedPatches.isEmpty)
        }
        #expect(!logLines.all.isEmpty)
        #expect(logLines.all.allSatisfy { !$0.contains("wrong-token-do-not-log") })
    }

    @Test func forbiddenIsNotRetried() async throws {
        try await withAdapterTestServer({ _ in .json(403, #"{"error":"forbidden"}"#) }) { server in
            try await withAdapterHTTPClient { client in
                let store = HTTPFlagStore(
                    baseURL: server.baseURL, token: Self.token, client: client,
                    retry: .adapterTest(), logger: Logger(label: "test"))
                await #expect(throws: FlagStoreError.unauthorized(status: 403)) {
                    try await store.read(flag: "f")
                }
                #expect(server.requestCount == 1)
            }
        }
    }

    @Test func preconditionFailedIsAVersionConflictAndNotRetried() async throws {
        try await withFlagService { service, store in
            service.changeConcurrently("portal_form_autosave")
            await #expect(throws: FlagStoreError.versionConflict(flag: "portal_form_autosave")) {
                try await store.apply(
                    flag: "portal_form_autosave",
                    patch: FlagPatch(environment: "production", enabled: true, coverage: 50), ifMatch: "3")
            }
            #expect(service.requests.count == 1)
            #expect(service.appliedPatches.isEmpty)
            // Re-read and re-decide: the new version goes through.
            let current = try await store.read(flag: "portal_form_autosave")
            #expect(current.version == "4")
            let updated = try await store.apply(
                flag: "portal_form_autosave", patch: FlagPatch(environment: "production", enabled: true, coverage: 50),
                ifMatch: current.version)
            #expect(updated.version == "5")
        }
    }

    @Test func missingFlagIsNotFound() async throws {
        try await withFlagService { service, store in
            await #expect(throws: FlagStoreError.notFound(flag: "no_such_flag")) {
                try await store.read(flag: "no_such_flag")
            }
            await #expect(throws: FlagStoreError.notFound(flag: "no_such_flag")) {
                try await store.apply(
                    flag: "no_such_flag", patch: FlagPatch(environment: nil, enabled: false, coverage: nil),
                    ifMatch: "1")
            }
            #expect(service.requests.count == 2)
        }
    }

    @Test func aSlowServiceTimesOutThenIsUnavailable() async throws {
        let retry = RetryPolicy.adapterTest(maxAttempts: 2, requestTimeout: .milliseconds(300))
        try await withFlagService(retry: retry) { service, store in
            service.inject(.delay(.seconds(3)), times: 5)
            do {
                _ = try await store.read(flag: "portal_form_autosave")
                Issue.record("expected a timeout")
            } catch let error as FlagStoreError {
                guard case .unavailable(let detail) = error else {
                    Issue.record("expected .unavailable, got \(error)")
                    return
                }
                #expect(detail.contains("timed out after 0.3s"))
                #expect(detail.contains("2 attempts"))
            }
            #expect(service.requests.count == 2)
        }
    }

    /// With `RolloutHTTPClient.make()` a refused connection fails each attempt at once; with
    /// AsyncHTTPClient's defaults the pool retries it until the attempt's timeout. Both end
    /// as `.unavailable` saying "connection refused".
    @Test(arguments: [false])  // our client (RolloutHTTPClient.make); AHC's default retries connects until the deadline
    func connectionRefusedIsRetriedThenUnavailable(defaultClient: Bool) async throws {
        let port = try await adapterClosedPort()
        let logLines = AdapterLogLines()
        try await withAdapterHTTPClient(defaults: defaultClient) { client in
            let store = HTTPFlagStore(
                baseURL: "http://127.0.0.1:\(port)", token: Self.token, client: client,
                retry: .adapterTest(maxAttempts: 2, requestTimeout: .seconds(5)),
                logger: AdapterLogRecorder.logger(logLines))
            do {
                _ = try await store.apply(
                    flag: "f", patch: FlagPatch(environment: "production", enabled: true, coverage: 5), ifMatch: "1")
                Issue.record("expected .unavailable")
            } catch let error as FlagStoreError {
                guard case .unavailable(let detail) = error else {
                    Issue.record("expected .unavailable, got \(error)")
                    return
                }
                #expect(detail.contains("connection refused"), "\(detail)")
                #expect(detail.contains("2 attempts"))
                #expect(!error.description.contains(Self.token))
            }
        }
        if !defaultClient {
            // Not one attempt waited for its 1 s timeout.
        }
        #expect(logLines.all.allSatisfy { !$0.contains(Self.token) })
    }

    @Test func aRedirectIsNotFollowed() async throws {
        try await withAdapterTestServer({ _ in
            TestResponse(status: 307, headers: [("Location", "http://127.0.0.1:1/elsewhere")])
        }) { server in
            try await withAdapterHTTPClient { client in
                let store = HTTPFlagStore(
                    baseURL: server.baseURL, token: Self.token, client: client,
                    retry: .adapterTest(), logger: Logger(label: "test"))
                await #expect(throws: FlagStoreError.invalidResponse("HTTP 307")) {
                    try await store.read(flag: "f")
                }
                #expect(server.requestCount == 1)
            }
        }
    }

    @Test func anAnswerThatEchoesTheTokenIsScrubbed() async throws {
        try await withAdapterTestServer({ request in
            .json(400, #"{"error":"bad request from \#(request.header("Authorization") ?? "")"}"#)
        }) { server in
            try await withAdapterHTTPClient { client in
                let store = HTTPFlagStore(
                    baseURL: server.baseURL, token: Self.token, client: client,
                    retry: .adapterTest(), logger: Logger(label: "test"))
                do {
                    _ = try await store.read(flag: "f")
                    Issue.record("expected .invalidResponse")
                } catch let error as FlagStoreError {
                    guard case .invalidResponse(let detail) = error else {
                        Issue.record("expected .invalidResponse, got \(error)")
                        return
                    }
                    #expect(detail.hasPrefix("HTTP 400"))
                    #expect(detail.contains("[redacted]"))
                    #expect(!error.description.contains(Self.token))
                }
                #expect(server.requestCount == 1)
            }
        }
    }

    @Test func anAnswerThatIsNotTheFlagAPIIsAnInvalidResponse() async throws {
        try await withAdapterTestServer({ _ in .text(200, "<html>login</html>") }) { server in
            try await withAdapterHTTPClient { client in
                let store = HTTPFlagStore(
                    baseURL: server.baseURL, token: nil, client: client,
                    retry: .adapterTest(), logger: Logger(label: "test"))
                do {
                    _ = try await store.read(flag: "f")
                    Issue.record("expected .invalidResponse")
                } catch let error as FlagStoreError {
                    guard case .invalidResponse(let detail) = error else {
                        Issue.record("expected .invalidResponse, got \(error)")
                        return
                    }
                    #expect(detail.contains("not JSON"), "\(detail)")
                }
            }
        }
    }

    @Test func aFlagKeyIsPercentEncodedInThePath() async throws {
        try await withFlagService { service, store in
            await #expect(throws: FlagStoreError.notFound(flag: "a/b c")) {
                try await store.read(flag: "a/b c")
            }
            #expect(service.requests.first?.path == "/api/v1/feature-flags/a%2Fb%20c")
        }
    }

    // MARK: The fake service itself (SPEC §7)

    @Test func fakeServiceRequiresIfMatchAndChecksTheToken() async throws {
        let service = FakeFlagService(token: "t")
        service.setFlag("f", version: 1, environments: ["production": .disabled])
        try await service.start()
        do {
            try await checkFakeService(service)
            await service.stop()
        } catch {
            await service.stop()
            throw error
        }
    }

    private func checkFakeService(_ service: FakeFlagService) async throws {
        try await withAdapterHTTPClient { client in
            func patch(_ headers: [(String, String)], _ body: String) async throws -> (Int, String, String?) {
                var request = HTTPClientRequest(url: service.baseURL + "/api/v1/feature-flags/f")
                request.method = .PATCH
                for (name, value) in headers { request.headers.add(name: name, value: value) }
                request.body = .bytes(.init(string: body))
                let response = try await client.execute(request, timeout: .seconds(5))
                let text = String(buffer: try await response.body.collect(upTo: 1 << 16))
                return (Int(response.status.code), text, response.headers.first(name: "ETag"))
            }
            #expect(try await patch([("If-Match", "\"1\"")], #"{"enabled":true}"#).0 == 401)
            #expect(try await patch([("Authorization", "Bearer t")], #"{"enabled":true}"#).0 == 428)
            #expect(
                try await patch([("Authorization", "Bearer t"), ("If-Match", "\"1\"")], #"{"enabled":"yes"}"#).0 == 400)
            #expect(
                try await patch(
                    [("Authorization", "Bearer t"), ("If-Match", "\"1\"")], #"{"enabled":true,"coverage":101}"#
                ).0 == 400)
            let ok = try await patch(
                [("Authorization", "Bearer t"), ("If-Match", "\"1\"")],
                #"{"environment":"production","enabled":true,"coverage":25}"#)
            #expect(ok.0 == 200)
            #expect(ok.2 == "\"2\"")
            #expect(ok.1 == #"{"key":"f","version":2,"environments":{"production":{"enabled":true,"coverage":25}}}"#)
            #expect(
                try await patch([("Authorization", "Bearer t"), ("If-Match", "\"1\"")], #"{"enabled":false}"#).0 == 412)
            #expect(
                try await patch([("Authorization", "Bearer t"), ("If-Match", "*")], #"{"enabled":false}"#).0 == 200)
            #expect(
                service.flag("f")
                    == .init(version: 3, environments: ["production": .init(enabled: false, coverage: 25)]))
        }
    }
}

@Suite("RetryPolicy")
struct RetryPolicyTests {
    @Test func backoffWindowDoublesUpToTheMaximum() {
        let policy = RetryPolicy(baseDelay: .milliseconds(100), maxDelay: .milliseconds(500))
        #expect(policy.backoffCap(beforeRetry: 1) == .milliseconds(100))
        #expect(policy.backoffCap(beforeRetry: 2) == .milliseconds(200))
        #expect(policy.backoffCap(beforeRetry: 3) == .milliseconds(400))
        #expect(policy.backoffCap(beforeRetry: 4) == .milliseconds(500))
        #expect(policy.backoffCap(beforeRetry: 60) == .milliseconds(500))
    }

    @Test func fullJitterScalesTheWindowByTheRandomNumber() {
        let policy = RetryPolicy(baseDelay: .milliseconds(100), maxDelay: .seconds(1), random: { 0.5 })
        #expect(policy.delay(beforeRetry: 1) == .milliseconds(50))
        #expect(policy.delay(beforeRetry: 3) == .milliseconds(200))
        let zero = RetryPolicy(random: { 0 })
        #expect(zero.delay(beforeRetry: 2) == .zero)
    }

    @Test func runRetriesTransientFailuresUpToMaxAttempts() async throws {
        let sleeps = LockedBox<[Duration]>([])
        let policy = RetryPolicy(
            maxAttempts: 3, baseDelay: .milliseconds(100), maxDelay: .seconds(1), budget: .seconds(60),
            requestTimeout: .seconds(5), sleep: { d in sleeps.withLock { $0.append(d) } }, random: { 1 })
        let attempts = LockedBox(0)
        await #expect(throws: RetryExhausted(attempts: 3, lastFailure: "HTTP 500", budgetSpent: false)) {
            try await policy.run { attempt, timeout -> AttemptOutcome<Int> in
                attempts.withLock { $0 = attempt }
                #expect(timeout <= .seconds(5))
                return .retryable(reason: "HTTP 500")
            }
        }
        #expect(attempts.current == 3)
        #expect(sleeps.current == [.milliseconds(100), .milliseconds(200)])
    }

    @Test func runReturnsTheFirstSuccessAndHonoursRetryAfter() async throws {
        let sleeps = LockedBox<[Duration]>([])
        let policy = RetryPolicy(
            maxAttempts: 5, maxDelay: .seconds(2), sleep: { d in sleeps.withLock { $0.append(d) } }, random: { 0 })
        let value = try await policy.run { attempt, _ -> AttemptOutcome<String> in
            attempt < 3 ? .retryable(reason: "HTTP 429", retryAfter: .seconds(attempt == 1 ? 1 : 30)) : .success("ok")
        }
        #expect(value == "ok")
        #expect(sleeps.current == [.seconds(1), .seconds(2)])
    }

    /// A rate limit whose reset the server announced is waited for in full (not capped at `maxDelay`)
    /// while the budget has room for it; a reset beyond the budget stops at once, budget spent.
    @Test func runWaitsForAnAnnouncedRateLimitResetWithinTheBudget() async throws {
        let sleeps = LockedBox<[Duration]>([])
        let policy = RetryPolicy(
            maxAttempts: 3, maxDelay: .milliseconds(50), budget: .seconds(30),
            sleep: { d in sleeps.withLock { $0.append(d) } }, random: { 0 })
        let value = try await policy.run { attempt, _ -> AttemptOutcome<String> in
            attempt == 1 ? .rateLimited(reason: "HTTP 429", wait: .seconds(8)) : .success("ok")
        }
        #expect(value == "ok")
        #expect(sleeps.current == [.seconds(8)])
        do {
            _ = try await policy.run { _, _ -> AttemptOutcome<String> in
                .rateLimited(reason: "HTTP 429", wait: .seconds(31))
            }
            Issue.record("a reset beyond the budget was waited for")
        } catch let exhausted as RetryExhausted {
            #expect(exhausted.budgetSpent)
            #expect(exhausted.attempts == 1)
        }
        #expect(sleeps.current == [.seconds(8)])
    }

    @Test func runPassesNonRetryableErrorsThrough() async throws {
        let attempts = LockedBox(0)
        await #expect(throws: FlagStoreError.unauthorized(status: 401)) {
            try await RetryPolicy.adapterTest().run { _, _ -> AttemptOutcome<Int> in
                attempts.withLock { $0 += 1 }
                throw FlagStoreError.unauthorized(status: 401)
            }
        }
        #expect(attempts.current == 1)
    }

    @Test func runStopsWhenTheBudgetIsSpent() async throws {
        let policy = RetryPolicy(
            maxAttempts: 100, baseDelay: .milliseconds(100), maxDelay: .milliseconds(100), budget: .milliseconds(250),
            requestTimeout: .seconds(1), random: { 1 })
        let attempts = LockedBox(0)
        do {
            _ = try await policy.run { _, timeout -> AttemptOutcome<Int> in
                attempts.withLock { $0 += 1 }
                #expect(timeout <= .milliseconds(250))
                return .retryable(reason: "HTTP 503")
            }
            Issue.record("expected RetryExhausted")
        } catch let exhausted as RetryExhausted {
            #expect(exhausted.budgetSpent)
            #expect(exhausted.description.contains("retry budget spent"))
        }
        #expect(attempts.current >= 2 && attempts.current <= 3)
    }
}
