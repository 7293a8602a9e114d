import Foundation
import Testing

@testable import RolloutCore

// Tests for in-process SSH signature verification (PROTOCOL.sshsig) and allowed_signers.
// Real keys and signatures come from `ssh-keygen` (tests only; the library never runs it).

// MARK: - Helpers

private let message = Array(
    "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor A <a@example.com> 1700000000 +0000\n\napprove canary-10\n"
        .utf8)

/// The hash algorithm field of an SSHSIG blob.
private func hashAlgorithm(of armored: String) throws -> String {
    var r = SSHWireReader(try dearmor(armored))
    _ = r.readBytes(6)
    _ = r.readUInt32()
    _ = r.readString()
    _ = r.readString()
    _ = r.readString()
    let hash = r.readString()
    return String(decoding: try #require(hash), as: UTF8.self)
}

/// The lengths of the r and s mpints of an ecdsa SSHSIG.
private func ecdsaMpintLengths(of armored: String) throws -> [Int] {
    var r = SSHWireReader(try dearmor(armored))
    _ = r.readBytes(6)
    _ = r.readUInt32()
    for _ in 0..<4 { _ = r.readString() }
    var sr = SSHWireReader(r.readString() ?? [])
    _ = sr.readString()
    var er = SSHWireReader(sr.readString() ?? [])
    let rInt = er.readString()
    let sInt = er.readString()
    return [try #require(rInt).count, try #require(sInt).count]
}

/// A syntactically valid ssh-ed25519 key (not a real curve point needed for check()).
private func fakeEd25519(_ seed: UInt8) -> SSHPublicKey {
    let blob = sshString(Array("ssh-ed25519".utf8)) + sshString([UInt8](repeating: seed, count: 32))
    return SSHPublicKey(keyType: "ssh-ed25519", blob: blob)
}

// MARK: - Signatures made by ssh-keygen

@Suite("SSH signatures", .enabled(if: hasSSHKeygen, "needs ssh-keygen"))
struct SSHSignatureTests {
    @Test func ed25519DefaultHashIsSHA512AndVerifies() throws {
        let s = try Scratch()
        let (path, key) = try s.makeKey("ed25519")
        let sig = try s.sign(message, key: path)
        #expect(try hashAlgorithm(of: sig) == "sha512")
        #expect(SSHSignatureVerifier.verify(armored: sig, message: message) == .valid(key))
    }

    @Test func ed25519WithSHA256Verifies() throws {
        let s = try Scratch()
        let (path, key) = try s.makeKey("ed25519")
        let sig = try s.sign(message, key: path, hashalg: "sha256")
        #expect(try hashAlgorithm(of: sig) == "sha256")
        #expect(SSHSignatureVerifier.verify(armored: sig, message: message) == .valid(key))
    }

    @Test(arguments: ["sha256", "sha512"])
    func ecdsaP256Verifies(hashalg: String) throws {
        let s = try Scratch()
        let (path, key) = try s.makeKey("ecdsa", bits: 256)
        #expect(key.keyType == "ecdsa-sha2-nistp256")
        // Several signatures, so r and s come both with and without the mpint's leading 0x00.
        var lengths = Set<Int>()
        for i in 0..<8 {
            let msg = message + Array("\(i)".utf8)
            let sig = try s.sign(msg, key: path, hashalg: hashalg)
            #expect(try hashAlgorithm(of: sig) == hashalg)
            #expect(SSHSignatureVerifier.verify(armored: sig, message: msg) == .valid(key))
            var tampered = msg
            tampered[0] ^= 1
            #expect(
                SSHSignatureVerifier.verify(armored: sig, message: tampered)
                    == .invalid("signature does not match the signed content"))
            lengths.formUnion(try ecdsaMpintLengths(of: sig))
        }
        #expect(lengths.isSubset(of: [31, 32, 33]))
    }

    @Test func tamperedMessageIsInvalid() throws {
        let s = try Scratch()
        let (path, _) = try s.makeKey("ed25519")
        let sig = try s.sign(message, key: path)
        var tampered = message
        tampered[tampered.count - 2] = UInt8(ascii: "X")
        #expect(
            SSHSignatureVerifier.verify(armored: sig, message: tampered)
                == .invalid("signature does not match the signed content"))
        #expect(
            SSHSignatureVerifier.verify(armored: sig, message: message + [0x0a])
                == .invalid("signature does not match the signed content"))
        #expect(
            SSHSignatureVerifier.verify(armored: sig, message: [])
                == .invalid("signature does not match the signed content"))
    }

    @Test func wrongNamespaceIsInvalid() throws {
        let s = try Scratch()
        let (path, key) = try s.makeKey("ed25519")
        let sig = try s.sign(message, key: path, namespace: "file")
        #expect(
            SSHSignatureVerifier.verify(armored: sig, message: message)
                == .invalid("namespace is \"file\", expected \"git\""))
        #expect(SSHSignatureVerifier.verify(armored: sig, message: message, namespace: "file") == .valid(key))
    }

    @Test(arguments: [256, 384, 521])
    func ecdsaVerifies(bits: Int) throws {
        let s = try Scratch()
        let (path, key) = try s.makeKey("ecdsa", bits: bits)
        #expect(key.keyType == "ecdsa-sha2-nistp\(bits)")
        for hashalg in ["sha256", "sha512"] {
            let sig = try s.sign(message, key: path, hashalg: hashalg)
            #expect(SSHSignatureVerifier.verify(armored: sig, message: message) == .valid(key))
            #expect(
                SSHSignatureVerifier.verify(armored: sig, message: message + [1])
                    == .invalid("signature does not match the signed content"))
        }
    }

    @Test(arguments: [2048, 3072])
    func rsaVerifiesWithSHA2(bits: Int) throws {
        let s = try Scratch()
        let rsa = try RSATestKey(scratch: s, bits: bits)
        let bySSHKeygen = try s.sign(message, key: rsa.path)
        #expect(SSHSignatureVerifier.verify(armored: bySSHKeygen, message: message) == .valid(rsa.key))
        for algorithm in ["rsa-sha2-256", "rsa-sha2-512"] {
            let sig = try rsa.sign(message, algorithm: algorithm)
            #expect(SSHSignatureVerifier.verify(armored: sig, message: message) == .valid(rsa.key))
            #expect(
                SSHSignatureVerifier.verify(armored: sig, message: [1, 2, 3])
                    == .invalid("signature does not match the signed content"))
        }
    }

    @Test func unknownHashIsUnsupported() throws {
        let s = try Scratch()
        let (path, _) = try s.makeKey("ed25519")
        let bytes = try dearmor(try s.sign(message, key: path, hashalg: "sha256"))
        // Rewrite "sha256" to "sha384" (same length, so the framing stays valid).
        var patched = bytes
        let needle = Array("sha256".utf8)
        let at = try #require((0...(patched.count - needle.count)).first { Array(patched[$0..<$0 + 6]) == needle })
        patched.replaceSubrange(at..<at + 6, with: Array("sha384".utf8))
        #expect(
            SSHSignatureVerifier.verify(armored: armor(patched), message: message)
                == .unsupported("unsupported hash algorithm sha384"))
    }

    @Test func badMagicVersionAndFramingAreInvalid() throws {
        let s = try Scratch()
        let (path, _) = try s.makeKey("ed25519")
        let bytes = try dearmor(try s.sign(message, key: path))

        var badMagic = bytes
        badMagic[0] = UInt8(ascii: "X")
        #expect(
            SSHSignatureVerifier.verify(armored: armor(badMagic), message: message)
                == .invalid("not an SSH signature (bad magic, expected \"SSHSIG\")"))

        var v2 = bytes
        v2[9] = 2
        #expect(
            SSHSignatureVerifier.verify(armored: armor(v2), message: message)
                == .invalid("unsupported SSH signature version 2"))

        #expect(
            SSHSignatureVerifier.verify(armored: armor(bytes + [0]), message: message)
                == .invalid("SSH signature has trailing data"))

        // Every truncation: invalid, never a crash.
        for n in 0..<bytes.count {
            let verdict = SSHSignatureVerifier.verify(signature: Array(bytes[..<n]), message: message, namespace: "git")
            guard case .invalid = verdict else {
                Issue.record("prefix of \(n) bytes gave \(verdict)")
                continue
            }
        }
        // Every single-byte corruption: never valid, never a crash.
        for i in 0..<bytes.count {
            for flip: UInt8 in [0x01, 0x80, 0xff] {
                var b = bytes
                b[i] ^= flip
                if case .valid = SSHSignatureVerifier.verify(signature: b, message: message, namespace: "git") {
                    Issue.record("byte \(i) ^ \(flip) still verified")
                }
            }
        }
    }

    @Test func garbageArmorIsInvalidWithoutCrashing() throws {
        let cases: [String] = [
            "",
            "hello",
            "-----BEGIN SSH SIGNATURE-----\n-----END SSH SIGNATURE-----\n",
            "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n",
            "-----BEGIN SSH SIGNATURE-----\n!!!!not base64$$$\n-----END SSH SIGNATURE-----\n",
            "-----BEGIN SSH SIGNATURE-----\nU1NIU0lHAAAAAQ\n-----END SSH SIGNATURE-----\n",
            armor([UInt8](repeating: 0xff, count: 300)),
            armor(Array("SSHSIG".utf8) + [0, 0, 0, 1] + [0xff, 0xff, 0xff, 0xff]),
            armor(Array("SSHSIG".utf8) + [0, 0, 0, 1] + [0x7f, 0xff, 0xff, 0xff] + [1, 2, 3]),
        ]
        for text in cases {
            let verdict = SSHSignatureVerifier.verify(armored: text, message: message)
            guard case .invalid = verdict else {
                Issue.record("\(text.debugDescription) gave \(verdict)")
                continue
            }
        }
        #expect(
            SSHSignatureVerifier.verify(
                armored: "-----BEGIN PGP SIGNATURE-----\n\nabc\n-----END PGP SIGNATURE-----", message: message)
                == .unsupported("OpenPGP signatures are not supported, only SSH signatures"))
    }

    @Test func malformedECDSASignaturePartsAreInvalid() throws {
        // Real P-256 key blob from ssh-keygen, hand-made signature blobs around it.
        let s = try Scratch()
        let (_, key) = try s.makeKey("ecdsa", bits: 256)
        func sshsig(_ sigBlob: [UInt8]) -> String {
            armor(
                Array("SSHSIG".utf8) + [0, 0, 0, 1] + sshString(key.blob) + sshString(Array("git".utf8))
                    + sshString([]) + sshString(Array("sha512".utf8)) + sshString(sigBlob))
        }
        let type = sshString(Array("ecdsa-sha2-nistp256".utf8))
        let negative = sshString([0x80] + [UInt8](repeating: 1, count: 31))
        let tooLong = sshString([0x01] + [UInt8](repeating: 1, count: 32))
        let ok = sshString([UInt8](repeating: 1, count: 32))
        for blob in [
            type + sshString(negative + ok), type + sshString(ok + tooLong), type + sshString(ok),
            type + sshString(ok + ok + [0]), sshString(Array("ssh-ed25519".utf8)) + sshString(ok + ok),
        ] {
            let verdict = SSHSignatureVerifier.verify(armored: sshsig(blob), message: message)
            guard case .invalid = verdict else {
                Issue.record("gave \(verdict)")
                continue
            }
        }
        // Well-formed but wrong r, s: does not match.
        #expect(
            SSHSignatureVerifier.verify(armored: sshsig(type + sshString(ok + ok)), message: message)
                == .invalid("signature does not match the signed content"))
    }

    @Test func publicKeyParsingAndFingerprint() throws {
        let s = try Scratch()
        for (type, bits) in [("ed25519", nil), ("ecdsa", 256), ("rsa", 2048)] as [(String, Int?)] {
            let (path, key) = try s.makeKey(type, bits: bits)
            let printed = try run(["ssh-keygen", "-l", "-E", "sha256", "-f", path + ".pub"])
            let fields = printed.split(separator: " ")
            #expect(key.fingerprint == String(fields[1]))
            let pub = try String(contentsOfFile: path + ".pub", encoding: .utf8)
            #expect(key.authorizedKey == pub.split(separator: " ").prefix(2).joined(separator: " "))
            #expect(SSHPublicKey(authorizedKey: key.authorizedKey) == key)
        }
        #expect(SSHPublicKey(authorizedKey: "") == nil)
        #expect(SSHPublicKey(authorizedKey: "ssh-ed25519") == nil)
        #expect(SSHPublicKey(authorizedKey: "ssh-ed25519 not-base64!") == nil)
        // Stated type differs from the blob's.
        #expect(SSHPublicKey(authorizedKey: "ssh-rsa " + fakeEd25519(7).authorizedKey.split(separator: " ")[1]) == nil)
    }

    /// A real `git commit -S` with gpg.format=ssh: the signature is the gpgsig header, the
    /// signed data is the raw commit object without that header (what libgit2's
    /// git_commit_extract_signature returns).
    @Test(.enabled(if: hasGit, "needs git")) func gitSignedCommitVerifies() throws {
        let s = try Scratch()
        let (path, key) = try s.makeKey("ed25519")
        let repo = s.dir.appendingPathComponent("repo")
        try FileManager.default.createDirectory(at: repo, withIntermediateDirectories: true)
        let env = [
            "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_COMMITTER_DATE": "1767225600 +0000", "GIT_AUTHOR_DATE": "1767225600 +0000",
        ]
        let git = [
            "git", "-c", "user.name=Dana", "-c", "user.email=dana@example.com", "-c", "gpg.format=ssh",
            "-c", "user.signingkey=\(path)", "-c", "init.defaultBranch=main",
        ]
        try run(git + ["init", "-q"], in: repo, environment: env)
        try "{}\n".write(to: repo.appendingPathComponent("a.json"), atomically: true, encoding: .utf8)
        try run(git + ["add", "a.json"], in: repo, environment: env)
        try run(git + ["commit", "-q", "-S", "-m", "approve\n\nwith body"], in: repo, environment: env)
        let raw = try run(["git", "cat-file", "commit", "HEAD"], in: repo, environment: env)

        var signed = ""
        var signature = ""
        var inHeaders = true
        var inSig = false
        for line in raw.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            if inHeaders && line.isEmpty { inHeaders = false }
            if inHeaders && line.hasPrefix("gpgsig ") {
                inSig = true
                signature += line.dropFirst("gpgsig ".count) + "\n"
                continue
            }
            if inSig && line.hasPrefix(" ") {
                signature += line.dropFirst() + "\n"
                continue
            }
            inSig = false
            signed += line + "\n"
        }
        #expect(signature.hasPrefix("-----BEGIN SSH SIGNATURE-----"))
        #expect(SSHSignatureVerifier.verify(armored: signature, message: Array(signed.utf8)) == .valid(key))
        // The raw object (signature included) is not what was signed.
        #expect(
            SSHSignatureVerifier.verify(armored: signature, message: Array(raw.utf8))
                == .invalid("signature does not match the signed content"))

        // End to end with allowed_signers, and git itself agrees.
        let allowed = "dana@example.com namespaces=\"git\" \(key.authorizedKey)\n"
        let (signers, diags) = AllowedSigners.parse(allowed, path: "policies/allowed_signers")
        #expect(diags.isEmpty)
        #expect(
            signers.check(principal: "dana@example.com", key: key, namespace: "git", at: utc("20260101")) == .allowed)
        let file = try s.write(allowed, "allowed_signers")
        try run(
            git + ["-c", "gpg.ssh.allowedSignersFile=\(file)", "verify-commit", "HEAD"], in: repo, environment: env)
    }
}

