import Foundation
import Testing

@testable import RolloutCore

/// SPEC §4.0 rule 5 [r3] as a table: how the tip's line relates to the recorded one, and what that means.
@Suite struct TipTrustTests {
    @Test func theLineOnlyGrowsABehindTipWaitsARewriteIsNotTrusted() {
        func judge(_ relation: TipTrust.Relation?, recorded: String? = "a") -> TipTrust {
            TipTrust.judge(
                recordedTip: recorded, tip: "b", relation: relation, recordedBranch: "main", branchInForce: "main")
        }
        #expect(judge(.grows) == .trusted)
        #expect(judge(nil, recorded: nil) == .trusted)
        #expect(judge(.behind) == .behind(recorded: "a", tip: "b"))
        #expect(!judge(.behind).isError)
        #expect(judge(.diverged) == .rewritten(recorded: "a", tip: "b"))
        #expect(judge(.diverged).isError)
        let moved = TipTrust.judge(
            recordedTip: "a", tip: "b", relation: .grows, recordedBranch: "main", branchInForce: "release")
        #expect(moved == .otherBranch(recorded: "main", inForce: "release"))
    }

    @Test func aRewriteIsNotifiedOncePerNewTip() {
        let rewritten = TipTrust.rewritten(recorded: "a", tip: "b")
        #expect(rewritten.notifies(notified: nil))
        #expect(rewritten.notifies(notified: "c"))
        #expect(!rewritten.notifies(notified: "b"))
        #expect(!TipTrust.behind(recorded: "a", tip: "b").notifies(notified: nil))
        #expect(!TipTrust.fetchFailed("offline").notifies(notified: nil))
    }
}
