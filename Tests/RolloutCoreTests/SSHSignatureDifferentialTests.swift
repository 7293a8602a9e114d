import Foundation
import Testing

@testable import RolloutCore

// The differential test of SPEC §4.1 rule 5: for every key type git accepts and many
// allowed_signers lines, rolloutctl's verdict equals `ssh-keygen -Y verify -f allowed_signers
// -I <principal> -n git -s sig -Overify-time=<time> < data`. Keys, certificates and most
// signatures are made by ssh-keygen once per suite; security-key signatures are built from a
// software key (no hardware here) and rsa-sha2-256 / SHA-1 ones from ssh-keygen's RSA key,
// because OpenSSH 9.2 signs with rsa-sha2-512 only.

/// One signature under test and the keys its allowed_signers lines refer to.
struct SignatureUnderTest: CustomStringConvertible {
    var name: String
    var armored: String
    /// `type base64` of the signing key (for a certificate: its certified plain key).
    var keyLine: String
    /// `type base64` of the CA, for certificate signatures.
    var caLine: String?
    var description: String { name }
}

final class DifferentialFixture: @unchecked Sendable {
    let scratch: Scratch
    let signatures: [SignatureUnderTest]
    let otherKeyLine: String

    init() throws {
        let s = try Scratch()
        scratch = s
        let message = testMessage
        func line(_ key: SSHPublicKey) -> String { key.authorizedKey }
        var sigs: [SignatureUnderTest] = []
        func add(_ name: String, _ type: String, bits: Int? = nil, hashalg: String? = nil) throws {
            let (path, key) = try s.makeKey(type, bits: bits)
            sigs.append(
                SignatureUnderTest(
                    name: name, armored: try s.sign(message, key: path, hashalg: hashalg),
                    keyLine: line(key)))
        }
        try add("ed25519", "ed25519")
        try add("ed25519 sha256", "ed25519", hashalg: "sha256")
        try add("ecdsa-p256", "ecdsa", bits: 256)
        try add("ecdsa-p384", "ecdsa", bits: 384, hashalg: "sha256")
        try add("ecdsa-p521", "ecdsa", bits: 521)
        for bits in [2048, 3072] {
            let rsa = try RSATestKey(scratch: s, bits: bits)
            sigs.append(
                SignatureUnderTest(
                    name: "rsa-\(bits) ssh-keygen (rsa-sha2-512)",
                    armored: try s.sign(message, key: rsa.path), keyLine: line(rsa.key)))
            sigs.append(
                SignatureUnderTest(
                    name: "rsa-\(bits) rsa-sha2-256",
                    armored: try rsa.sign(message, algorithm: "rsa-sha2-256", hashalg: "sha256"),
                    keyLine: line(rsa.key)))
            sigs.append(
                SignatureUnderTest(
                    name: "rsa-\(bits) rsa-sha2-512",
                    armored: try rsa.sign(message, algorithm: "rsa-sha2-512"),
                    keyLine: line(rsa.key)))
            if bits == 2048 {
                sigs.append(
                    SignatureUnderTest(
                        name: "rsa-2048 ssh-rsa (SHA-1)",
                        armored: try rsa.sign(message, algorithm: "ssh-rsa"),
                        keyLine: line(rsa.key)))
            }
        }
        for kind in [SoftSecurityKey.Kind.ed25519, .ecdsa] {
            let sk = SoftSecurityKey(kind)
            sigs.append(
                SignatureUnderTest(
                    name: sk.typeName, armored: try sk.sign(message),
                    keyLine: line(sk.publicKey)))
        }
        // Certificates: an Ed25519 CA over an ECDSA key, an RSA CA over an Ed25519 key.
        let (caEd, caEdKey) = try s.makeKey("ed25519")
        let (caRSA, caRSAKey) = try s.makeKey("rsa", bits: 3072)
        let (userEC, userECKey) = try s.makeKey("ecdsa", bits: 256)
        let certEC = try s.certify(
            userEC, ca: caEd, id: "dana", principals: "dana@example.com",
            validity: "20260101Z:20260108Z")
        sigs.append(
            SignatureUnderTest(
                name: "ecdsa-p256 certificate (ed25519 CA)",
                armored: try s.sign(message, key: certEC.path), keyLine: line(userECKey),
                caLine: line(caEdKey)))
        let (userEd, userEdKey) = try s.makeKey("ed25519")
        let certEd = try s.certify(
            userEd, ca: caRSA, id: "dana-2", principals: "dana@example.com,dev@example.com",
            validity: "20260101000000Z:20260108000000Z")
        sigs.append(
            SignatureUnderTest(
                name: "ed25519 certificate (rsa CA)",
                armored: try s.sign(message, key: certEd.path), keyLine: line(userEdKey),
                caLine: line(caRSAKey)))
        // Signed for another namespace: both must refuse it for git.
        let (fileKey, fileKeyPub) = try s.makeKey("ed25519")
        sigs.append(
            SignatureUnderTest(
                name: "ed25519 namespace file",
                armored: try s.sign(message, key: fileKey, namespace: "file"),
                keyLine: line(fileKeyPub)))
        signatures = sigs
        otherKeyLine = line(try s.makeKey("ed25519").key)
    }