// MARK: - allowed_signers

@Suite("allowed_signers")
struct AllowedSignersTests {
    let alice = fakeEd25519(1)
    let bob = fakeEd25519(2)
    let carol = fakeEd25519(3)
    let path = "policies/allowed_signers"

    func b64(_ key: SSHPublicKey) -> String { String(key.authorizedKey.split(separator: " ")[1]) }

    @Test func parsesValidLines() throws {
        let text = """
            # Comments allowed at start of line

            alice@example.com ssh-ed25519 \(b64(alice)) alice's laptop
              "bob@example.com,!mallory@example.com" NAMESPACES="git,file",Valid-After="20260101",valid-before="202701011230Z" ssh-ed25519 \(b64(bob))
            *@example.com cert-authority ssh-ed25519 \(b64(carol))\r
            \t# indented comment
            """
        let (signers, diags) = AllowedSigners.parse(text, path: path)
        #expect(diags == [])
        #expect(signers.entries.count == 3)
        let e0 = signers.entries[0]
        let e1 = signers.entries[1]
        let e2 = signers.entries[2]
        #expect(e0.line == 3 && e0.principals == ["alice@example.com"] && e0.key == alice && !e0.certAuthority)
        #expect(e0.namespaces == nil && e0.validAfter == nil && e0.validBefore == nil)
        #expect(e1.line == 4 && e1.principals == ["bob@example.com", "!mallory@example.com"] && e1.key == bob)
        #expect(e1.namespaces == ["git", "file"])
        #expect(e1.validAfter == 1_767_225_600 && e1.validAfterText == "20260101")
        #expect(e1.validBefore == 1_798_806_600 && e1.validBeforeText == "202701011230Z")
        #expect(e2.line == 5 && e2.certAuthority && e2.principals == ["*@example.com"])
    }

