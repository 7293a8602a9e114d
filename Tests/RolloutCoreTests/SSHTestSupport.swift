import Crypto
import Foundation
import Testing
import _CryptoExtras

@testable import RolloutCore

// Helpers for the SSH signature tests: real keys, certificates and signatures come from
// `ssh-keygen` (tests only; the library never runs it). Security-key signatures cannot come
// from hardware here, so `SoftSecurityKey` builds them from a software key with the layout of
// PROTOCOL.u2f, and `ssh-keygen -Y verify` checks them like any other.

struct CommandFailed: Error, CustomStringConvertible {
    var description: String
}

/// Runs a program (looked up on PATH); returns its exit status and stdout.
func runTool(
    _ args: [String], in directory: URL? = nil, stdin: URL? = nil, environment: [String: String] = [:]
) throws -> (status: Int32, output: String, error: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = args
    if let directory { process.currentDirectoryURL = directory }
    if !environment.isEmpty {
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    }
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = try stdin.map { try FileHandle(forReadingFrom: $0) } ?? FileHandle.nullDevice
    try process.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (
        process.terminationStatus, String(decoding: outData, as: UTF8.self),
        String(decoding: errData, as: UTF8.self)
    )
}

/// Runs a program; returns its stdout; throws when it exits non-zero.
@discardableResult
func run(
    _ args: [String], in directory: URL? = nil, stdin: URL? = nil, environment: [String: String] = [:]
) throws -> String {
    let result = try runTool(args, in: directory, stdin: stdin, environment: environment)
    guard result.status == 0 else {
        throw CommandFailed(description: "\(args.joined(separator: " ")) exited \(result.status): \(result.error)")
    }
    return result.output
}

let hasSSHKeygen = (try? run(["sh", "-c", "command -v ssh-keygen"])) != nil
let hasGit = hasSSHKeygen && (try? run(["git", "--version"])) != nil

