@testable import RolloutCore

/// SSHSIG signatures, armored (as in a commit's `gpgsig` header) and as binary blobs: any input
/// gives a verdict; none is `.valid` (the fuzzer cannot forge a signature over this message).
enum SSHSignatureTarget: FuzzTarget {
    static let name = "sshsig"
    static let message = Array("tree 0000000000000000000000000000000000000000\n\nfuzz\n".utf8)

    static func run(_ bytes: [UInt8]) throws(FuzzViolation) {
        for verdict in [
            SSHSignatureVerifier.verify(armored: String(decoding: bytes, as: UTF8.self), message: message),
            SSHSignatureVerifier.verify(signature: bytes, message: message, namespace: "git"),
        ] {
            if case .valid(let key) = verdict { throw FuzzViolation("a fuzzed signature verified with \(key)") }
        }
    }
}
