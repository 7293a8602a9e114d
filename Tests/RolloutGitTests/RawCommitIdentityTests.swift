import Foundation
import RolloutCore
import RolloutTestSupport
import Testing

@testable import RolloutGit

/// The walk reads authors, committers and signatures from raw commit objects; libgit2's own parser
/// and `git_commit_extract_signature` are the oracle, on real commits (signed, unsigned, merges).
@Suite struct RawCommitIdentityTests {
    @Test func rawIdentityEqualsLibgit2sReading() throws {
        let repo = try ApprovalRepo()
        try repo.approveViaPullRequest(phase: "canary-10", role: "sre", person: RolloutFixtures.dana, key: Keys.dana)
        try repo.approveDirectly(phase: "production", role: "product-owner", person: RolloutFixtures.pat, key: nil)
        try repo.approveViaPullRequest(
            phase: "canary-10", role: "qa-lead", person: RolloutFixtures.quinn,
            key: Keys.quinn, merge: .squash(author: RolloutFixtures.quinn, key: Keys.quinn))
        let repository = try GitRepository(path: repo.path)
        let odb = try ObjectDatabase(repository)
        let commits = try repo.fixture.git("rev-list", "--all").split(separator: "\n").map(String.init)
        #expect(commits.count >= 6)
        var signed = 0
        for hex in commits {
            let id = try #require(ObjectID(hex: hex))
            let facts = try repository.commitFacts(id)
            let raw = try RawCommitIdentity.read(odb: odb, id: id)
            #expect(raw.id == hex)
            #expect(raw.authorEmail == facts.authorEmail)
            #expect(raw.committerEmail == facts.committerEmail)
            #expect(Int64(raw.committerTime.timeIntervalSince1970) == facts.committerTime)
            #expect(raw.signature == facts.signature, "\(hex)")
            #expect(raw.signedData == facts.signedData.map { [UInt8]($0) }, "\(hex)")
            if raw.signature != nil { signed += 1 }
        }
        #expect(signed >= 3)
    }
}
