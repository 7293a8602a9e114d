import Crypto
import Foundation

// SSH public keys and user certificates in wire format, read as OpenSSH's sshkey.c reads them
// (RFC 4253 §6.6, RFC 5656, PROTOCOL.u2f, PROTOCOL.certkeys).

/// An SSH public key in wire format (RFC 4253 §6.6), e.g. from an `authorized_keys` /
/// `allowed_signers` line or embedded in an SSH signature. A certificate is a key too
/// (`keyType` ends in `-cert-v01@openssh.com`); `certificate` reads it.
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
        guard let type = reader.readCString(), (1...64).contains(type.count),
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

    /// `SHA256:` + unpadded base64 of SHA-256 of the key's canonical blob, as `ssh-keygen -l` prints it
    /// (SPEC §4.0 rule 3: a key is its material). OpenSSH re-serialises a key it read with its canonical
    /// type name, so `SSH-ED25519` or an RSA key spelled `rsa-sha2-512` is the same key as its usual form.
    /// A certificate, or a blob that does not parse, is fingerprinted as it is (rule 8 compares the
    /// certified key: `signingKey`).
    public var fingerprint: String {
        var canonical = blob
        if case .success(let parsed) = SSHKeyParser.parse(blob), parsed.certificate == nil {
            canonical = parsed.material.canonicalBlob
        }
        let digest = Data(SHA256.hash(data: canonical)).base64EncodedString()
        return "SHA256:" + digest.replacingOccurrences(of: "=", with: "")
    }

    /// `keyType base64`, the `authorized_keys` form without a comment.
    public var authorizedKey: String { keyType + " " + Data(blob).base64EncodedString() }

    public var description: String { "\(keyType) \(fingerprint)" }

    /// The certificate this key is, if it is a well-formed SSH certificate (the CA's
    /// signature over it is not checked here; `SSHSignatureVerifier` checks it).
    public var certificate: SSHCertificate? {
        guard case .success(let parsed) = SSHKeyParser.parse(blob), let cert = parsed.certificate else { return nil }
        return cert
    }

    /// The key that holds the signing secret: for a certificate its certified key, otherwise
    /// the key itself. One person's key stays one key across re-issued certificates.
    public var signingKey: SSHPublicKey {
        guard case .success(let parsed) = SSHKeyParser.parse(blob), parsed.certificate != nil else { return self }
        return SSHPublicKey(keyType: parsed.material.plainTypeName, blob: parsed.material.canonicalBlob)
    }
}

/// The public key material of a plain (non-certificate) key, normalized so that two blobs
/// OpenSSH considers the same key (`sshkey_equal_public`) compare equal.
enum SSHKeyMaterial: Hashable, Sendable {
    case ed25519([UInt8])
    case ed25519SK([UInt8], application: [UInt8])
    case ecdsa(SSHCurve, q: [UInt8])
    case ecdsaSK(q: [UInt8], application: [UInt8])
    case rsa(e: [UInt8], n: [UInt8])
    case dsa(p: [UInt8], q: [UInt8], g: [UInt8], y: [UInt8])

    /// The family, as OpenSSH's "plain" key type (`KEY_RSA`, `KEY_ECDSA`…).
    var family: SSHKeyFamily {
        switch self {
        case .ed25519: .ed25519
        case .ed25519SK: .ed25519SK
        case .ecdsa(let curve, _): .ecdsa(curve)
        case .ecdsaSK: .ecdsaSK
        case .rsa: .rsa
        case .dsa: .dsa
        }
    }

    var plainTypeName: String { family.plainName }

    /// The blob of this key as a plain key with its canonical type name.
    var canonicalBlob: [UInt8] {
        var out = SSHWire.string(Array(plainTypeName.utf8))
        func mpint(_ v: [UInt8]) {
            SSHWire.append(&out, (v.first.map { $0 & 0x80 != 0 } ?? false) ? [0] + v : v)
        }
        switch self {
        case .ed25519(let pk):
            SSHWire.append(&out, pk)
        case .ed25519SK(let pk, let app):
            SSHWire.append(&out, pk)
            SSHWire.append(&out, app)
        case .ecdsa(let curve, let q):
            SSHWire.append(&out, Array(curve.name.utf8))
            SSHWire.append(&out, q)
        case .ecdsaSK(let q, let app):
            SSHWire.append(&out, Array("nistp256".utf8))
            SSHWire.append(&out, q)
            SSHWire.append(&out, app)
        case .rsa(let e, let n):
            mpint(e)
            mpint(n)
        case .dsa(let p, let q, let g, let y):
            mpint(p)
            mpint(q)
            mpint(g)
            mpint(y)
        }
        return out
    }

