import Foundation
import RolloutCore
import RolloutTestSupport
import Testing

/// The bytes the history walk's cache keeps a decoded rollout folder in (issue 22): read back, every
/// field equals the folder as decoded: plans with every optional part, errors, approvals with and without
/// records, checks of health sets.
@Suite struct RolloutFilesCodecTests {
    static func roundTrip(_ rollout: DecodedRollout) -> DecodedRollout? {
        var bytes: [UInt8] = [0xAA]  // written after what is there, read from where it starts
        RolloutFilesCodec.encode(rollout, into: &bytes)
        return bytes.withUnsafeBytes { buffer -> DecodedRollout? in
            var offset = 1
            let read = RolloutFilesCodec.decode(buffer, offset: &offset)
            return offset == buffer.count ? read : nil
        }
    }

    @Test func everyFieldReadsBack() throws {
        let panels =
            #""dashboard": { "panels": ["#
            + #"{ "title": "Error rate", "query": "sum(rate(x[5m]))", "unit": "ratio" },"#
            + #"{ "title": "Counts", "query": "sum(increase(y[{{window}}]))" } ] },"#
        let plan = validPlanJSON.replacingOccurrences(of: #""rollback": {"#, with: panels + #" "rollback": {"#)
        let invalid = validPlanJSON.replacingOccurrences(of: #""coverage": 10,"#, with: #""coverage": 130,"#)
        let approval = RolloutFixtures.approval(
            rollout: "exp-001-autosave", phase: "canary-10", role: "sre", approver: "dana@example.com",
            plan: String(repeating: "a", count: 40), comment: "looks good ✓")
        let snapshot = loadSnapshot([
            "policies/approvers.json": approversJSON,
            "rollouts/exp-001-autosave/plan.json": plan,
            "rollouts/exp-001-autosave/approvals/canary-10/sre-dana.json": approval,
            "rollouts/exp-001-autosave/approvals/canary-10/broken.json": "{",
            "rollouts/exp-001-autosave/approvals/nope/x.json": approval,
            "rollouts/other/plan.json": invalid.replacingOccurrences(of: "exp-001-autosave", with: "other")
                .replacingOccurrences(of: "portal_form_autosave", with: "other_flag"),
            "rollouts/other/notes.txt": "stray",
        ])
        let full = try #require(snapshot.rollout(named: "exp-001-autosave"))
        #expect(full.plan?.panels.count == 2, "\(full.allDiagnostics)")
        #expect(full.approvals.count == 3)
        #expect(full.approvals.contains { $0.record?.comment != nil } && full.approvals.contains { $0.record == nil })
        let broken = try #require(snapshot.rollout(named: "other"))
        #expect(broken.plan == nil && !broken.diagnostics.isEmpty)
        for rollout in [full, broken] {
            for (flag, position) in [(String?.none, SourcePosition?.none), ("f", SourcePosition(line: 4, column: 11))] {
                let decoded = DecodedRollout(files: rollout, flag: flag, flagPosition: position)
                #expect(Self.roundTrip(decoded) == decoded, "\(rollout.name)")
            }
        }
        var named = full
        named.hasNameProblem = true
        named.checks = []
        let decoded = DecodedRollout(files: named, flag: nil, flagPosition: nil)
        #expect(Self.roundTrip(decoded) == decoded)
    }

    @Test func truncatedOrDamagedBytesReadAsNothing() throws {
        let snapshot = loadSnapshot([
            "policies/approvers.json": approversJSON, "rollouts/exp-001-autosave/plan.json": validPlanJSON,
        ])
        let rollout = DecodedRollout(
            files: try #require(snapshot.rollout(named: "exp-001-autosave")), flag: "portal_form_autosave",
            flagPosition: SourcePosition(line: 4, column: 15))
        var bytes: [UInt8] = []
        RolloutFilesCodec.encode(rollout, into: &bytes)
        for length in [0, 1, 9, bytes.count / 2, bytes.count - 1] {
            let read = Array(bytes.prefix(length)).withUnsafeBytes { buffer -> DecodedRollout? in
                var offset = 0
                return RolloutFilesCodec.decode(buffer, offset: &offset)
            }
            #expect(read == nil, "\(length) bytes")
        }
        var huge = bytes
        huge.replaceSubrange(0..<8, with: [UInt8](repeating: 0xFF, count: 8))  // the name's length: -1
        let read = huge.withUnsafeBytes { buffer -> DecodedRollout? in
            var offset = 0
            return RolloutFilesCodec.decode(buffer, offset: &offset)
        }
        #expect(read == nil)
    }
}
