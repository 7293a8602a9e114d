import Foundation
import Testing

@testable import RolloutCore

/// SPEC §4.0 rule 3 [r3]: a key is its public key material, as `ssh-keygen -l` fingerprints it, whatever
/// its blob says about the type name's case or which RSA signature name it uses.
@Suite struct KeyMaterialTests {
    /// The key's wire blob with its type string replaced (same material).
    func respelled(_ key: SSHPublicKey, as name: String) -> [UInt8] {
        let rest = Array(key.blob[(4 + key.keyType.utf8.count)...])
        return SSHWire.string(Array(name.utf8)) + rest
    }

    /// `ssh-keygen -l -f` on a one-line public key file.
    func sshKeygenFingerprint(_ line: String, in workspace: Scratch) throws -> String {
        let file = try workspace.write(line + "\n", workspace.nextName("pub-"))
        let output = try run(["ssh-keygen", "-l", "-E", "sha256", "-f", file])
        return String(output.split(separator: " ")[1])
    }

    @Test(arguments: [("ed25519", "ED25519"), ("ed25519", "Ed25519"), ("rsa", "rsa-sha2-512"), ("rsa", "RSA")])
    func aRespelledKeyIsTheSameKey(type: String, spelling: String) throws {
        let workspace = try Scratch()
        let (_, key) = try workspace.makeKey(type, bits: type == "rsa" ? 2048 : nil)
        let blob = respelled(key, as: spelling)
        let other = try #require(SSHPublicKey(blob: blob), "\(spelling) is not read as a key")
        #expect(other.blob != key.blob)
        #expect(other.fingerprint == key.fingerprint)
        // ssh-keygen reads the re-spelled blob as the same key, with the same fingerprint.
        let line = key.keyType + " " + Data(blob).base64EncodedString()
        #expect(try sshKeygenFingerprint(line, in: workspace) == key.fingerprint)
    }
}