    /// Modulus size of an RSA key in bits.
    static func bitCount(_ n: [UInt8]) -> Int {
        guard let first = n.first else { return 0 }
        return (n.count - 1) * 8 + (8 - first.leadingZeroBitCount)
    }
}

enum SSHCurve: String, Hashable, Sendable {
    case p256 = "nistp256"
    case p384 = "nistp384"
    case p521 = "nistp521"
    var name: String { rawValue }
    /// Uncompressed point length (0x04 || X || Y).
    var pointLength: Int {
        switch self {
        case .p256: 65
        case .p384: 97
        case .p521: 133
        }
    }
}

/// OpenSSH's key types without the certificate distinction.
enum SSHKeyFamily: Hashable, Sendable {
    case ed25519, ed25519SK
    case ecdsa(SSHCurve)
    case ecdsaSK, rsa, dsa

    var plainName: String {
        switch self {
        case .ed25519: "ssh-ed25519"
        case .ed25519SK: "sk-ssh-ed25519@openssh.com"
        case .ecdsa(let c): "ecdsa-sha2-" + c.name
        case .ecdsaSK: "sk-ecdsa-sha2-nistp256@openssh.com"
        case .rsa: "ssh-rsa"
        case .dsa: "ssh-dss"
        }
    }

    /// The type OpenSSH assigns to a key type name (`sshkey_type_from_name`): any name it
    /// knows, including signature-only names such as `rsa-sha2-256`, plus the case-insensitive
    /// short names of plain types. Nil when unknown.
    static func from(name: [UInt8]) -> (family: SSHKeyFamily, certificate: Bool)? {
        if let exact = byName[name] { return exact }
        let lower = String(decoding: name, as: UTF8.self).lowercased()
        switch lower {
        case "rsa": return (.rsa, false)
        case "dsa": return (.dsa, false)
        case "ed25519": return (.ed25519, false)
        case "ed25519-sk": return (.ed25519SK, false)
        default: return nil  // "ECDSA"/"ECDSA-SK" name no curve: OpenSSH fails them later anyway
        }
    }

    /// Every key type name OpenSSH 9 knows (`keyimpls`), as written at the start of an
    /// `allowed_signers` key (`peek_type_nid`: exact, case-sensitive).
    static let byName: [[UInt8]: (family: SSHKeyFamily, certificate: Bool)] = {
        let table: [(String, SSHKeyFamily, Bool)] = [
            ("ssh-ed25519", .ed25519, false), ("ssh-ed25519-cert-v01@openssh.com", .ed25519, true),
            ("sk-ssh-ed25519@openssh.com", .ed25519SK, false),
            ("sk-ssh-ed25519-cert-v01@openssh.com", .ed25519SK, true),
            ("ecdsa-sha2-nistp256", .ecdsa(.p256), false),
            ("ecdsa-sha2-nistp256-cert-v01@openssh.com", .ecdsa(.p256), true),
            ("ecdsa-sha2-nistp384", .ecdsa(.p384), false),
            ("ecdsa-sha2-nistp384-cert-v01@openssh.com", .ecdsa(.p384), true),
            ("ecdsa-sha2-nistp521", .ecdsa(.p521), false),
            ("ecdsa-sha2-nistp521-cert-v01@openssh.com", .ecdsa(.p521), true),
            ("sk-ecdsa-sha2-nistp256@openssh.com", .ecdsaSK, false),
            ("sk-ecdsa-sha2-nistp256-cert-v01@openssh.com", .ecdsaSK, true),
            ("webauthn-sk-ecdsa-sha2-nistp256@openssh.com", .ecdsaSK, false),
            ("ssh-rsa", .rsa, false), ("ssh-rsa-cert-v01@openssh.com", .rsa, true),
            ("rsa-sha2-256", .rsa, false), ("rsa-sha2-512", .rsa, false),
            ("rsa-sha2-256-cert-v01@openssh.com", .rsa, true), ("rsa-sha2-512-cert-v01@openssh.com", .rsa, true),
            ("ssh-dss", .dsa, false), ("ssh-dss-cert-v01@openssh.com", .dsa, true),
        ]
        var out: [[UInt8]: (family: SSHKeyFamily, certificate: Bool)] = [:]
        for (name, family, cert) in table { out[Array(name.utf8)] = (family, cert) }
        return out
    }()
}

