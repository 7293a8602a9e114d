@testable import RolloutCore

/// `policies/allowed_signers` (allowed_signers file),
/// read as `validate` reads it: every diagnostic points inside the file.
enum AllowedSignersTarget: FuzzTarget {
    static let name = "allowed-signers"

    static func run(_ bytes: [UInt8]) throws(FuzzViolation) {
        _ = try Fuzz.loadAlone(path: "policies/allowed_signers", bytes)
        try checkKeys(bytes)
    }
}

extension AllowedSignersTarget {
    /// Also: every key kept re-reads from its `authorized_keys` form to the same key.
    static func checkKeys(_ bytes: [UInt8]) throws(FuzzViolation) {
        let (signers, _) = AllowedSigners.parse(String(decoding: bytes, as: UTF8.self), path: "allowed_signers")
        for entry in signers.entries {
            try Fuzz.require(
                SSHPublicKey(authorizedKey: entry.key.authorizedKey) == entry.key,
                "line \(entry.line): the key does not re-read from \(entry.key.authorizedKey)")
        }
    }
}
