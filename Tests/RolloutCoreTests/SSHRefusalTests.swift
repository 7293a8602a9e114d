import Foundation
import Testing

@testable import RolloutCore

// Every refusal names its reason (issue 15): unsupported algorithm, weak RSA key, SHA-1
// signature, missing user presence, certificate expired, principal not in certificate, line
// unreadable. Plus the certificate flow with a CA, and the places where rolloutctl is stricter
// than `ssh-keygen -Y verify` on purpose (each asserted against ssh-keygen, so a change in
// either shows up here).

@Suite("SSH signatures: certificates and refusals", .serialized, .enabled(if: hasSSHKeygen, "needs ssh-keygen"))
struct SSHRefusalTests {
    let dana = "dana@example.com"

    /// A CA, dana's key with a certificate for dana@example.com valid for one week, and a
    /// signature made with it.
    struct CertificateFlow {
        let scratch: Scratch
        let ca: SSHPublicKey
        let certificate: SSHPublicKey
        let signature: String
        var allowed: String { "*@example.com cert-authority \(ca.authorizedKey)\n" }

        init(caType: String = "ed25519", caBits: Int? = nil, extra: [String] = []) throws {
            scratch = try Scratch()
            let (caPath, caKey) = try scratch.makeKey(caType, bits: caBits)
            let (userPath, _) = try scratch.makeKey("ed25519")
            let cert = try scratch.certify(
                userPath, ca: caPath, id: "dana", principals: "dana@example.com",
                validity: "20260101Z:20260108Z", extra: extra)
            ca = caKey
            certificate = cert.key
            signature = try scratch.sign(testMessage, key: cert.path)
        }

        func rolloutctl(_ principal: String, _ time: String, allowed: String? = nil) -> (Bool, String) {
            rolloutctlAccepts(
                signature: signature, message: testMessage, allowedSigners: allowed ?? self.allowed,
                principal: principal, time: time)
        }

        func sshKeygen(_ principal: String, _ time: String, allowed: String? = nil) throws -> Bool {
            try scratch.sshKeygenVerifies(
                allowedSigners: allowed ?? self.allowed, principal: principal,
                signature: signature, message: testMessage, time: time)
        }
    }