/// A temporary directory with ssh-keygen made keys and signatures; removed on deinit.
final class Scratch: @unchecked Sendable {
    let dir: URL
    private var counter = 0
    private let lock = NSLock()

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("sshsig-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: dir) }

    func nextName(_ prefix: String) -> String {
        lock.lock()
        defer { lock.unlock() }
        counter += 1
        return "\(prefix)\(counter)"
    }

    /// `ssh-keygen -t TYPE [-b BITS]`; returns the private key path and the public key.
    func makeKey(_ type: String, bits: Int? = nil) throws -> (path: String, key: SSHPublicKey) {
        let path = dir.appendingPathComponent(nextName("key-\(type)-")).path
        var args = ["ssh-keygen", "-q", "-t", type, "-N", "", "-C", "test", "-f", path]
        if let bits { args += ["-b", String(bits)] }
        try run(args)
        let pub = try String(contentsOfFile: path + ".pub", encoding: .utf8)
        let key = try #require(SSHPublicKey(authorizedKey: pub))
        return (path, key)
    }

    /// `ssh-keygen -s CA -I ID -n PRINCIPALS -V VALIDITY KEY.pub`; returns the certificate's
    /// path (`KEY-cert.pub`, which `ssh-keygen -Y sign -f` takes) and the certificate.
    func certify(
        _ keyPath: String, ca: String, id: String, principals: String, validity: String,
        extra: [String] = []
    ) throws -> (path: String, key: SSHPublicKey) {
        try run(
            ["ssh-keygen", "-q", "-s", ca, "-I", id, "-n", principals, "-V", validity] + extra + [keyPath + ".pub"])
        let path = keyPath + "-cert.pub"
        let key = try #require(SSHPublicKey(authorizedKey: try String(contentsOfFile: path, encoding: .utf8)))
        return (path, key)
    }

    /// `ssh-keygen -Y sign -n NAMESPACE -f KEY [-O hashalg=…]` over `message`; returns the armor.
    func sign(_ message: [UInt8], key: String, namespace: String = "git", hashalg: String? = nil) throws -> String {
        let file = dir.appendingPathComponent(nextName("msg-"))
        try Data(message).write(to: file)
        var args = ["ssh-keygen", "-q", "-Y", "sign", "-n", namespace, "-f", key]
        if let hashalg { args += ["-O", "hashalg=\(hashalg)"] }
        return try run(args, stdin: file)
    }

    @discardableResult
    func write(_ text: String, _ name: String) throws -> String {
        let url = dir.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url.path
    }

    /// Runs many `ssh-keygen -Y verify` in one shell script (one process start per check
    /// instead of a Foundation `Process` each); TZ=UTC as in `sshKeygenVerifies`.
    func sshKeygenVerifyBatch(
        _ jobs: [(allowedSigners: String, principal: String, signature: String, time: String)],
        message: [UInt8], namespace: String = "git"
    ) throws -> [Bool] {
        var files: [String: String] = [:]
        func file(_ content: String, _ prefix: String) throws -> String {
            if let path = files[content] { return path }
            let path = try write(content, nextName(prefix))
            files[content] = path
            return path
        }
        let msg = dir.appendingPathComponent(nextName("data-"))
        try Data(message).write(to: msg)
        var script = "export TZ=UTC\n"
        for job in jobs {
            precondition(!job.principal.contains("'") && !job.time.contains("'"))
            let allowed = try file(job.allowedSigners, "allowed-")
            let sig = try file(job.signature, "sig-")
            script +=
                "ssh-keygen -Y verify -f '\(allowed)' -I '\(job.principal)' -n '\(namespace)' -s '\(sig)' "
                + "'-Overify-time=\(job.time)' < '\(msg.path)' >/dev/null 2>&1; echo $?\n"
        }
        let scriptPath = try write(script, nextName("verify-") + ".sh")
        let output = try run(["sh", scriptPath])
        let codes = output.split(separator: "\n").map { $0 == "0" }
        guard codes.count == jobs.count else {
            throw CommandFailed(description: "batch gave \(codes.count) answers for \(jobs.count) checks")
        }
        return codes
    }

    /// `ssh-keygen -Y verify` (TZ=UTC, so times without Z read as UTC, as rolloutctl reads them).
    func sshKeygenVerifies(
        allowedSigners: String, principal: String, signature: String, message: [UInt8],
        time: String, namespace: String = "git"
    ) throws -> Bool {
        let allowed = try write(allowedSigners, nextName("allowed-"))
        let sig = try write(signature, nextName("sig-"))
        let msg = dir.appendingPathComponent(nextName("data-"))
        try Data(message).write(to: msg)
        let result = try runTool(
            [
                "ssh-keygen", "-Y", "verify", "-f", allowed, "-I", principal, "-n", namespace,
                "-s", sig, "-Overify-time=\(time)",
            ], stdin: msg, environment: ["TZ": "UTC"])
        return result.status == 0
    }
}

func sshString(_ bytes: [UInt8]) -> [UInt8] { SSHWire.string(bytes) }

func armor(_ bytes: [UInt8]) -> String {
    "-----BEGIN SSH SIGNATURE-----\n" + Data(bytes).base64EncodedString(options: [.lineLength64Characters])
        + "\n-----END SSH SIGNATURE-----\n"
}

/// The binary SSHSIG blob inside an armor.
func dearmor(_ armored: String) throws -> [UInt8] {
    let body = armored.split(whereSeparator: \.isNewline).filter { !$0.hasPrefix("-----") }.joined()
    return try #require(SSHBase64.decode(body))
}

/// `MAGIC || uint32 1 || string(key) || string(ns) || string("") || string(hashalg) || string(sig)`
/// around a signature over the PROTOCOL.sshsig signed data, made by `signer`.
func buildSSHSIG(
    publicKey: [UInt8], message: [UInt8], namespace: String = "git", hashalg: String = "sha512",
    signer: ([UInt8]) throws -> [UInt8]
) rethrows -> String {
    let hash: [UInt8] = hashalg == "sha256" ? Array(SHA256.hash(data: message)) : Array(SHA512.hash(data: message))
    let signed =
        Array("SSHSIG".utf8) + sshString(Array(namespace.utf8)) + sshString([])
        + sshString(Array(hashalg.utf8)) + sshString(hash)
    let sigBlob = try signer(signed)
    return armor(
        Array("SSHSIG".utf8) + [0, 0, 0, 1] + sshString(publicKey) + sshString(Array(namespace.utf8))
            + sshString([]) + sshString(Array(hashalg.utf8)) + sshString(sigBlob))
}

/// An SSH mpint of a non-negative big-endian number.
func mpint(_ raw: [UInt8]) -> [UInt8] {
    let stripped = Array(raw.drop(while: { $0 == 0 }))
    return sshString((stripped.first.map { $0 & 0x80 != 0 } ?? false) ? [0] + stripped : stripped)
}

/// A FIDO security key in software: the public key blob and signatures laid out as
/// PROTOCOL.u2f describes (signed data: SHA256(application) || flags || counter || SHA256(data)).
struct SoftSecurityKey {
    enum Kind { case ed25519, ecdsa }
    let kind: Kind
    let application: String
    private let ed = Curve25519.Signing.PrivateKey()
    private let ec = P256.Signing.PrivateKey()

    init(_ kind: Kind, application: String = "ssh:") {
        self.kind = kind
        self.application = application
    }

    var typeName: String { kind == .ed25519 ? "sk-ssh-ed25519@openssh.com" : "sk-ecdsa-sha2-nistp256@openssh.com" }

