import Foundation
import RolloutCore
import RolloutTestSupport
import Testing

/// Signature mode with the keys real teams carry (SPEC §4.1 rule 5): an organisation CA that
/// signs its engineers' SSH user certificates, and RSA keys, through a real repository, real
/// `git commit -S` signatures and the approval scan.
@Suite struct CertificateApprovalTests {
    typealias F = RolloutFixtures

    /// The organisation's CA (RSA, as many are) and dana's laptop key with a certificate for
    /// dana@example.com valid for the first week of 2026 (fixture commits start 2026-01-01).
    static let ca = try! SSHTestKey(comment: "example-ca", type: "rsa", bits: 3072)
    static let danaLaptop = try! SSHTestKey(comment: "dana-laptop", type: "ecdsa", bits: 384)
    static let danaCertificate = try! danaLaptop.certified(
        by: ca, identity: "dana", principals: ["dana@example.com"], validity: "20260101Z:20260108Z")
    static let quinnRSA = try! SSHTestKey(comment: "quinn-rsa", type: "rsa", bits: 2048)

    static var allowedSigners: String {
        "*@example.com cert-authority \(ca.publicKey) example CA\n"
            + quinnRSA.allowedSignersLine("quinn@example.com") + "\n"
            // Robin signs the plan (in signature mode plan changes are signed too).
            + Keys.robin.allowedSignersLine("robin@example.com") + "\n"
    }

    func expectNotCounted(
        _ status: ApprovalStatus, _ fragments: String...,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(!status.counted, "\(status.path) counted", sourceLocation: sourceLocation)
        for fragment in fragments {
            #expect(
                status.reason?.contains(fragment) == true, "reason: \(status.reason ?? "nil")",
                sourceLocation: sourceLocation)
        }
    }

    @Test func certificateInsideItsWeekCountsAndRSAKeyCounts() throws {
        let repo = try ApprovalRepo(allowedSigners: Self.allowedSigners)
        try repo.approveViaPullRequest(phase: "canary-10", role: "sre", person: F.dana, key: Self.danaCertificate)
        try repo.approveViaPullRequest(phase: "canary-10", role: "qa-lead", person: F.quinn, key: Self.quinnRSA)
        let statuses = try repo.statuses()
        #expect(statuses.count == 2)
        for status in statuses {
            #expect(status.counted, "\(status.path): \(status.reason ?? "")")
        }
    }

    @Test func certificateOutsideItsWeekDoesNotCount() throws {
        let repo = try ApprovalRepo(allowedSigners: Self.allowedSigners)
        repo.fixture.setClock(1_767_916_800)  // 2026-01-09T00:00:00Z, a day after the certificate expired
        try repo.approveViaPullRequest(phase: "canary-10", role: "sre", person: F.dana, key: Self.danaCertificate)
        expectNotCounted(
            try repo.status(repo.approvalPath(phase: "canary-10", role: "sre", person: F.dana)),
            "certificate key ID \"dana\"", "certificate expired", "valid before 2026-01-08T00:00:00Z")
    }

    @Test func certificateForAnotherPrincipalDoesNotCount() throws {
        // sam is an SRE too, but the certificate names only dana.
        let repo = try ApprovalRepo(allowedSigners: Self.allowedSigners)
        try repo.approveViaPullRequest(phase: "canary-10", role: "sre", person: F.sam, key: Self.danaCertificate)
        expectNotCounted(
            try repo.status(repo.approvalPath(phase: "canary-10", role: "sre", person: F.sam)),
            "principal sam@example.com is not in the certificate (principals: dana@example.com)")
    }

    @Test func certificateWithoutACertAuthorityLineDoesNotCount() throws {
        // A revoked CA is a removed line: the same certificate no longer counts.
        let repo = try ApprovalRepo(allowedSigners: Self.quinnRSA.allowedSignersLine("quinn@example.com") + "\n")
        try repo.approveViaPullRequest(phase: "canary-10", role: "sre", person: F.dana, key: Self.danaCertificate)
        expectNotCounted(
            try repo.status(repo.approvalPath(phase: "canary-10", role: "sre", person: F.dana)),
            "which no cert-authority line in policies/allowed_signers lists")
    }

    @Test func keyOnlyOnAnUnreadableLineSaysSo() throws {
        // quinn's line misses the quotes ssh-keygen requires around option values.
        let line = Self.quinnRSA.allowedSignersLine("quinn@example.com", options: "namespaces=git")
        let repo = try ApprovalRepo(allowedSigners: line + "\n")
        try repo.approveViaPullRequest(phase: "canary-10", role: "qa-lead", person: F.quinn, key: Self.quinnRSA)
        expectNotCounted(
            try repo.status(repo.approvalPath(phase: "canary-10", role: "qa-lead", person: F.quinn)),
            "appears in policies/allowed_signers only on line 1, which cannot be read: "
                + "value of option namespaces must be in double quotes (column 30)")
        // validate reports the same line and column.
        let loaded = try repo.load()
        #expect(
            loaded.snapshot.policyDiagnostics.map(\.description)
                == ["policies/allowed_signers:1:30: value of option namespaces must be in double quotes"])
    }
}
