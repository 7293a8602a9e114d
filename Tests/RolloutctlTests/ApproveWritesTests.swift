import Foundation
import RolloutCore
import RolloutGit
import RolloutKit
import RolloutTestSupport
import Testing

/// SPEC §6 [r3]: `approve` writes only inside the work tree's `rollouts/` or
/// `policies/approvals/` (a folder on the way that is a symlink is refused), and never replaces
/// another approver's file. Real repositories, real symlinks.
@Suite struct ApproveWritesTests {
    typealias F = RolloutFixtures

    static func fixture() throws -> GitFixture {
        let fixture = try GitFixture()
        var roles = F.defaultRoles
        roles["sre"] = ["dana@example.com", "dana@sre.example.net"]
        try fixture.commitFiles(
            [
                "policies/approvers.json": F.policy(identity: "author", roles: roles),
                "rollouts/exp-001/plan.json": F.plan(name: "exp-001"),
            ], "Plan")
        return fixture
    }

    static func approve(_ fixture: GitFixture, _ approver: String, role: String = "sre", phase: String = "canary-10")
        throws -> ApproveResult
    {
        try ApproveResult.run(
            repositoryPath: fixture.path, rollout: "exp-001", phase: phase, role: role, approver: approver,
            comment: nil)
    }

    @Test func twoApproversWithTheSameLocalPartWriteTwoFiles() throws {
        let fixture = try Self.fixture()
        let first = try Self.approve(fixture, "dana@example.com")
        let second = try Self.approve(fixture, "dana@sre.example.net")
        #expect(first.path == "rollouts/exp-001/approvals/canary-10/sre-dana@example.com.json")
        #expect(second.path == "rollouts/exp-001/approvals/canary-10/sre-dana@sre.example.net.json")
        for result in [first, second] {
            let data = try Data(contentsOf: URL(fileURLWithPath: fixture.path + "/" + result.path))
            #expect(String(decoding: data, as: UTF8.self).contains(result.record.approver))
        }
        // The same approval again replaces its own file.
        #expect(try Self.approve(fixture, "dana@example.com").path == first.path)
    }

    @Test func fileNamesAreSafeAndOnePerAddress() {
        let names = [
            "dana@example.com", "Dana@example.com", "dana+ops@example.com", "da/na@example.com",
            "da%2Fna@example.com", "da na@example.com", "dänä@example.com", "../x@example.com",
        ].map(ApproveResult.fileName)
        #expect(Set(names).count == names.count, "\(names)")
        #expect(names.allSatisfy { !$0.contains("/") && !$0.contains(" ") && $0 != ".." })
        #expect(ApproveResult.fileName("dana@example.com") == "dana@example.com")
        #expect(ApproveResult.fileName("da/na@x") == "da%2Fna@x")
    }

    @Test func aFileHoldingAnotherApproverIsNotReplaced() throws {
        let fixture = try Self.fixture()
        let path = "rollouts/exp-001/approvals/canary-10/sre-dana@example.com.json"
        let other = """
            {"apiVersion": "rolloutctl/v1", "rollout": "exp-001", "phase": "canary-10", "role": "sre",
             "approver": "mallory@example.com", "plan": "0000"}

            """
        try fixture.write(path, other)
        #expect(throws: ApproveResult.Failure.self) { try Self.approve(fixture, "dana@example.com") }
        do {
            _ = try Self.approve(fixture, "dana@example.com")
        } catch {
            #expect("\(error)".contains(path) && "\(error)".contains("mallory@example.com"), "\(error)")
        }
        #expect(try String(contentsOfFile: fixture.path + "/" + path, encoding: .utf8) == other)
    }

    @Test func aSymlinkedFolderOnTheWayIsRefusedAndNothingIsWrittenOutside() throws {
        let fixture = try Self.fixture()
        let outside = try TemporaryDirectory(prefix: "rolloutctl-outside")
        try FileManager.default.createDirectory(
            atPath: fixture.path + "/rollouts/exp-001/approvals", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            atPath: fixture.path + "/rollouts/exp-001/approvals/canary-10", withDestinationPath: outside.path)
        #expect(throws: ApproveResult.Failure.self) { try Self.approve(fixture, "dana@example.com") }
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside.path).isEmpty)

        // A link higher up (the rollout's folder) is refused too.
        let second = try Self.fixture()
        try FileManager.default.moveItem(
            atPath: second.path + "/rollouts/exp-001", toPath: outside.path + "/exp-001")
        try FileManager.default.createSymbolicLink(
            atPath: second.path + "/rollouts/exp-001", withDestinationPath: outside.path + "/exp-001")
        do {
            _ = try Self.approve(second, "dana@example.com")
            Issue.record("approve wrote through rollouts/exp-001 → \(outside.path)")
        } catch {
            #expect("\(error)".contains("rollouts/exp-001 is a symlink"), "\(error)")
        }
        #expect(!FileManager.default.fileExists(atPath: outside.path + "/exp-001/approvals"))
    }

    @Test func theApprovalFileItselfAsASymlinkIsNotFollowed() throws {
        let fixture = try Self.fixture()
        let outside = try TemporaryDirectory(prefix: "rolloutctl-outside")
        let folder = fixture.path + "/rollouts/exp-001/approvals/canary-10"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: URL(fileURLWithPath: outside.file("target.json")))
        try FileManager.default.createSymbolicLink(
            atPath: folder + "/sre-dana@example.com.json", withDestinationPath: outside.file("target.json"))
        #expect(throws: ApproveResult.Failure.self) { try Self.approve(fixture, "dana@example.com") }
        #expect(try String(contentsOfFile: outside.file("target.json"), encoding: .utf8) == "{}")
    }
}