/// An OpenSSH certificate (PROTOCOL.certkeys).
public struct SSHCertificate: Equatable, Sendable {
    /// 1 = user, 2 = host.
    public var type: UInt32
    public var serial: UInt64
    public var keyID: String
    /// Principals, as raw bytes (OpenSSH compares them with `strcmp`).
    public var principals: [[UInt8]]
    /// Seconds since 1970, UTC; the certificate is valid for `validAfter <= t < validBefore`.
    public var validAfter: UInt64
    public var validBefore: UInt64
    /// The certificate authority's key (a plain key).
    public var signatureKey: SSHPublicKey

    /// `key ID "…" (serial N)`, for messages.
    public var describe: String { "key ID \"\(SSHText.printable(keyID))\" (serial \(serial))" }

    /// Principals as text (bytes that are not UTF-8 are replaced), for messages.
    public var principalNames: [String] { principals.map { String(decoding: $0, as: UTF8.self) } }

    // Internal parts for verification.
    var material: SSHKeyMaterial
    var caMaterial: SSHKeyMaterial
    var signedBytes: [UInt8]
    var caSignature: [UInt8]
}

/// A parsed key blob: material plus, for certificates, the certificate.
struct SSHParsedKey: Sendable {
    var family: SSHKeyFamily
    var material: SSHKeyMaterial
    var certificate: SSHCertificate?
    /// Normalized identity for `sshkey_equal` (certificates: the whole blob must be equal too).
    var identity: SSHKeyIdentity {
        SSHKeyIdentity(material: material, certificateBlob: certificate == nil ? nil : certificateBlob)
    }
    var certificateBlob: [UInt8] = []
}

struct SSHKeyIdentity: Hashable, Sendable {
    var material: SSHKeyMaterial
    var certificateBlob: [UInt8]?
}

/// Reads key blobs as OpenSSH's `sshkey_from_blob` does (structure, sizes, curve points).
enum SSHKeyParser {
    enum Failure: Error, Equatable {
        case malformed(String)
    }

    static let maxPrincipals = 256

    static func parse(_ blob: [UInt8], allowCertificate: Bool = true) -> Result<SSHParsedKey, Failure> {
        var r = SSHWireReader(blob)
        guard let name = r.readCString() else { return .failure(.malformed("key blob has no key type")) }
        guard let (family, isCert) = SSHKeyFamily.from(name: name) else {
            return .failure(.malformed("unknown key type \(SSHText.printable(name))"))
        }
        if isCert {
            guard allowCertificate else {
                return .failure(.malformed("a certificate cannot be a certificate authority"))
            }
            guard r.readString() != nil else { return .failure(.malformed("truncated certificate")) }  // nonce
        }
        let material: SSHKeyMaterial
        switch readMaterial(family: family, typeName: name, reader: &r) {
        case .success(let m): material = m
        case .failure(let f): return .failure(f)
        }
        var parsed = SSHParsedKey(family: family, material: material, certificate: nil)
        if isCert {
            switch readCertificate(blob: blob, material: material, reader: &r) {
            case .success(let cert):
                parsed.certificate = cert
                parsed.certificateBlob = blob
            case .failure(let f):
                return .failure(f)
            }
        }
        guard r.isAtEnd else { return .failure(.malformed("key blob has trailing data")) }
        return .success(parsed)
    }