    var blob: [UInt8] {
        switch kind {
        case .ed25519:
            return sshString(Array(typeName.utf8)) + sshString(Array(ed.publicKey.rawRepresentation))
                + sshString(Array(application.utf8))
        case .ecdsa:
            return sshString(Array(typeName.utf8)) + sshString(Array("nistp256".utf8))
                + sshString(Array(ec.publicKey.x963Representation)) + sshString(Array(application.utf8))
        }
    }

    var publicKey: SSHPublicKey { SSHPublicKey(keyType: typeName, blob: blob) }

    /// The signature blob over `data` with the given flags (0x01 = user present) and counter.
    func signatureBlob(_ data: [UInt8], flags: UInt8, counter: UInt32) throws -> [UInt8] {
        var signed = Array(SHA256.hash(data: Array(application.utf8)))
        signed.append(flags)
        SSHWire.appendUInt32(&signed, counter)
        signed += SHA256.hash(data: data)
        var tail: [UInt8] = [flags]
        SSHWire.appendUInt32(&tail, counter)
        switch kind {
        case .ed25519:
            return sshString(Array(typeName.utf8)) + sshString(Array(try ed.signature(for: signed))) + tail
        case .ecdsa:
            let raw = Array(try ec.signature(for: signed).rawRepresentation)  // ECDSA over SHA256(signed)
            return sshString(Array(typeName.utf8)) + sshString(mpint(Array(raw[0..<32])) + mpint(Array(raw[32...])))
                + tail
        }
    }

    func sign(_ message: [UInt8], namespace: String = "git", flags: UInt8 = 0x01, counter: UInt32 = 42)
        throws -> String
    {
        try buildSSHSIG(publicKey: blob, message: message, namespace: namespace) {
            try signatureBlob($0, flags: flags, counter: counter)
        }
    }
}

/// An RSA key made by ssh-keygen, re-read through its PEM form so the test can sign with an
/// algorithm of its choice (OpenSSH 9.2's `-Y sign` always uses rsa-sha2-512).
struct RSATestKey {
    let path: String
    let key: SSHPublicKey
    let privateKey: _RSA.Signing.PrivateKey

    init(scratch: Scratch, bits: Int) throws {
        let (path, key) = try scratch.makeKey("rsa", bits: bits)
        let pem = scratch.dir.appendingPathComponent(scratch.nextName("pem-")).path
        try FileManager.default.copyItem(atPath: path, toPath: pem)
        try run(["ssh-keygen", "-q", "-p", "-N", "", "-m", "PEM", "-f", pem])
        let text = try String(contentsOfFile: pem, encoding: .utf8)
        self.path = path
        self.key = key
        self.privateKey =
            bits >= 2048
            ? try _RSA.Signing.PrivateKey(pemRepresentation: text)
            : try _RSA.Signing.PrivateKey(unsafePEMRepresentation: text)
    }

    /// An SSHSIG with signature algorithm `rsa-sha2-256`, `rsa-sha2-512` or `ssh-rsa` (SHA-1).
    func sign(_ message: [UInt8], algorithm: String, hashalg: String = "sha512") throws -> String {
        try buildSSHSIG(publicKey: key.blob, message: message, hashalg: hashalg) { data in
            let signature: _RSA.Signing.RSASignature
            switch algorithm {
            case "rsa-sha2-256":
                signature = try privateKey.signature(for: SHA256.hash(data: data), padding: .insecurePKCS1v1_5)
            case "rsa-sha2-512":
                signature = try privateKey.signature(for: SHA512.hash(data: data), padding: .insecurePKCS1v1_5)
            default:
                signature = try privateKey.signature(for: Insecure.SHA1.hash(data: data), padding: .insecurePKCS1v1_5)
            }
            return sshString(Array(algorithm.utf8)) + sshString(Array(signature.rawRepresentation))
        }
    }
}

let testMessage = Array(
    ("tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n"
        + "author A <a@example.com> 1700000000 +0000\n\napprove canary-10\n").utf8)

/// Seconds-precision UTC date from `YYYYMMDD[HHMM[SS]]` (with or without `Z`).
func utc(_ stamp: String) -> Date {
    let text = stamp.hasSuffix("Z") ? stamp : stamp + "Z"
    return Date(timeIntervalSince1970: TimeInterval(AllowedSigners.parseTime(text)!))
}

/// What rolloutctl decides for one signature, principal and file: verify, then check.
func rolloutctlAccepts(
    signature: String, message: [UInt8], allowedSigners: String, principal: String,
    time: String, namespace: String = "git"
) -> (Bool, String) {
    switch SSHSignatureVerifier.verify(armored: signature, message: message, namespace: namespace) {
    case .invalid(let why), .unsupported(let why):
        return (false, why)
    case .valid(let key):
        let signers = AllowedSigners.parse(allowedSigners, path: "allowed_signers").0
        switch signers.check(principal: principal, key: key, namespace: namespace, at: utc(time)) {
        case .allowed: return (true, "allowed")
        case .denied(let why): return (false, why)
        }
    }
}
