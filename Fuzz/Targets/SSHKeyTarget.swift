@testable import RolloutCore

/// SSH public keys, in `authorized_keys` form and as wire blobs: a key read back from its own
/// `authorized_keys` form is the same key, and its fingerprint is `SHA256:` + 43 characters.
enum SSHKeyTarget: FuzzTarget {
    static let name = "ssh-key"

    static func run(_ bytes: [UInt8]) throws(FuzzViolation) {
        let keys = [SSHPublicKey(authorizedKey: String(decoding: bytes, as: UTF8.self)), SSHPublicKey(blob: bytes)]
        for case let key? in keys {
            try Fuzz.require(SSHPublicKey(authorizedKey: key.authorizedKey) == key, "\(key) does not re-read")
            try Fuzz.require(
                key.fingerprint.hasPrefix("SHA256:") && key.fingerprint.count == 50,
                "odd fingerprint \(key.fingerprint)")
        }
    }
}