    @Test func reportsEveryBadLineWithLineAndColumn() throws {
        let k = b64(alice)
        let rsaLooking = "alice@example.com ssh-rsa \(k)"
        let lines = [
            "# header",  // line 1
            "alice@example.com",  // line 2
            "alice@example.com ssh-ed25519",  // line 3
            "alice@example.com ssh-ed25519 !!notbase64",  // line 4
            "alice@example.com foo=\"bar\" ssh-ed25519 \(k)",  // line 5
            "alice@example.com namespaces=git ssh-ed25519 \(k)",  // line 6
            "alice@example.com valid-after=\"2026013\" ssh-ed25519 \(k)",  // line 7
            "alice@example.com valid-before=\"20260230\" ssh-ed25519 \(k)",  // line 8
            "\"alice@example.com ssh-ed25519 \(k)",  // line 9
            "alice@example.com,,bob@example.com ssh-ed25519 \(k)",  // line 10
            "alice@example.com ssh-foo \(k)",  // line 11
            rsaLooking,  // line 12
            "alice@example.com valid-after=\"20270101\",valid-before=\"20260101\" ssh-ed25519 \(k)",  // line 13
            "alice@example.com namespaces=\"git\",namespaces=\"file\" ssh-ed25519 \(k)",  // line 14
            "alice@example.com cert-authority ssh-foo \(k)",  // line 15
            "alice@example.com namespaces=\"git,,file\" ssh-ed25519 \(k)",  // line 16
            "  bob@example.com ssh-ed25519 \(b64(bob))",  // line 17
            "alice@example.com cert-authority=\"x\" ssh-ed25519 \(k)",  // line 18
            "alice@example.com namespaces=\"git ssh-ed25519 \(k)",  // line 19
            "alice@example.com ssh-ed25519 AAAA",  // line 20
        ]
        let (signers, diags) = AllowedSigners.parse(lines.joined(separator: "\n") + "\n", path: path)
        #expect(
            diags.map(\.description) == [
                "policies/allowed_signers:2:18: missing key type and key after principals",
                "policies/allowed_signers:3:30: missing base64 key after ssh-ed25519",
                "policies/allowed_signers:4:31: key is not valid base64",
                "policies/allowed_signers:5:19: unknown option \"foo\"",
                "policies/allowed_signers:6:30: value of option namespaces must be in double quotes",
                "policies/allowed_signers:7:32: invalid valid-after time \"2026013\" (expected YYYYMMDD, "
                    + "YYYYMMDDHHMM or "
                    + "YYYYMMDDHHMMSS, optionally followed by Z, after 1970)",
                "policies/allowed_signers:9:1: unterminated quote in principals",
                "policies/allowed_signers:11:19: unknown key type \"ssh-foo\"",
                "policies/allowed_signers:12:27: key is of type ssh-ed25519, but the line says ssh-rsa",
                "policies/allowed_signers:13:42: valid-before 20260101 is not after valid-after 20270101",
                "policies/allowed_signers:14:36: multiple namespaces options",
                "policies/allowed_signers:15:34: unknown key type \"ssh-foo\"",
                "policies/allowed_signers:18:19: option cert-authority takes no value",
                "policies/allowed_signers:19:30: unterminated quote in options",
                "policies/allowed_signers:20:31: invalid key: key blob has no key type",
            ])
        // Good lines around the bad ones are kept. As in OpenSSH: February 30th rolls over to
        // March 2nd (line 8), and empty patterns in a list are allowed (lines 10, 16).
        #expect(signers.entries.map(\.line) == [8, 10, 16, 17])
        #expect(signers.entries.last?.key == bob)
        #expect(signers.unreadable.map(\.line) == [2, 3, 4, 5, 6, 7, 9, 11, 12, 13, 14, 15, 18, 19, 20])
    }

    @Test func byteOrderMarkIsReportedAndReadAsOpenSSHReadsIt() {
        let (s, d) = AllowedSigners.parse("\u{feff}alice@example.com ssh-ed25519 \(b64(alice))\n", path: path)
        #expect(
            d.map(\.description) == [
                "policies/allowed_signers:1:1: the file starts with a byte-order mark, "
                    + "which ssh-keygen reads as part of the first principal"
            ])
        #expect(s.check(principal: "alice@example.com", key: alice, namespace: "git", at: utc("20260102")) != .allowed)
    }

    @Test func allowsListedKeyForItsPrincipal() {
        let (s, _) = AllowedSigners.parse("alice@example.com ssh-ed25519 \(b64(alice))\n", path: path)
        #expect(s.check(principal: "alice@example.com", key: alice, namespace: "git", at: utc("20260102")) == .allowed)
        // Principals are case-sensitive, as in OpenSSH.
        #expect(
            s.check(principal: "Alice@example.com", key: alice, namespace: "git", at: utc("20260102"))
                == .denied("key \(alice.fingerprint) is allowed for alice@example.com, not Alice@example.com"))
    }

    @Test func deniesKeyNotListed() {
        let (s, _) = AllowedSigners.parse("alice@example.com ssh-ed25519 \(b64(alice))\n", path: path)
        #expect(
            s.check(principal: "alice@example.com", key: bob, namespace: "git", at: utc("20260102"))
                == .denied("key \(bob.fingerprint) is not in policies/allowed_signers"))
        let (empty, _) = AllowedSigners.parse("", path: path)
        #expect(
            empty.check(principal: "alice@example.com", key: alice, namespace: "git", at: utc("20260102"))
                == .denied("key \(alice.fingerprint) is not in policies/allowed_signers"))
    }

    @Test func deniesKeyListedForOtherPrincipals() {
        let text = """
            bob@example.com ssh-ed25519 \(b64(bob))
            bob@corp.example.com,bob@example.com ssh-ed25519 \(b64(bob))
            alice@example.com ssh-ed25519 \(b64(alice))
            """
        let (s, _) = AllowedSigners.parse(text, path: path)
        #expect(
            s.check(principal: "alice@example.com", key: bob, namespace: "git", at: utc("20260102"))
                == .denied(
                    "key \(bob.fingerprint) is allowed for bob@example.com, bob@corp.example.com, not alice@example.com"
                ))
        #expect(s.check(principal: "bob@corp.example.com", key: bob, namespace: "git", at: utc("20260102")) == .allowed)
    }

    @Test func namespaces() {
        let text = """
            alice@example.com namespaces="file" ssh-ed25519 \(b64(alice))
            bob@example.com namespaces="g?t,file" ssh-ed25519 \(b64(bob))
            carol@example.com namespaces="*,!git" ssh-ed25519 \(b64(carol))
            """
        let (s, d) = AllowedSigners.parse(text, path: path)
        #expect(d.isEmpty)
        #expect(
            s.check(principal: "alice@example.com", key: alice, namespace: "git", at: utc("20260102"))
                == .denied(
                    "namespace \"git\" is not allowed for key \(alice.fingerprint) (policies/allowed_signers "
                        + "line 1 allows namespaces=\"file\")"
                ))
        #expect(s.check(principal: "alice@example.com", key: alice, namespace: "file", at: utc("20260102")) == .allowed)
        #expect(s.check(principal: "bob@example.com", key: bob, namespace: "git", at: utc("20260102")) == .allowed)
        #expect(
            s.check(principal: "carol@example.com", key: carol, namespace: "git", at: utc("20260102"))
                == .denied(
                    "namespace \"git\" is not allowed for key \(carol.fingerprint) (policies/allowed_signers "
                        + "line 3 allows namespaces=\"*,!git\")"
                ))
        #expect(s.check(principal: "carol@example.com", key: carol, namespace: "file", at: utc("20260102")) == .allowed)
    }

    @Test func validityWindow() {
        let text = """
            alice@example.com valid-after="20270101" ssh-ed25519 \(b64(alice))
            bob@example.com valid-before="20260101120000Z" ssh-ed25519 \(b64(bob))
            carol@example.com valid-after="202601011200",valid-before="20260201Z" ssh-ed25519 \(b64(carol))
            """
        let (s, d) = AllowedSigners.parse(text, path: path)
        #expect(d.isEmpty)
        let t = utc("20260102030405")
        #expect(
            s.check(principal: "alice@example.com", key: alice, namespace: "git", at: t)
                == .denied(
                    "signature made 2026-01-02T03:04:05Z is before valid-after 20270101 of key "
                        + "\(alice.fingerprint) (policies/allowed_signers line 1)"
                ))
        #expect(s.check(principal: "alice@example.com", key: alice, namespace: "git", at: utc("20270101")) == .allowed)
        #expect(
            s.check(principal: "bob@example.com", key: bob, namespace: "git", at: t)
                == .denied(
                    "signature made 2026-01-02T03:04:05Z is after valid-before 20260101120000Z of key "
                        + "\(bob.fingerprint) (policies/allowed_signers line 2)"
                ))
        // Bounds are inclusive, in whole seconds.
        #expect(
            s.check(principal: "bob@example.com", key: bob, namespace: "git", at: utc("20260101120000")) == .allowed)
        #expect(
            s.check(
                principal: "bob@example.com", key: bob, namespace: "git",
                at: utc("20260101120000").addingTimeInterval(0.5)) == .allowed)
        #expect(
            s.check(principal: "bob@example.com", key: bob, namespace: "git", at: utc("20260101120001")) != .allowed)
        #expect(s.check(principal: "carol@example.com", key: carol, namespace: "git", at: t) == .allowed)
        #expect(
            s.check(principal: "carol@example.com", key: carol, namespace: "git", at: utc("20260101115959"))
                == .denied(
                    "signature made 2026-01-01T11:59:59Z is before valid-after 202601011200 of key "
                        + "\(carol.fingerprint) (policies/allowed_signers line 3)"
                ))
        #expect(
            s.check(principal: "carol@example.com", key: carol, namespace: "git", at: utc("20260201000001"))
                == .denied(
                    "signature made 2026-02-01T00:00:01Z is after valid-before 20260201Z of key "
                        + "\(carol.fingerprint) (policies/allowed_signers line 3)"
                ))
    }

    @Test func laterLineCanAllowWhatAnEarlierLineDenies() {
        // Key rotation: the same key for the same principal on two lines, one expired.
        let text = """
            alice@example.com valid-before="20250101Z" ssh-ed25519 \(b64(alice))
            alice@example.com valid-after="20250101Z" ssh-ed25519 \(b64(alice))
            """
        let (s, _) = AllowedSigners.parse(text, path: path)
        #expect(s.check(principal: "alice@example.com", key: alice, namespace: "git", at: utc("20260102")) == .allowed)
    }

    @Test func wildcardsAndNegation() {
        let text = """
            *@example.com,!mallory@example.com ssh-ed25519 \(b64(alice))
            dev-?@corp.example.com ssh-ed25519 \(b64(bob))
            """
        let (s, _) = AllowedSigners.parse(text, path: path)
        let at = utc("20260102")
        #expect(s.check(principal: "anyone@example.com", key: alice, namespace: "git", at: at) == .allowed)
        #expect(s.check(principal: "@example.com", key: alice, namespace: "git", at: at) == .allowed)
        #expect(
            s.check(principal: "mallory@example.com", key: alice, namespace: "git", at: at)
                == .denied(
                    "key \(alice.fingerprint) is not allowed for mallory@example.com: excluded by "
                        + "!mallory@example.com in policies/allowed_signers line 1"
                ))
        #expect(
            s.check(principal: "anyone@example.org", key: alice, namespace: "git", at: at)
                == .denied("key \(alice.fingerprint) is allowed for *@example.com, not anyone@example.org"))
        #expect(s.check(principal: "dev-1@corp.example.com", key: bob, namespace: "git", at: at) == .allowed)
        #expect(s.check(principal: "dev-12@corp.example.com", key: bob, namespace: "git", at: at) != .allowed)
        #expect(s.check(principal: "dev-@corp.example.com", key: bob, namespace: "git", at: at) != .allowed)
    }

    @Test func certAuthorityKeyDoesNotSignForItself() {
        let (s, d) = AllowedSigners.parse("*@example.com cert-authority ssh-ed25519 \(b64(alice))\n", path: path)
        #expect(d.isEmpty)
        #expect(s.entries.first?.certAuthority == true)
        #expect(
            s.check(principal: "alice@example.com", key: alice, namespace: "git", at: utc("20260102"))
                == .denied(
                    "key \(alice.fingerprint) is listed in policies/allowed_signers only as a cert-authority: it "
                        + "vouches for certificates it signs, not for signatures it makes itself"))
    }

    @Test func randomInputNeverCrashes() {
        // Deterministic pseudo-random lines over the characters the parser cares about.
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return seed >> 33
        }
        let pieces = [
            "a", "@", ",", "!", "*", "?", "\"", "=", " ", "\t", "#", "\r", "Z", "0", "2026", "\u{e9}",
            "namespaces", "valid-after", "valid-before", "cert-authority", "ssh-ed25519", "ssh-rsa",
            b64(alice), "AAAA", "==",
        ]
        var text = ""
        for _ in 0..<2000 {
            for _ in 0..<(next() % 12) { text += pieces[Int(next() % UInt64(pieces.count))] }
            text += "\n"
        }
        let (signers, diags) = AllowedSigners.parse(text, path: path)
        #expect(diags.allSatisfy { $0.line >= 1 && $0.column >= 1 })
        _ = signers.check(principal: "a@a", key: alice, namespace: "git", at: Date())

        for n in 0..<300 {
            let bytes = Array("SSHSIG".utf8) + [0, 0, 0, 1] + (0..<(n % 97)).map { _ in UInt8(next() & 0xff) }
            if case .valid = SSHSignatureVerifier.verify(signature: bytes, message: [], namespace: "git") {
                Issue.record("random bytes verified")
            }
        }
    }

    @Test func globMatching() {
        func m(_ s: String, _ p: String) -> Bool { AllowedSigners.globMatch(Array(s.utf8), Array(p.utf8)) }
        #expect(m("", "") && m("", "*") && m("abc", "*") && m("abc", "a*c") && m("abc", "a?c") && m("abc", "*c"))
        #expect(m("aXbXc", "a*b*c") && m("abcbc", "*bc") && m("ab", "ab**") && m("a*c", "a*c"))
        #expect(!m("abc", "a?") && !m("abc", "b*") && !m("", "?") && !m("abd", "*c"))
        // Bytes, as OpenSSH: "ä" is two bytes, so one `?` does not match it and two do.
        #expect(!m("\u{e4}", "?") && m("\u{e4}", "??") && !m("\u{e4}", "a"))
        // OpenSSH's pattern lists: a `!` match refuses outright; sub-patterns of 1023+ bytes fail the list.
        #expect(AllowedSigners.matchPatternList(Array("a".utf8), Array("a,!a".utf8)) == .negated("!a"))
        #expect(AllowedSigners.matchPatternList(Array("a".utf8), Array("a,".utf8)) == .match)
        #expect(
            AllowedSigners.matchPatternList(Array("a".utf8), Array(("a," + String(repeating: "b", count: 1023)).utf8))
                == .noMatch)
    }

    @Test func timeParsing() {
        // OpenSSH refuses the epoch itself and anything before it.
        #expect(AllowedSigners.parseTime("19700101") == nil)
        #expect(AllowedSigners.parseTime("19700101Z") == nil)
        #expect(AllowedSigners.parseTime("19700101000001Z") == 1)
        #expect(AllowedSigners.parseTime("20000229") == 951_782_400)
        #expect(AllowedSigners.parseTime("202601021304") == 1_767_359_040)
        #expect(AllowedSigners.parseTime("20260102130405Z") == 1_767_359_045)
        // As glibc's strptime and timegm: days past the month's end roll over, second 60 too,
        // white space before a number is skipped; Z, z and UTC all mean UTC.
        #expect(AllowedSigners.parseTime("21000229") == AllowedSigners.parseTime("21000301"))
        #expect(AllowedSigners.parseTime("20260230Z") == AllowedSigners.parseTime("20260302Z"))
        #expect(AllowedSigners.parseTime("20260101235960Z") == AllowedSigners.parseTime("20260102000000Z"))
        #expect(AllowedSigners.parseTime("2026 101Z") == AllowedSigners.parseTime("20260101Z"))
        #expect(AllowedSigners.parseTime("20260101utc") == AllowedSigners.parseTime("20260101z"))
        for bad in [
            "", "2026", "2026010", "202601021", "20261301", "20260100", "20260101246000", "2026010112600Z",
            "2026-01-01", "20260101ZZ", "20260132", "2026010 1Z", "+2026010", "00000101",
        ] {
            #expect(AllowedSigners.parseTime(bad) == nil, "\(bad)")
        }
        #expect(AllowedSigners.iso8601(0) == "1970-01-01T00:00:00Z")
        #expect(AllowedSigners.iso8601(1_767_359_045) == "2026-01-02T13:04:05Z")
        #expect(AllowedSigners.iso8601(-1) == "1969-12-31T23:59:59Z")
    }
}

