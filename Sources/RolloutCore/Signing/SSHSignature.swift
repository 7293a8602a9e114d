import Crypto
import Foundation

// In-process verification of OpenSSH signatures (PROTOCOL.sshsig), as made by
// `ssh-keygen -Y sign -n git` and by `git commit -S` with `gpg.format=ssh`.
// Never shells out to ssh-keygen or gpg.

/// An SSH public key in wire format (RFC 4253 §6.6), e.g. from an `authorized_keys` /
/// `allowed_signers` line or embedded in an SSH signature.
public struct SSHPublicKey: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// The key type name, e.g. `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`.
    public var keyType: String
    /// The wire-format key blob (starts with the key type as an SSH string).
    public var blob: [UInt8]

    public init(keyType: String, blob: [UInt8]) {
        self.keyType = keyType
        self.blob = blob
    }

    /// Reads a wire-format blob; nil unless it starts with a well-formed key type string.
    public init?(blob: [UInt8]) {
        var reader = SSHWireReader(blob)
        // RFC 4251 §6: a name is 1 to 64 printable US-ASCII characters, no space or comma (a type
        // with a space would print as another key's `type base64` and not re-read; found by fuzzing).
        guard let type = reader.readString(), (1...64).contains(type.count),
              type.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ",") }),
              let name = String(bytes: type, encoding: .utf8)
        else { return nil }
        self.init(keyType: name, blob: blob)
    }

    /// Parses `ssh-ed25519 AAAAC3Nza... [comment]` (the `authorized_keys` / `.pub` form).
    /// Nil when the base64 is bad or the blob's embedded type differs from the stated one.
    public init?(authorizedKey: String) {
        let fields = authorizedKey.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard fields.count >= 2 else { return nil }
        self.init(keyType: String(fields[0]), base64: String(fields[1]))
    }

    /// Builds a key from its type name and base64 blob; nil when the base64 is bad or the
    /// blob's embedded type differs from `keyType`.
    init?(keyType: String, base64: String) {
        guard let bytes = SSHBase64.decode(base64), let key = SSHPublicKey(blob: bytes),
              key.keyType == keyType
        else { return nil }
        self = key
    }

    /// `SHA256:` + unpadded base64 of SHA-256(blob), as `ssh-keygen -l` prints it.
    public var fingerprint: String {
        let digest = Data(SHA256.hash(data: blob)).base64EncodedString()
        return "SHA256:" + digest.replacingOccurrences(of: "=", with: "")
    }

    /// `keyType base64`, the `authorized_keys` form without a comment.
    public var authorizedKey: String { keyType + " " + Data(blob).base64EncodedString() }

    public var description: String { "\(keyType) \(fingerprint)" }
}

/// The outcome of verifying one SSH signature.
public enum SSHSignatureVerdict: Equatable, Sendable {
    /// The signature is good and was made by this key (the key embedded in the signature;
    /// whether the key is trusted for a principal is `AllowedSigners.check`'s question).
    case valid(SSHPublicKey)
    /// Malformed, wrong namespace, or not matching the signed content.
    case invalid(String)
    /// Well-formed but uses a key type, hash or signature format this verifier does not
    /// support (never treated as valid).
    case unsupported(String)
}

/// Verifies OpenSSH `SSHSIG` signatures (PROTOCOL.sshsig).
///
/// Supported: hash `sha256`, `sha512`; key types `ssh-ed25519` and `ecdsa-sha2-nistp256`.
/// Anything else (RSA, DSA, other curves, FIDO `sk-*` keys, certificates) is `.unsupported`.
public enum SSHSignatureVerifier {
    static let magic: [UInt8] = Array("SSHSIG".utf8)

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
        guard version == 1 else { return .invalid("unsupported SSH signature version \(version)") }
        guard let keyBlob = r.readString(),
              let sigNamespace = r.readString(),
              let reserved = r.readString(),
              let hashAlgBytes = r.readString(),
              let sigBlob = r.readString()
        else { return .invalid("truncated SSH signature") }
        guard r.isAtEnd else { return .invalid("SSH signature has trailing data") }

