import Foundation
import RolloutCore
import RolloutTestSupport
import Testing

@testable import RolloutAdapters
@testable import RolloutKit

/// SPEC §6 [r3]: a flag service's answer must be about the flag asked for. Served for real on
/// 127.0.0.1: the fake services answer a GET of the rollout's flag with another flag (disabled),
/// which read as the rollout's flag would make it `overridden` for good and notify falsely.
@Suite(.serialized) struct AnswerAboutAnotherFlagTests {
    static let other = "other_flag"

    /// The outcome every store must give: an error naming both keys, no status change, nothing
    /// queued, nothing written.
    static func expectRefused(_ report: RunReport, statePath: String) throws {
        let rollout = try #require(report.rollout())
        #expect(rollout.status != .overridden)
        #expect(rollout.changes.isEmpty)
        #expect(rollout.errors.count == 1)
        let message = rollout.errors.first?.message ?? ""
        #expect(message.contains("portal_form_autosave") && message.contains(Self.other), "\(message)")
        #expect(report.errorCount == 1)
        let state = try #require(try SQLiteStateStore.openIfExists(path: statePath))
        #expect(try state.rollout("exp-001-autosave")?.record.status != .overridden)
        #expect(try state.outbox().allSatisfy { !$0.message.body.contains("\"status\":\"overridden\"") })
        #expect(try state.history(rollout: "exp-001-autosave").allSatisfy { $0.reason != "overridden" })
    }

    @Test func theFlagAPIAnsweringAboutAnotherKeyIsAnErrorNotAnOverride() async throws {
        try await FlagServiceWorld.with { w in
            try await w.reachCanary10()
            w.service.setFlag(Self.other, environments: ["staging": .disabled, "production": .disabled])
            w.service.answer(FlagServiceWorld.flag, with: Self.other)
            let patches = w.service.appliedPatches.count

            for hours in [2.0, 3] {
                try Self.expectRefused(try await w.run(hours: hours), statePath: w.world.statePath)
            }
            #expect(w.service.appliedPatches.count == patches)
            #expect(w.environments() == ["staging": .on(100), "production": .on(10)])
        }
    }

    @Test func theFlagAPIStoreRefusesTheAnswerDirectly() async throws {
        try await FlagServiceWorld.with { w in
            w.service.setFlag(Self.other, environments: ["production": .disabled])
            w.service.answer(FlagServiceWorld.flag, with: Self.other)
            await #expect(throws: FlagStoreError.self) { try await w.world.flags.read(flag: FlagServiceWorld.flag) }
            // Asked for itself, the other flag reads fine.
            let itself = try await w.world.flags.read(flag: Self.other)
            #expect(itself.key == Self.other)
        }
    }

    @Test func unleashAnsweringAboutAnotherFeatureIsAnErrorNotAnOverride() async throws {
        try await FlagBackendWorld.with { w in
            w.world.flags = w.unleashStore()
            try w.world.seed()
            try await w.reconcile(hours: 0)
            try w.world.approveCanary10()
            try await w.reconcile(hours: 1)
            w.unleash.setFeature(Self.other, environments: [.init(name: "staging"), .init(name: "production")])
            w.unleash.answer(FlagBackendWorld.flag, with: Self.other)
            let writes = w.unleash.writes.count

            for hours in [2.0, 3] {
                try Self.expectRefused(try await w.world.run(hours: hours), statePath: w.world.statePath)
            }
            #expect(w.unleash.writes.count == writes)
        }
    }

    /// The file stores look a flag up by its key; the answer they give names it.
    @Test func fileAndFlagdStoresAnswerWithTheKeyAskedFor() async throws {
        try await FlagBackendWorld.with { w in
            let flagd = try w.flagdStore("production")
            #expect(try await flagd.read(flag: FlagBackendWorld.flag).key == FlagBackendWorld.flag)
            await #expect(throws: FlagStoreError.notFound(flag: Self.other)) {
                try await flagd.read(flag: Self.other)
            }
            let file = FileFlagStore(path: w.files.file("flags.json"))
            #expect(try await file.read(flag: FlagBackendWorld.flag).key == FlagBackendWorld.flag)
        }
    }

    @Test func theCheckNamesBothKeys() throws {
        let snapshot = FlagSnapshot(key: Self.other, version: "1", environments: [:])
        #expect(throws: FlagStoreError.self) { try snapshot.answering("demo_flag", service: "the flag service") }
        #expect(try snapshot.answering(Self.other, service: "x").key == Self.other)
        let error = FlagStoreError.answerAboutAnotherFlag(asked: "demo_flag", answered: Self.other, service: "Unleash")
        #expect(error.description.contains("demo_flag") && error.description.contains(Self.other))
    }
}