    nonisolated(unsafe) static var shared: Result<DifferentialFixture, Error>?
    static let lock = NSLock()

    static func get() throws -> DifferentialFixture {
        lock.lock()
        defer { lock.unlock() }
        if shared == nil { shared = Result { try DifferentialFixture() } }
        return try shared!.get()
    }
}

/// An allowed_signers file and the (principal, verify-time) pairs to ask about.
struct DifferentialCase {
    var file: String
    var probes: [(principal: String, time: String)]
}

private let dana = "dana@example.com"
private let erin = "erin@example.com"
private let usual: [(principal: String, time: String)] = [(dana, "20260102Z"), (erin, "20260102Z")]

/// The allowed_signers cases for one signature. `k`: the signer's plain key line (for a
/// certificate: its certified key, which alone must not match), `o`: another key, `ca`: the CA
/// key of a certificate signature (nil for plain signatures). A certificate listed as a plain key
/// is a deliberate difference, tested in SSHRefusalTests.
private func cases(k: String, o: String, ca: String?) -> [DifferentialCase] {
    var out: [DifferentialCase] = []
    func add(_ file: String, _ probes: [(principal: String, time: String)] = usual) {
        out.append(DifferentialCase(file: file, probes: probes))
    }
    let keyType = String(k.split(separator: " ")[0])
    let keyB64 = String(k.split(separator: " ")[1])
    // Exact, lists, patterns, negation, quoting.
    add("dana@example.com \(k)\n")
    add("dana@example.com \(k) dana's laptop\n")
    add("erin@example.com,dana@example.com \(k)\n")
    add("dana@example.com, \(k)\n")
    add("*@example.com \(k)\n", usual + [("dana@example.org", "20260102Z")])
    add("d?na@example.com,*@corp.example.com \(k)\n", usual + [("dna@example.com", "20260102Z")])
    add("*@example.com,!dana@example.com \(k)\n")
    add("!erin@example.com,*@example.com \(k)\n")
    add("*,!*@example.com \(k)\n")
    add("\"dana@example.com,erin@example.com\" \(k)\n")
    add("\"dana@example.com\" namespaces=\"git\" \(k)\n")
    add("\"dana @example.com\",dana@example.com \(k)\n", usual + [("dana @example.com", "20260102Z")])
    add("da\"na@exa\"mple.com \(k)\n")
    add("DANA@example.com \(k)\n")
    add(
        "dana@ex\u{e4}mple.com,dana@ex?mple.com \(k)\n",
        usual + [("dana@ex\u{e4}mple.com", "20260102Z"), ("dana@exbmple.com", "20260102Z")])
    add("dana@ex??mple.com \(k)\n", [("dana@ex\u{e4}mple.com", "20260102Z"), ("dana@exbmple.com", "20260102Z")])
    // Namespaces (case-insensitive option names, escaped quotes).
    add("dana@example.com namespaces=\"file\" \(k)\n")
    add("dana@example.com namespaces=\"file,g*\" \(k)\n")
    add("dana@example.com namespaces=\"*,!git\" \(k)\n")
    add("dana@example.com NameSpaces=\"git\" \(k)\n")
    add("dana@example.com namespaces=\"g\\\"it,git\" \(k)\n")
    add("dana@example.com namespaces=\"file, git\" \(k)\n")
    add("dana@example.com namespaces=git \(k)\n")
    add("dana@example.com namespaces=\"git\",namespaces=\"git\" \(k)\n")
    // Validity in every documented time form (and UTC, which OpenSSH also reads).
    for form in [
        "20260102", "20260102Z", "202601021200", "202601021200Z", "20260102120000", "20260102120000Z",
        "20260102UTC", "20260102z",
    ] {
        add(
            "dana@example.com valid-after=\"\(form)\" \(k)\n",
            [(dana, "20260101Z"), (dana, "20260102115959Z"), (dana, "20260102120000Z"), (dana, "20260103Z")])
        add(
            "dana@example.com valid-before=\"\(form)\" \(k)\n",
            [(dana, "20260101Z"), (dana, "20260102Z"), (dana, "20260102120000Z"), (dana, "20260102120001Z")])
    }
    add(
        "dana@example.com valid-after=\"20260101Z\",valid-before=\"20260201Z\" \(k)\n",
        [(dana, "20251231Z"), (dana, "20260115Z"), (dana, "20260201000001Z"), (erin, "20260115Z")])
    add(
        "dana@example.com VALID-BEFORE=\"20260101Z\",Valid-After=\"20250101Z\" \(k)\n",
        [(dana, "20250601Z"), (dana, "20260601Z")])
    add("dana@example.com valid-after=\"20260230Z\" \(k)\n", [(dana, "20260301Z"), (dana, "20260303Z")])
    add("dana@example.com valid-after=\"2026 101Z\" \(k)\n", [(dana, "20260102Z")])
    add("dana@example.com valid-after=\"2026013\" \(k)\n", [(dana, "20260202Z")])
    add("dana@example.com valid-after=\"19700101Z\" \(k)\n", [(dana, "20260102Z")])
    add("dana@example.com valid-before=\"20260101Z\",valid-after=\"20260101Z\" \(k)\n", [(dana, "20260101Z")])
    add(
        "dana@example.com valid-after=\"20270101Z\" \(k)\ndana@example.com valid-before=\"20270101Z\" \(k)\n",
        [(dana, "20260102Z"), (dana, "20270102Z")])
    // Comments, blank lines, CRLF, bad lines around good ones.
    add("# dana@example.com \(k)\n")
    add("\n   \n\t# a comment\n\ndana@example.com \(k)\n")
    add("dana@example.com \(k)\r\n")
    add("  \tdana@example.com\t\(k)")
    add("dana@example.com \(o)\n")
    add("\"dana@example.com \(k)\n")
    add("dana@example.com unknown-option \(k)\n")
    add("dana@example.com namespaces=\"git\", \(k)\n")
    add("dana@example.com ssh-foo \(keyB64)\n")
    add("dana@example.com \(keyType == "ssh-ed25519" ? "ssh-rsa" : "ssh-ed25519") \(keyB64)\n")
    add("dana@example.com \(keyType) \(keyB64.dropLast(4))\n")
    add("dana@example.com namespaces=\"git\" \(k) namespaces=\"file\"\n")
    if keyType == "ssh-rsa" { add("dana@example.com rsa-sha2-256 \(keyB64)\n") }
    // cert-authority with a plain key: never a match for that key's own signatures.
    add("dana@example.com cert-authority \(k)\n")
    if let ca {
        let certTimes: [(principal: String, time: String)] = [
            (dana, "20260102Z"), (dana, "20251231Z"), (dana, "20260107235959Z"), (dana, "20260108000000Z"),
            (dana, "20260109Z"), (erin, "20260102Z"), ("dev@example.com", "20260102Z"),
        ]
        add("*@example.com cert-authority \(ca)\n", certTimes)
        add("dana@example.com cert-authority \(ca)\n", certTimes)
        add("erin@example.com,dev@example.com cert-authority \(ca)\n", certTimes)
        add("*@example.com,!dana@example.com cert-authority \(ca)\n", certTimes)
        add("*@example.com cert-authority,namespaces=\"git\" \(ca)\n", [(dana, "20260102Z")])
        add("*@example.com namespaces=\"file\",cert-authority \(ca)\n", [(dana, "20260102Z")])
        add("*@example.com cert-authority,cert-authority \(ca)\n", [(dana, "20260102Z")])
        add("*@example.com CERT-AUTHORITY \(ca)\n", [(dana, "20260102Z")])
        add(
            "*@example.com cert-authority,valid-before=\"20260103Z\" \(ca)\n",
            [(dana, "20260102Z"), (dana, "20260104Z")])
        add("*@example.com \(ca)\n", [(dana, "20260102Z")])
        add("*@example.com cert-authority \(o)\n", [(dana, "20260102Z")])
        add("# revoked CA: line removed\n", [(dana, "20260102Z")])
    }
    return out
}