        guard let ns = String(bytes: sigNamespace, encoding: .utf8) else {
            return .invalid("signature namespace is not valid UTF-8")
        }
        guard ns == namespace else {
            return .invalid("namespace is \"\(ns)\", expected \"\(namespace)\"")
        }
        guard let hashAlg = String(bytes: hashAlgBytes, encoding: .utf8) else {
            return .invalid("hash algorithm name is not valid UTF-8")
        }
        let messageHash: [UInt8]
        switch hashAlg {
        case "sha256": messageHash = Array(SHA256.hash(data: message))
        case "sha512": messageHash = Array(SHA512.hash(data: message))
        default: return .unsupported("unsupported hash algorithm \(printable(hashAlg))")
        }

        guard let key = SSHPublicKey(blob: keyBlob) else {
            return .invalid("malformed public key in signature")
        }

        // The signed data: MAGIC || string(namespace) || string(reserved) || string(hash alg) || string(H(message)).
        var signed = magic
        appendString(&signed, sigNamespace)
        appendString(&signed, reserved)
        appendString(&signed, hashAlgBytes)
        appendString(&signed, messageHash)

        var sr = SSHWireReader(sigBlob)
        guard let sigTypeBytes = sr.readString(), let sigType = String(bytes: sigTypeBytes, encoding: .utf8),
              let sigData = sr.readString(), sr.isAtEnd
        else { return .invalid("malformed signature blob") }