    @Test func certificateFlow() throws {
        let flow = try CertificateFlow()
        let cert = try #require(flow.certificate.certificate)
        #expect(cert.principalNames == ["dana@example.com"] && cert.keyID == "dana" && cert.type == 1)
        #expect(cert.signatureKey == flow.ca)
        let verdict = SSHSignatureVerifier.verify(armored: flow.signature, message: testMessage)
        guard case .valid(let signer) = verdict else {
            Issue.record("certificate signature did not verify")
            return
        }
        #expect(signer == flow.certificate)
        #expect(signer.signingKey.keyType == "ssh-ed25519")

        // Inside the week: counted, as ssh-keygen counts it.
        #expect(flow.rolloutctl(dana, "20260103Z").0)
        #expect(try flow.sshKeygen(dana, "20260103Z"))
        // After the week: certificate expired.
        let after = flow.rolloutctl(dana, "20260110Z")
        let afterSSHKeygen = try flow.sshKeygen(dana, "20260110Z")
        #expect(!after.0 && !afterSSHKeygen)
        #expect(
            after.1 == "certificate key ID \"dana\" (serial 0) signed by the CA of allowed_signers line 1: "
                + "certificate expired: signed 2026-01-10T00:00:00Z, valid before 2026-01-08T00:00:00Z")
        // Before the week: not yet valid.
        let before = flow.rolloutctl(dana, "20251231Z")
        let beforeSSHKeygen = try flow.sshKeygen(dana, "20251231Z")
        #expect(!before.0 && !beforeSSHKeygen)
        #expect(
            before.1.hasSuffix(
                "certificate not yet valid: signed 2025-12-31T00:00:00Z, valid from 2026-01-01T00:00:00Z"))
        // A principal the certificate does not name.
        let erin = flow.rolloutctl("erin@example.com", "20260103Z")
        let erinSSHKeygen = try flow.sshKeygen("erin@example.com", "20260103Z")
        #expect(!erin.0 && !erinSSHKeygen)
        #expect(erin.1.hasSuffix("principal erin@example.com is not in the certificate (principals: dana@example.com)"))
        // The CA revoked: its line removed.
        let revoked = flow.rolloutctl(dana, "20260103Z", allowed: "# CA removed\n")
        let revokedSSHKeygen = try flow.sshKeygen(dana, "20260103Z", allowed: "# CA removed\n")
        #expect(!revoked.0 && !revokedSSHKeygen)
        #expect(revoked.1.hasSuffix("which no cert-authority line in allowed_signers lists"))
        // The CA listed without cert-authority vouches for nothing.
        let plainCA = "*@example.com \(flow.ca.authorizedKey)\n"
        #expect(!flow.rolloutctl(dana, "20260103Z", allowed: plainCA).0)
        let plainCASSHKeygen = try flow.sshKeygen(dana, "20260103Z", allowed: plainCA)
        #expect(!plainCASSHKeygen)
    }

    @Test func unsupportedAlgorithm() throws {
        let s = try Scratch()
        let (path, _) = try s.makeKey("dsa")
        let sig = try s.sign(testMessage, key: path)
        #expect(
            SSHSignatureVerifier.verify(armored: sig, message: testMessage)
                == .unsupported("unsupported key type ssh-dss (DSA)"))
        // A webauthn signature from a security key: refused by name.
        let sk = SoftSecurityKey(.ecdsa)
        let webauthn = try buildSSHSIG(publicKey: sk.blob, message: testMessage) { data in
            var blob = try sk.signatureBlob(data, flags: 1, counter: 1)
            let type = Array("sk-ecdsa-sha2-nistp256@openssh.com".utf8)
            let webauthnType = Array("webauthn-sk-ecdsa-sha2-nistp256@openssh.com".utf8)
            blob.replaceSubrange(0..<(4 + type.count), with: sshString(webauthnType))
            return blob
        }
        #expect(
            SSHSignatureVerifier.verify(armored: webauthn, message: testMessage)
                == .unsupported("unsupported signature algorithm webauthn-sk-ecdsa-sha2-nistp256@openssh.com"))
    }

    /// OpenSSH 9 still reads 1024-bit RSA keys; rolloutctl refuses them (stricter on purpose).
    @Test func weakRSAKey() throws {
        let s = try Scratch()
        let rsa = try RSATestKey(scratch: s, bits: 1024)
        let sig = try s.sign(testMessage, key: rsa.path)
        #expect(
            SSHSignatureVerifier.verify(armored: sig, message: testMessage)
                == .unsupported("weak RSA key: 1024 bits, at least 2048 are required"))
        let allowed = "dana@example.com \(rsa.key.authorizedKey)\n"
        #expect(
            try s.sshKeygenVerifies(
                allowedSigners: allowed, principal: dana, signature: sig, message: testMessage,
                time: "20260102Z"), "ssh-keygen 9 accepts 1024-bit RSA")
    }

    @Test func sha1Signature() throws {
        let s = try Scratch()
        let rsa = try RSATestKey(scratch: s, bits: 2048)
        let sig = try rsa.sign(testMessage, algorithm: "ssh-rsa")
        #expect(
            SSHSignatureVerifier.verify(armored: sig, message: testMessage)
                == .unsupported(
                    "SHA-1 signature (ssh-rsa) refused, as OpenSSH refuses it; sign with rsa-sha2-256 or rsa-sha2-512"))
        let allowed = "dana@example.com \(rsa.key.authorizedKey)\n"
        let sshKeygen = try s.sshKeygenVerifies(
            allowedSigners: allowed, principal: dana, signature: sig,
            message: testMessage, time: "20260102Z")
        #expect(!sshKeygen)
    }

    /// The security key was not touched: refused, as OpenSSH's sshd refuses it by default
    /// (`ssh-keygen -Y verify` 9.2 does not look at the flag; stricter on purpose).
    @Test(arguments: [SoftSecurityKey.Kind.ed25519, .ecdsa])
    func missingUserPresence(kind: SoftSecurityKey.Kind) throws {
        let s = try Scratch()
        let sk = SoftSecurityKey(kind)
        let touched = try sk.sign(testMessage, flags: 0x01)
        let untouched = try sk.sign(testMessage, flags: 0x00)
        #expect(SSHSignatureVerifier.verify(armored: touched, message: testMessage) == .valid(sk.publicKey))
        #expect(
            SSHSignatureVerifier.verify(armored: untouched, message: testMessage)
                == .invalid("missing user presence: the security key was not touched (flags 0x0)"))
        // User verification without presence is still no presence; presence with more flags is fine.
        #expect(
            SSHSignatureVerifier.verify(armored: try sk.sign(testMessage, flags: 0x04), message: testMessage)
                == .invalid("missing user presence: the security key was not touched (flags 0x4)"))
        #expect(
            SSHSignatureVerifier.verify(armored: try sk.sign(testMessage, flags: 0x05), message: testMessage)
                == .valid(sk.publicKey))
        // The flags and counter are signed: changing them breaks the signature.
        var bytes = try dearmor(touched)
        bytes[bytes.count - 5] ^= 0x04
        #expect(
            SSHSignatureVerifier.verify(armored: armor(bytes), message: testMessage)
                == .invalid("signature does not match the signed content"))
        bytes = try dearmor(touched)
        bytes[bytes.count - 1] ^= 0x01
        #expect(
            SSHSignatureVerifier.verify(armored: armor(bytes), message: testMessage)
                == .invalid("signature does not match the signed content"))
        let allowed = "dana@example.com \(sk.publicKey.authorizedKey)\n"
        #expect(
            try s.sshKeygenVerifies(
                allowedSigners: allowed, principal: dana, signature: untouched,
                message: testMessage, time: "20260102Z"), "ssh-keygen 9.2 ignores the flag")
    }

    @Test func lineUnreadable() throws {
        let s = try Scratch()
        let (path, key) = try s.makeKey("ed25519")
        let sig = try s.sign(testMessage, key: path)
        let allowed = """
            # team
            erin@example.com \(try s.makeKey("ed25519").key.authorizedKey)
            dana@example.com valid-after="2026-01-01" \(key.authorizedKey)

            """
        let (signers, diagnostics) = AllowedSigners.parse(allowed, path: "policies/allowed_signers")
        #expect(
            diagnostics.map(\.description) == [
                "policies/allowed_signers:3:31: invalid valid-after time \"2026-01-01\" (expected YYYYMMDD, "
                    + "YYYYMMDDHHMM or YYYYMMDDHHMMSS, optionally followed by Z, after 1970)"
            ])
        #expect(
            signers.check(principal: dana, key: key, namespace: "git", at: utc("20260102"))
                == .denied(
                    "key \(key.fingerprint) appears in policies/allowed_signers only on line 3, which cannot be "
                        + "read: invalid valid-after time \"2026-01-01\" (expected YYYYMMDD, YYYYMMDDHHMM or "
                        + "YYYYMMDDHHMMSS, "
                        + "optionally followed by Z, after 1970) (column 31)"))
        let sshKeygen = try s.sshKeygenVerifies(
            allowedSigners: allowed, principal: dana, signature: sig,
            message: testMessage, time: "20260102Z")
        #expect(!sshKeygen)
        // A key that is nowhere in the file is "not in" it.
        let stranger = try s.makeKey("ed25519").key
        #expect(
            signers.check(principal: dana, key: stranger, namespace: "git", at: utc("20260102"))
                == .denied("key \(stranger.fingerprint) is not in policies/allowed_signers"))
    }

    /// OpenSSH also accepts a certificate listed on a plain line (without looking at its
    /// validity); here a certificate counts only under a cert-authority line.
    @Test func certificateListedDirectlyDoesNotCount() throws {
        let flow = try CertificateFlow()
        let direct = "dana@example.com \(flow.certificate.authorizedKey)\n"
        let ours = flow.rolloutctl(dana, "20270101Z", allowed: direct)
        #expect(!ours.0)
        #expect(
            ours.1.contains(
                "is listed directly on allowed_signers line 1; a certificate counts only under a "
                    + "cert-authority line for its CA"))
        #expect(try flow.sshKeygen(dana, "20270101Z", allowed: direct), "ssh-keygen accepts it, even expired")
    }

    /// A certificate signed by an RSA CA with SHA-1 (`ssh-keygen -s -t ssh-rsa`) is refused.
    @Test func certificateWithSHA1CASignature() throws {
        let flow = try CertificateFlow(caType: "rsa", caBits: 2048, extra: ["-t", "ssh-rsa"])
        guard case .unsupported(let why) = SSHSignatureVerifier.verify(armored: flow.signature, message: testMessage)
        else {
            Issue.record("a SHA-1 CA signature was not refused")
            return
        }
        #expect(
            why.hasPrefix(
                "certificate key ID \"dana\" (serial 0): CA signature: SHA-1 signature (ssh-rsa) refused"))
    }
}