// MARK: - Agreement with ssh-keygen -Y verify

@Suite("allowed_signers agrees with ssh-keygen", .enabled(if: hasSSHKeygen, "needs ssh-keygen"))
struct AllowedSignersAgreementTests {
    @Test func sameAnswersAsSSHKeygen() throws {
        let s = try Scratch()
        let (path, key) = try s.makeKey("ed25519")
        let msgFile = s.dir.appendingPathComponent("message")
        try Data(message).write(to: msgFile)
        let sig = try s.sign(message, key: path)
        let sigFile = try s.write(sig, "message.sig")
        guard case .valid(let signer) = SSHSignatureVerifier.verify(armored: sig, message: message) else {
            Issue.record("signature did not verify")
            return
        }
        let k = key.authorizedKey
        let cases: [(file: String, principal: String, time: String)] = [
            ("alice@example.com \(k)", "alice@example.com", "20260102"),
            ("alice@example.com \(k)", "bob@example.com", "20260102"),
            ("*@example.com,!bob@example.com \(k)", "bob@example.com", "20260102"),
            ("*@example.com,!bob@example.com \(k)", "carol@example.com", "20260102"),
            ("\"alice@example.com,dana@example.com\" \(k)", "dana@example.com", "20260102"),
            ("alice@example.com namespaces=\"file\" \(k)", "alice@example.com", "20260102"),
            ("alice@example.com namespaces=\"file,g*\" \(k)", "alice@example.com", "20260102"),
            ("alice@example.com valid-after=\"20270101Z\" \(k)", "alice@example.com", "20260102"),
            ("alice@example.com valid-after=\"20270101Z\" \(k)", "alice@example.com", "20270102"),
            ("alice@example.com valid-before=\"20260101Z\" \(k)", "alice@example.com", "20260102"),
            ("alice@example.com valid-before=\"20260101Z\" \(k)", "alice@example.com", "20251231"),
            ("alice@example.com cert-authority \(k)", "alice@example.com", "20260102"),
        ]
        for c in cases {
            let file = try s.write(c.file + "\n", s.nextName("allowed-"))
            let ours =
                AllowedSigners.parse(c.file, path: "x").0
                .check(principal: c.principal, key: signer, namespace: "git", at: utc(c.time)) == .allowed
            let theirs =
                (try? run(
                    [
                        "ssh-keygen", "-Y", "verify", "-f", file, "-I", c.principal, "-n", "git",
                        "-s", sigFile, "-O", "verify-time=\(c.time)Z",
                    ], stdin: msgFile)) != nil
            #expect(ours == theirs, "\(c)")
        }
    }
}
