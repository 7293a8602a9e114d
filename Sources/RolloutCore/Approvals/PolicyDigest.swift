import Crypto

/// The policy digest of SPEC §4.3: sha256 (hex) of the lines `git ls-tree -r <commit> -- policies`
/// prints for every file under `policies/` except `policies/approvals/`, each ending in a newline,
/// in git's order. A person checks it with
/// `git ls-tree -r HEAD -- policies | grep -v $'\tpolicies/approvals/' | sha256sum`.
public enum PolicyDigest {
    /// The digest of the policy files among `files` (listed in git's tree order, as the git adapter lists them).
    public static func compute(_ files: [TreeFile]) -> String {
        var hasher = SHA256()
        for file in files where RepositoryLayout.isPolicyFile(file.path) {
            hasher.update(data: Array(line(file).utf8))
        }
        return hasher.finalize().map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }

    /// `<mode> SP <type> SP <object> TAB <path> LF`, as `git ls-tree` prints it.
    static func line(_ file: TreeFile) -> String {
        var mode = String(file.mode, radix: 8)
        while mode.utf8.count < 6 { mode = "0" + mode }
        let type = file.kind == .submodule ? "commit" : "blob"
        return "\(mode) \(type) \(file.objectID)\t\(quotedPath(file.path))\n"
    }

    /// git's `quote_c_style` with `core.quotePath` on (its default): a path with a control byte,
    /// a quote, a backslash or a byte above 0x7f is printed in double quotes with C escapes.
    static func quotedPath(_ path: String) -> String {
        let bytes = Array(path.utf8)
        func needsQuote(_ byte: UInt8) -> Bool {
            byte < 0x20 || byte == 0x22 || byte == 0x5C || byte >= 0x7F
        }
        guard bytes.contains(where: needsQuote) else { return path }
        var out = "\""
        for byte in bytes {
            switch byte {
            case 0x07: out += "\\a"
            case 0x08: out += "\\b"
            case 0x09: out += "\\t"
            case 0x0A: out += "\\n"
            case 0x0B: out += "\\v"
            case 0x0C: out += "\\f"
            case 0x0D: out += "\\r"
            case 0x22: out += "\\\""
            case 0x5C: out += "\\\\"
            case _ where needsQuote(byte):
                let octal = String(byte, radix: 8)
                out += "\\" + String(repeating: "0", count: 3 - octal.utf8.count) + octal
            default:
                out += String(UnicodeScalar(byte))
            }
        }
        return out + "\""
    }
}
