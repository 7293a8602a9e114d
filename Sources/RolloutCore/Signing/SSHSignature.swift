import Crypto
import Foundation
import _CryptoExtras

// In-process verification of OpenSSH signatures (PROTOCOL.sshsig), as made by
// `ssh-keygen -Y sign -n git` and by `git commit -S` with `gpg.format=ssh`.
// Never shells out to ssh-keygen or gpg.

/// The outcome of verifying one SSH signature.
public enum SSHSignatureVerdict: Equatable, Sendable {
    /// The signature is good and was made by this key (the key embedded in the signature, for a
    /// certificate the certificate, whose CA signature is good too; whether the key is trusted for
    /// a principal is `AllowedSigners.check`'s question).
    case valid(SSHPublicKey)
    /// Malformed, wrong namespace, or not matching the signed content.
    case invalid(String)
    /// Well-formed but uses a key type, hash or signature format this verifier does not
    /// support (never treated as valid).
    case unsupported(String)
}

/// Verifies OpenSSH `SSHSIG` signatures (PROTOCOL.sshsig) as `ssh-keygen -Y verify` does.
///
/// Accepted: hash `sha256`, `sha512`; keys `ssh-ed25519`, `ecdsa-sha2-nistp256/384/521`,
/// `ssh-rsa` of at least 2048 bits with `rsa-sha2-256`/`rsa-sha2-512` signatures, the security
/// keys `sk-ssh-ed25519@openssh.com` and `sk-ecdsa-sha2-nistp256@openssh.com` (user presence
/// required), and OpenSSH user certificates of those keys signed by a CA of those types.
/// Refused with a reason: DSA, webauthn signatures, SHA-1 (`ssh-rsa`) signatures, RSA keys under
/// 2048 bits (all `.unsupported`), security-key signatures without user presence (`.invalid`).
public enum SSHSignatureVerifier {
    static let magic: [UInt8] = Array("SSHSIG".utf8)
    /// RSA keys shorter than this are refused ("weak RSA key"); OpenSSH itself accepts 1024.
    public static let minimumRSABits = 2048

    /// Verifies `armored` (the `-----BEGIN SSH SIGNATURE-----` … `-----END SSH SIGNATURE-----`
    /// text; lines may carry leading/trailing whitespace, as in a commit's `gpgsig` header)
    /// over `message`, the exact signed bytes. For a git commit, `message` is the raw commit
    /// object without its `gpgsig` header (libgit2's `git_commit_extract_signature` "signed data").
    public static func verify(armored: String, message: [UInt8], namespace: String = "git")
        -> SSHSignatureVerdict
    {
        let raw: [UInt8]
        switch dearmor(armored) {
        case .success(let bytes): raw = bytes
        case .failure(let verdict): return verdict
        }
        return verify(signature: raw, message: message, namespace: namespace)
    }

    /// Verifies a de-armored (binary) SSHSIG blob.
    static func verify(signature raw: [UInt8], message: [UInt8], namespace: String)
        -> SSHSignatureVerdict
    {
        var r = SSHWireReader(raw)
        guard let m = r.readBytes(6), m == magic else {
            return .invalid("not an SSH signature (bad magic, expected \"SSHSIG\")")
        }
        guard let version = r.readUInt32() else { return .invalid("truncated SSH signature") }
        // OpenSSH also reads version 0, which no tool writes; refusing it exposes no one.
        guard version == 1 else { return .invalid("unsupported SSH signature version \(version)") }
        guard let keyBlob = r.readString(),
            let sigNamespace = r.readCString(),
            r.readString() != nil,  // reserved: OpenSSH ignores it (verifies with an empty one)
            let hashAlgBytes = r.readCString(),
            let sigBlob = r.readString()
        else { return .invalid("truncated SSH signature") }
        guard r.isAtEnd else { return .invalid("SSH signature has trailing data") }

        let messageHash: [UInt8]
        switch hashAlgBytes {
        case Array("sha256".utf8): messageHash = Array(SHA256.hash(data: message))
        case Array("sha512".utf8): messageHash = Array(SHA512.hash(data: message))
        default: return .unsupported("unsupported hash algorithm \(SSHText.printable(hashAlgBytes))")
        }
        guard sigNamespace == Array(namespace.utf8) else {
            return .invalid("namespace is \"\(SSHText.printable(sigNamespace))\", expected \"\(namespace)\"")
        }
        guard let key = SSHPublicKey(blob: keyBlob) else { return .invalid("malformed public key in signature") }
        let parsed: SSHParsedKey
        switch SSHKeyParser.parse(keyBlob) {
        case .success(let p): parsed = p
        case .failure(.malformed(let why)): return .invalid("malformed public key in signature: \(why)")
        }
        if let cert = parsed.certificate {
            // OpenSSH checks the CA's signature when it reads the certificate.
            switch verifyRaw(material: cert.caMaterial, signature: cert.caSignature, data: cert.signedBytes) {
            case .good: break
            case .bad(let why): return .invalid("certificate \(cert.describe): CA signature: \(why)")
            case .refused(let why): return .unsupported("certificate \(cert.describe): CA signature: \(why)")
            }
        }

        // The signed data: MAGIC || string(namespace) || string("") || string(hash alg) || string(H(message)).
        var signed = magic
        SSHWire.append(&signed, sigNamespace)
        SSHWire.append(&signed, [])
        SSHWire.append(&signed, hashAlgBytes)
        SSHWire.append(&signed, messageHash)

        switch verifyRaw(material: parsed.material, signature: sigBlob, data: signed) {
        case .good: return .valid(key)
        case .bad(let why): return .invalid(why)
        case .refused(let why): return .unsupported(why)
        }
    }