    private static func readMaterial(family: SSHKeyFamily, typeName: [UInt8], reader r: inout SSHWireReader)
        -> Result<SSHKeyMaterial, Failure>
    {
        let what = family.plainName
        switch family {
        case .ed25519, .ed25519SK:
            guard let pk = r.readString(), pk.count == 32 else { return .failure(.malformed("malformed \(what) key")) }
            if family == .ed25519 { return .success(.ed25519(pk)) }
            guard let app = r.readCString() else { return .failure(.malformed("malformed \(what) key")) }
            return .success(.ed25519SK(pk, application: app))
        case .ecdsa(let curve):
            guard let c = r.readCString(), c == Array(curve.name.utf8), let q = r.readString(),
                validPoint(q, curve: curve)
            else { return .failure(.malformed("malformed \(what) key")) }
            return .success(.ecdsa(curve, q: q))
        case .ecdsaSK:
            guard let c = r.readCString(), c == Array("nistp256".utf8), let q = r.readString(),
                validPoint(q, curve: .p256), let app = r.readCString()
            else { return .failure(.malformed("malformed \(what) key")) }
            return .success(.ecdsaSK(q: q, application: app))
        case .rsa:
            guard let e = r.readPositiveMpint(), let n = r.readPositiveMpint() else {
                return .failure(.malformed("malformed ssh-rsa key"))
            }
            let bits = SSHKeyMaterial.bitCount(n)
            // OpenSSH refuses to read RSA keys under 1024 bits; signing needs 2048 here.
            guard bits >= 1024, bits <= 16384 else {
                return .failure(.malformed("RSA key of \(bits) bits is unusable"))
            }
            return .success(.rsa(e: e, n: n))
        case .dsa:
            guard let p = r.readPositiveMpint(), let q = r.readPositiveMpint(), let g = r.readPositiveMpint(),
                let y = r.readPositiveMpint()
            else { return .failure(.malformed("malformed ssh-dss key")) }
            return .success(.dsa(p: p, q: q, g: g, y: y))
        }
    }

    static func validPoint(_ q: [UInt8], curve: SSHCurve) -> Bool {
        guard q.count == curve.pointLength, q.first == 0x04 else { return false }
        switch curve {
        case .p256: return (try? P256.Signing.PublicKey(x963Representation: q)) != nil
        case .p384: return (try? P384.Signing.PublicKey(x963Representation: q)) != nil
        case .p521: return (try? P521.Signing.PublicKey(x963Representation: q)) != nil
        }
    }

    private static func readCertificate(blob: [UInt8], material: SSHKeyMaterial, reader r: inout SSHWireReader)
        -> Result<SSHCertificate, Failure>
    {
        let bad = Failure.malformed("malformed certificate")
        guard let serial = r.readUInt64(), let type = r.readUInt32(), let keyID = r.readCString(),
            let principalsBlob = r.readString(), let validAfter = r.readUInt64(), let validBefore = r.readUInt64(),
            let critical = r.readString(), let extensions = r.readString(), r.readString() != nil,
            let caBlob = r.readString()
        else { return .failure(bad) }
        let signedLength = r.consumed
        guard let signature = r.readString() else { return .failure(bad) }
        guard type == 1 || type == 2 else { return .failure(.malformed("certificate of unknown type \(type)")) }
        var principals: [[UInt8]] = []
        var pr = SSHWireReader(principalsBlob)
        while !pr.isAtEnd {
            guard principals.count < maxPrincipals, let p = pr.readCString() else { return .failure(bad) }
            principals.append(p)
        }
        for section in [critical, extensions] {
            var sr = SSHWireReader(section)
            while !sr.isAtEnd {
                guard sr.readString() != nil, sr.readString() != nil else { return .failure(bad) }
            }
        }
        guard case .success(let ca) = parse(caBlob, allowCertificate: false) else {
            return .failure(.malformed("certificate has an invalid CA key"))
        }
        return .success(
            SSHCertificate(
                type: type, serial: serial, keyID: String(decoding: keyID, as: UTF8.self), principals: principals,
                validAfter: validAfter, validBefore: validBefore,
                signatureKey: SSHPublicKey(blob: caBlob) ?? SSHPublicKey(keyType: "?", blob: caBlob),
                material: material, caMaterial: ca.material, signedBytes: Array(blob[0..<signedLength]),
                caSignature: signature))
    }
}

enum SSHText {
    /// Keeps messages readable when hostile input carries odd bytes.
    static func printable(_ bytes: [UInt8]) -> String {
        let cleaned = String(bytes.prefix(64).map { $0 >= 0x20 && $0 < 0x7f ? Character(UnicodeScalar($0)) : "?" })
        return bytes.count > 64 ? cleaned + "…" : cleaned
    }

    static func printable(_ s: String) -> String { printable(Array(s.utf8)) }
}