@Suite(
    "SSH signatures: differential against ssh-keygen -Y verify", .serialized,
    .enabled(if: hasSSHKeygen, "needs ssh-keygen"))
struct SSHSignatureDifferentialTests {
    /// Every signature × every case × every probe: rolloutctl's verdict equals ssh-keygen's.
    @Test func rolloutctlAgreesWithSSHKeygen() throws {
        let fixture = try DifferentialFixture.get()
        var jobs: [(allowedSigners: String, principal: String, signature: String, time: String)] = []
        var labels: [(name: String, ours: Bool, why: String)] = []
        for sig in fixture.signatures {
            for c in cases(k: sig.keyLine, o: fixture.otherKeyLine, ca: sig.caLine) {
                for probe in c.probes {
                    let (ours, why) = rolloutctlAccepts(
                        signature: sig.armored, message: testMessage,
                        allowedSigners: c.file, principal: probe.principal,
                        time: probe.time)
                    jobs.append((c.file, probe.principal, sig.armored, probe.time))
                    labels.append(
                        (
                            "\(sig.name) | \(c.file.debugDescription) | -I \(probe.principal) | \(probe.time)",
                            ours, why
                        ))
                }
            }
        }
        let theirs = try fixture.scratch.sshKeygenVerifyBatch(jobs, message: testMessage)
        let compared = jobs.count
        let accepted = theirs.filter { $0 }.count
        var disagreements: [String] = []
        for (label, answer) in zip(labels, theirs) where label.ours != answer {
            disagreements.append(
                "\(label.name): ssh-keygen \(answer ? "accepts" : "refuses"), rolloutctl "
                    + "\(label.ours ? "accepts" : "refuses") (\(label.why))")
        }
        print(
            "differential: \(fixture.signatures.count) signatures, \(compared) checks, "
                + "ssh-keygen accepted \(accepted), "
                + "\(disagreements.count) disagreements")
        let report = disagreements.prefix(40).joined(separator: "\n")
        #expect(disagreements.isEmpty, "\(disagreements.count) disagreements of \(compared):\n\(report)")
        // The cases exercise both answers for every signature type.
        #expect(compared > 1000)
        #expect(accepted > 200)
        for sig in fixture.signatures where !sig.name.contains("SHA-1") && !sig.name.contains("namespace file") {
            let (ours, why) = rolloutctlAccepts(
                signature: sig.armored, message: testMessage,
                allowedSigners: sig.caLine.map { "*@example.com cert-authority \($0)\n" }
                    ?? "dana@example.com \(sig.keyLine)\n",
                principal: dana, time: "20260102Z")
            #expect(ours, "\(sig.name): \(why)")
        }
    }
}