    enum RawResult: Equatable {
        case good
        case bad(String)
        case refused(String)
    }

    /// `sshkey_verify`: one signature blob (`string type || ...`) by a plain key over `data`.
    static func verifyRaw(material: SSHKeyMaterial, signature sigBlob: [UInt8], data: [UInt8]) -> RawResult {
        let mismatch = RawResult.bad("signature does not match the signed content")
        var sr = SSHWireReader(sigBlob)
        guard let sigType = sr.readCString() else { return .bad("malformed signature blob") }
        let plainName = material.plainTypeName
        switch material {
        case .ed25519(let pk):
            guard sigType == Array(plainName.utf8) else { return typeMismatch(sigType, plainName) }
            guard let sig = sr.readString(), sr.isAtEnd, sig.count <= 64 else {
                return .bad("malformed ssh-ed25519 signature")
            }
            guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: pk) else {
                return .bad("malformed ssh-ed25519 public key")
            }
            return key.isValidSignature(sig, for: data) ? .good : mismatch

        case .ecdsa(let curve, let q):
            guard sigType == Array(plainName.utf8) else { return typeMismatch(sigType, plainName) }
            guard let inner = sr.readString(), sr.isAtEnd, let rs = ecdsaRS(inner) else {
                return .bad("malformed \(plainName) signature")
            }
            return ecdsaVerify(curve: curve, q: q, r: rs.r, s: rs.s, data: data) ? .good : mismatch

        case .rsa(let e, let n):
            let bits = SSHKeyMaterial.bitCount(n)
            guard bits >= minimumRSABits else {
                return .refused("weak RSA key: \(bits) bits, at least \(minimumRSABits) are required")
            }
            let useSHA512: Bool
            switch sigType {
            case Array("rsa-sha2-256".utf8): useSHA512 = false
            case Array("rsa-sha2-512".utf8): useSHA512 = true
            case Array("ssh-rsa".utf8):
                return .refused(
                    "SHA-1 signature (ssh-rsa) refused, as OpenSSH refuses it; sign with rsa-sha2-256 or rsa-sha2-512")
            default:
                return typeMismatch(sigType, "rsa-sha2-256 or rsa-sha2-512")
            }
            let modulusBytes = (bits + 7) / 8
            guard var sig = sr.readString(), sr.isAtEnd, sig.count <= modulusBytes, !sig.isEmpty else {
                return .bad("malformed RSA signature")
            }
            if sig.count < modulusBytes {  // OpenSSH left-pads short signatures
                sig = [UInt8](repeating: 0, count: modulusBytes - sig.count) + sig
            }
            guard let key = try? _RSA.Signing.PublicKey(n: n, e: e) else { return .bad("unusable RSA public key") }
            let signature = _RSA.Signing.RSASignature(rawRepresentation: sig)
            let ok =
                useSHA512
                ? key.isValidSignature(signature, for: SHA512.hash(data: data), padding: .insecurePKCS1v1_5)
                : key.isValidSignature(signature, for: SHA256.hash(data: data), padding: .insecurePKCS1v1_5)
            return ok ? .good : mismatch

        case .ed25519SK(let pk, let application):
            guard sigType == Array(plainName.utf8) else { return typeMismatch(sigType, plainName) }
            guard let sig = sr.readString(), let flags = sr.readUInt8(), let counter = sr.readUInt32(), sr.isAtEnd,
                sig.count <= 64
            else { return .bad("malformed \(plainName) signature") }
            guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: pk) else {
                return .bad("malformed \(plainName) public key")
            }
            let signed = skSignedData(application: application, flags: flags, counter: counter, data: data)
            guard key.isValidSignature(sig, for: signed) else { return mismatch }
            return userPresence(flags)

        case .ecdsaSK(let q, let application):
            if sigType == Array("webauthn-sk-ecdsa-sha2-nistp256@openssh.com".utf8) {
                return .refused("unsupported signature algorithm webauthn-sk-ecdsa-sha2-nistp256@openssh.com")
            }
            guard sigType == Array(plainName.utf8) else { return typeMismatch(sigType, plainName) }
            guard let inner = sr.readString(), let flags = sr.readUInt8(), let counter = sr.readUInt32(), sr.isAtEnd,
                let rs = ecdsaRS(inner)
            else { return .bad("malformed \(plainName) signature") }
            let signed = skSignedData(application: application, flags: flags, counter: counter, data: data)
            guard ecdsaVerify(curve: .p256, q: q, r: rs.r, s: rs.s, data: signed) else { return mismatch }
            return userPresence(flags)