        switch key.keyType {
        case "ssh-ed25519":
            var kr = SSHWireReader(keyBlob)
            _ = kr.readString()
            guard let pk = kr.readString(), pk.count == 32, kr.isAtEnd else {
                return .invalid("malformed ssh-ed25519 public key")
            }
            guard sigType == "ssh-ed25519" else {
                return .invalid("signature type \(printable(sigType)) does not match key type ssh-ed25519")
            }
            guard sigData.count == 64 else { return .invalid("malformed ssh-ed25519 signature") }
            guard let publicKey = try? Curve25519.Signing.PublicKey(rawRepresentation: pk) else {
                return .invalid("malformed ssh-ed25519 public key")
            }
            return publicKey.isValidSignature(sigData, for: signed)
                ? .valid(key) : .invalid("signature does not match the signed content")

        case "ecdsa-sha2-nistp256":
            var kr = SSHWireReader(keyBlob)
            _ = kr.readString()
            guard let curve = kr.readString(), curve == Array("nistp256".utf8),
                  let q = kr.readString(), kr.isAtEnd
            else { return .invalid("malformed ecdsa-sha2-nistp256 public key") }
            guard sigType == "ecdsa-sha2-nistp256" else {
                return .invalid("signature type \(printable(sigType)) does not match key type ecdsa-sha2-nistp256")
            }
            var er = SSHWireReader(sigData)
            guard let rInt = er.readString(), let sInt = er.readString(), er.isAtEnd,
                  let rFixed = fixedWidth(mpint: rInt, width: 32),
                  let sFixed = fixedWidth(mpint: sInt, width: 32)
            else { return .invalid("malformed ecdsa-sha2-nistp256 signature") }
            guard let publicKey = try? P256.Signing.PublicKey(x963Representation: q) else {
                return .invalid("malformed ecdsa-sha2-nistp256 public key")
            }
            guard let signature = try? P256.Signing.ECDSASignature(rawRepresentation: rFixed + sFixed) else {
                return .invalid("malformed ecdsa-sha2-nistp256 signature")
            }
            // ecdsa-sha2-nistp256 signs SHA-256 of the signed data (RFC 5656 §6.2.1).
            return publicKey.isValidSignature(signature, for: SHA256.hash(data: signed))
                ? .valid(key) : .invalid("signature does not match the signed content")

        default:
            return .unsupported("unsupported key type \(printable(key.keyType))")
        }
    }

    private enum Dearmored {
        case success([UInt8])
        case failure(SSHSignatureVerdict)
    }

    private static let begin = "-----BEGIN SSH SIGNATURE-----"
    private static let end = "-----END SSH SIGNATURE-----"

    private static func dearmor(_ armored: String) -> Dearmored {
        let text = armored.trimmingCharacters(in: .whitespacesAndNewlines)
        if text.hasPrefix("-----BEGIN PGP SIGNATURE-----") {
            return .failure(.unsupported("OpenPGP signatures are not supported, only SSH signatures"))
        }
        if text.hasPrefix("-----BEGIN SIGNED MESSAGE-----") {
            return .failure(.unsupported("X.509 signatures are not supported, only SSH signatures"))
        }
        guard let beginRange = text.range(of: begin) else {
            return .failure(.invalid("not an SSH signature (no \(begin) line)"))
        }
        guard let endRange = text.range(of: end, range: beginRange.upperBound..<text.endIndex) else {
            return .failure(.invalid("SSH signature armor has no \(end) line"))
        }
        let body = text[beginRange.upperBound..<endRange.lowerBound].filter { !$0.isWhitespace }
        guard let bytes = SSHBase64.decode(String(body)) else {
            return .failure(.invalid("SSH signature armor is not valid base64"))
        }
        return .success(bytes)
    }

    /// Converts an SSH mpint (big-endian two's complement, must be non-negative) to exactly
    /// `width` bytes: strips leading zero bytes, left-pads with zeros. Nil if negative or too wide.
    static func fixedWidth(mpint: [UInt8], width: Int) -> [UInt8]? {
        if let first = mpint.first, first & 0x80 != 0 { return nil }  // negative
        let stripped = mpint.drop(while: { $0 == 0 })
        guard stripped.count <= width else { return nil }
        return [UInt8](repeating: 0, count: width - stripped.count) + stripped
    }

    private static func appendString(_ out: inout [UInt8], _ bytes: [UInt8]) {
        let n = UInt32(bytes.count)
        out += [UInt8(n >> 24 & 0xff), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)]
        out += bytes
    }

    /// Keeps reasons readable when a hostile signature carries odd names.
    private static func printable(_ s: String) -> String {
        let cleaned = String(s.unicodeScalars.map { $0.value >= 0x20 && $0.value < 0x7f ? Character($0) : "?" })
        return cleaned.count > 64 ? String(cleaned.prefix(64)) + "…" : cleaned
    }
}

/// Bounds-checked reader for SSH wire encoding (RFC 4251 §5). Never traps on bad input.
struct SSHWireReader {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isAtEnd: Bool { offset == bytes.count }

    mutating func readBytes(_ n: Int) -> [UInt8]? {
        guard n >= 0, bytes.count - offset >= n else { return nil }
        defer { offset += n }
        return Array(bytes[offset..<offset + n])
    }

    mutating func readUInt32() -> UInt32? {
        guard let b = readBytes(4) else { return nil }
        return UInt32(b[0]) << 24 | UInt32(b[1]) << 16 | UInt32(b[2]) << 8 | UInt32(b[3])
    }

    /// An SSH `string`: uint32 length, then that many bytes.
    mutating func readString() -> [UInt8]? {
        let saved = offset
        guard let n = readUInt32(), let b = readBytes(Int(n)) else {
            offset = saved
            return nil
        }
        return b
    }
}

enum SSHBase64 {
    /// Strict base64 (standard alphabet, padding required, no whitespace); nil otherwise.
    static func decode(_ s: String) -> [UInt8]? {
        guard !s.isEmpty, s.utf8.count % 4 == 0,
              s.utf8.allSatisfy({ c in
                  (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39)
                      || c == 0x2b || c == 0x2f || c == 0x3d
              }),
              let data = Data(base64Encoded: s)
        else { return nil }
        return Array(data)
    }
}