        case .dsa:
            return .refused("unsupported key type ssh-dss (DSA)")
        }
    }

    private static func typeMismatch(_ got: [UInt8], _ expected: String) -> RawResult {
        .bad("signature type \(SSHText.printable(got)) does not match key type \(expected)")
    }

    /// OpenSSH requires the user-presence flag (0x01) by default: the key was touched.
    private static func userPresence(_ flags: UInt8) -> RawResult {
        flags & 0x01 != 0
            ? .good
            : .bad("missing user presence: the security key was not touched (flags 0x\(String(flags, radix: 16)))")
    }

    /// PROTOCOL.u2f: SHA256(application) || flags || uint32 counter || SHA256(data).
    private static func skSignedData(application: [UInt8], flags: UInt8, counter: UInt32, data: [UInt8]) -> [UInt8] {
        var out = Array(SHA256.hash(data: application))
        out.append(flags)
        SSHWire.appendUInt32(&out, counter)
        out += SHA256.hash(data: data)
        return out
    }

    /// The `mpint r || mpint s` of an ECDSA signature, with nothing after.
    private static func ecdsaRS(_ inner: [UInt8]) -> (r: [UInt8], s: [UInt8])? {
        var er = SSHWireReader(inner)
        guard let r = er.readPositiveMpint(), let s = er.readPositiveMpint(), er.isAtEnd else { return nil }
        return (r, s)
    }

    /// ECDSA with the curve's hash (RFC 5656 §6.2.1: SHA-256/384/512 for P-256/384/521).
    private static func ecdsaVerify(curve: SSHCurve, q: [UInt8], r: [UInt8], s: [UInt8], data: [UInt8]) -> Bool {
        // r and s come as magnitudes (`readPositiveMpint` checked the sign and dropped leading zeros).
        let width = (curve.pointLength - 1) / 2
        guard r.count <= width, s.count <= width else { return false }
        let rFixed = [UInt8](repeating: 0, count: width - r.count) + r
        let sFixed = [UInt8](repeating: 0, count: width - s.count) + s
        switch curve {
        case .p256:
            guard let key = try? P256.Signing.PublicKey(x963Representation: q),
                let sig = try? P256.Signing.ECDSASignature(rawRepresentation: rFixed + sFixed)
            else { return false }
            return key.isValidSignature(sig, for: SHA256.hash(data: data))
        case .p384:
            guard let key = try? P384.Signing.PublicKey(x963Representation: q),
                let sig = try? P384.Signing.ECDSASignature(rawRepresentation: rFixed + sFixed)
            else { return false }
            return key.isValidSignature(sig, for: SHA384.hash(data: data))
        case .p521:
            guard let key = try? P521.Signing.PublicKey(x963Representation: q),
                let sig = try? P521.Signing.ECDSASignature(rawRepresentation: rFixed + sFixed)
            else { return false }
            return key.isValidSignature(sig, for: SHA512.hash(data: data))
        }
    }

    private enum Dearmored {
        case success([UInt8])
        case failure(SSHSignatureVerdict)
    }

    private static let begin = "-----BEGIN SSH SIGNATURE-----"
    private static let end = "-----END SSH SIGNATURE-----"
    private static let beginBytes = Array(begin.utf8), endBytes = Array(end.utf8)

    /// On bytes, not Foundation strings: this runs for every signed commit of every scan.
    private static func dearmor(_ armored: String) -> Dearmored {
        let text = Array(armored.utf8)
        var start = 0
        while start < text.count && SSHBase64.isSpace(text[start]) { start += 1 }
        let body = text[start...]
        if body.starts(with: "-----BEGIN PGP SIGNATURE-----".utf8) {
            return .failure(.unsupported("OpenPGP signatures are not supported, only SSH signatures"))
        }
        if body.starts(with: "-----BEGIN SIGNED MESSAGE-----".utf8) {
            return .failure(.unsupported("X.509 signatures are not supported, only SSH signatures"))
        }
        guard let beginAt = firstIndex(of: beginBytes, in: text, from: start) else {
            return .failure(.invalid("not an SSH signature (no \(begin) line)"))
        }
        let afterBegin = beginAt + beginBytes.count
        guard let endAt = firstIndex(of: endBytes, in: text, from: afterBegin) else {
            return .failure(.invalid("SSH signature armor has no \(end) line"))
        }
        guard let bytes = SSHBase64.decode(text[afterBegin..<endAt]) else {
            return .failure(.invalid("SSH signature armor is not valid base64"))
        }
        return .success(bytes)
    }

    private static func firstIndex(of needle: [UInt8], in haystack: [UInt8], from: Int) -> Int? {
        guard let first = needle.first, haystack.count - from >= needle.count else { return nil }
        var i = from
        while i <= haystack.count - needle.count {
            if haystack[i] == first && haystack[i..<i + needle.count].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }
}
