import Foundation

// git's SSH allowed-signers file (`gpg.ssh.allowedSignersFile`), read byte for byte as
// OpenSSH's sshsig.c reads it (the ALLOWED SIGNERS section of ssh-keygen(1)):
//
//     principals [options] keytype base64-key [comment]
//
// - `principals`: a comma-separated pattern list (`*`, `?`, a leading `!` negates), compared
//   on bytes, case-sensitively (`match_pattern_list`). The field ends at a blank; one pair of
//   double quotes in it may enclose blanks (`strdelimw`).
// - options, comma-separated, names case-insensitive: `cert-authority`, `namespaces="list"`,
//   `valid-after="time"`, `valid-before="time"`; `\"` escapes a quote inside a value.
// - time: YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS, optionally followed by `Z` (or `UTC`).
//
// A line OpenSSH cannot read is skipped by OpenSSH; here it is also a diagnostic at its line
// and column, and an approval whose key is only on such a line says so.
//
// Deviation from OpenSSH, on purpose: a time without `Z` is local time in OpenSSH; here it is
// UTC, so that every machine gives the same answer. Write `Z` to be explicit.

/// The answer to "may this key sign as this principal, in this namespace, at this time?".
public enum AllowedSignerCheck: Equatable, Sendable {
    case allowed
    case denied(String)
}

/// A parsed allowed-signers file.
public struct AllowedSigners: Sendable {
    /// One readable line of the file.
    public struct Entry: Equatable, Sendable {
        /// 1-based line number in the file.
        public var line: Int
        /// Principal patterns (`*`, `?` wildcards; a leading `!` negates), quotes removed.
        public var principals: [String]
        public var key: SSHPublicKey
        public var certAuthority: Bool
        /// Namespace patterns from `namespaces="…"`; nil when the option is absent (any namespace).
        public var namespaces: [String]?
        /// `valid-after` as seconds since 1970 (UTC) and as written in the file.
        public var validAfter: Int64?
        public var validAfterText: String?
        /// `valid-before` as seconds since 1970 (UTC) and as written in the file.
        public var validBefore: Int64?
        public var validBeforeText: String?

        /// The principals field as OpenSSH matches it (bytes, commas included).
        var principalPatterns: [UInt8]
        var namespacePatterns: [UInt8]?
        var parsedKey: SSHParsedKey?

        public init(
            line: Int, principals: [String], key: SSHPublicKey, certAuthority: Bool = false,
            namespaces: [String]? = nil, validAfter: Int64? = nil, validAfterText: String? = nil,
            validBefore: Int64? = nil, validBeforeText: String? = nil
        ) {
            self.line = line
            self.principals = principals
            self.key = key
            self.certAuthority = certAuthority
            self.namespaces = namespaces
            self.validAfter = validAfter
            self.validAfterText = validAfterText
            self.validBefore = validBefore
            self.validBeforeText = validBeforeText
            self.principalPatterns = Array(principals.joined(separator: ",").utf8)
            self.namespacePatterns = namespaces.map { Array($0.joined(separator: ",").utf8) }
            if case .success(let parsed) = SSHKeyParser.parse(key.blob) { self.parsedKey = parsed }
        }

        public static func == (a: Entry, b: Entry) -> Bool {
            a.line == b.line && a.principalPatterns == b.principalPatterns && a.key == b.key
                && a.certAuthority == b.certAuthority && a.namespacePatterns == b.namespacePatterns
                && a.validAfter == b.validAfter && a.validBefore == b.validBefore
        }
    }

    /// A line OpenSSH cannot read (and skips), with the key blobs that appear on it.
    public struct UnreadableLine: Equatable, Sendable {
        public var line: Int
        /// 1-based column (in characters) where the problem starts.
        public var column: Int
        public var message: String
        /// Every whitespace-separated field of the line that decodes to a key blob.
        var keyBlobs: [[UInt8]]
    }

    /// The path the file was read from, used in reasons (e.g. `policies/allowed_signers`).
    public var path: String
    public var entries: [Entry]
    public var unreadable: [UnreadableLine]

    public init(
        path: String = RepositoryLayout.allowedSigners, entries: [Entry] = [],
        unreadable: [UnreadableLine] = []
    ) {
        self.path = path
        self.entries = entries
        self.unreadable = unreadable
    }

    // MARK: - Checking

    /// May `key` sign as `principal` in `namespace` at time `at` (for a commit: its committer
    /// date, as git passes `-Overify-time`)? The verdict of `ssh-keygen -Y verify -I principal`:
    /// some line must match the principal (and not exclude it with `!`), list the key (or, with
    /// `cert-authority`, the CA of a user certificate that names the principal and is valid at
    /// `at`), allow the namespace, and have `valid-after <= at <= valid-before`.
    public func check(principal: String, key: SSHPublicKey, namespace: String, at: Date) -> AllowedSignerCheck {
        let fp = key.fingerprint
        let principalBytes = Array(principal.utf8)
        guard !principalBytes.contains(0) else {
            return .denied("principal \(principal.debugDescription) contains NUL")
        }
        guard case .success(let signer) = SSHKeyParser.parse(key.blob) else {
            return .denied("key \(fp) cannot be read")
        }
        let t = at.timeIntervalSince1970.rounded(.down)
        let seconds = t < 0 ? 0 : (Int64(exactly: t) ?? Int64.max)  // whole seconds, as OpenSSH
        let time = UInt64(seconds)
        let namespaceBytes = Array(namespace.utf8)
        let cert = signer.certificate
        let what = cert.map { "certificate \($0.describe)" } ?? "key \(fp)"

        var lineFailure: String?  // the principal and key matched, something else did not
        var exclusion: String?
        var otherPrincipals: [String] = []
        var keyLines = 0
        var certListedDirectly: Int?
        for entry in entries {
            guard let listed = entry.parsedKey else { continue }
            let matchesKey: Bool
            if entry.certAuthority {
                matchesKey = cert != nil && listed.material == cert!.caMaterial
            } else {
                matchesKey = listed.identity == signer.identity
                // OpenSSH also accepts a certificate listed as a plain key, without looking at
                // its validity or principals. Here a certificate counts only under its CA.
                if matchesKey && cert != nil {
                    certListedDirectly = certListedDirectly ?? entry.line
                    continue
                }
            }
            guard matchesKey else { continue }
            keyLines += 1
            let location = "\(path) line \(entry.line)"
            switch Self.matchPatternList(principalBytes, entry.principalPatterns) {
            case .negated(let pattern):
                exclusion =
                    exclusion ?? "\(what) is not allowed for \(principal): excluded by \(pattern) in \(location)"
                continue
            case .noMatch:
                for p in entry.principals where !p.hasPrefix("!") && !otherPrincipals.contains(p) {
                    otherPrincipals.append(p)
                }
                continue
            case .match:
                break
            }
            if entry.certAuthority, let cert {
                if let why = Self.certificateFailure(cert, principal: principalBytes, at: time) {
                    lineFailure = lineFailure ?? "\(what) signed by the CA of \(location): \(why)"
                    continue
                }
            }
            if let namespaces = entry.namespacePatterns, Self.matchPatternList(namespaceBytes, namespaces) != .match {
                let allowed = entry.namespaces?.joined(separator: ",") ?? ""
                lineFailure =
                    lineFailure ?? "namespace \"\(namespace)\" is not allowed for \(what) "
                    + "(\(location) allows namespaces=\"\(allowed)\")"
                continue
            }
            if let after = entry.validAfter, seconds < after {
                let text = entry.validAfterText ?? String(after)
                lineFailure =
                    lineFailure
                    ?? "signature made \(Self.iso8601(seconds)) is before valid-after \(text) of \(what) (\(location))"
                continue
            }
            if let before = entry.validBefore, seconds > before {
                let text = entry.validBeforeText ?? String(before)
                lineFailure =
                    lineFailure
                    ?? "signature made \(Self.iso8601(seconds)) is after valid-before \(text) of \(what) (\(location))"
                continue
            }
            return .allowed
        }
        if let lineFailure { return .denied(lineFailure) }
        if let exclusion { return .denied(exclusion) }
        if keyLines > 0 {
            let who = otherPrincipals.isEmpty ? "no principal" : otherPrincipals.joined(separator: ", ")
            return .denied("\(what) is allowed for \(who), not \(principal)")
        }
        if let line = certListedDirectly {
            return .denied(
                "\(what) is listed directly on \(path) line \(line); a certificate counts only under a "
                    + "cert-authority line for its CA (\(cert?.signatureKey.fingerprint ?? "?"))")
        }
        // Not on any readable line: say where it is, if anywhere.
        var blobs = [key.blob]
        if let cert { blobs.append(cert.signatureKey.blob) }
        if let line = unreadable.first(where: { u in u.keyBlobs.contains { blobs.contains($0) } }) {
            return .denied(
                "\(what) appears in \(path) only on line \(line.line), which cannot be read: "
                    + "\(line.message) (column \(line.column))")
        }
        if let cert {
            if entries.contains(where: { !$0.certAuthority && $0.parsedKey?.material == cert.caMaterial }) {
                return .denied(
                    "\(what) is signed by CA \(cert.signatureKey.fingerprint), which \(path) lists "
                        + "without cert-authority; only a cert-authority line accepts certificates")
            }
            return .denied(
                "\(what) is signed by CA \(cert.signatureKey.fingerprint), which no cert-authority line "
                    + "in \(path) lists")
        }
        if entries.contains(where: { $0.certAuthority && $0.parsedKey?.material == signer.material }) {
            return .denied(
                "key \(fp) is listed in \(path) only as a cert-authority: it vouches for certificates "
                    + "it signs, not for signatures it makes itself")
        }
        return .denied("key \(fp) is not in \(path)")
    }

    /// `sshkey_cert_check_authority` for a user certificate and a principal (nil: fine).
    static func certificateFailure(_ cert: SSHCertificate, principal: [UInt8], at time: UInt64) -> String? {
        guard cert.type == 1 else { return "it is a host certificate, not a user certificate" }
        if time < cert.validAfter {
            return "certificate not yet valid: signed \(iso8601(Int64(clamping: time))), "
                + "valid from \(iso8601(Int64(clamping: cert.validAfter)))"
        }
        if time >= cert.validBefore {
            return "certificate expired: signed \(iso8601(Int64(clamping: time))), "
                + "valid before \(iso8601(Int64(clamping: cert.validBefore)))"
        }
        if cert.principals.isEmpty { return "the certificate lists no principals" }
        guard cert.principals.contains(principal) else {
            return "principal \(String(decoding: principal, as: UTF8.self)) is not in the certificate "
                + "(principals: \(cert.principalNames.joined(separator: ", ")))"
        }
        return nil
    }

    // MARK: - Parsing

    /// Parses the file. Every line OpenSSH cannot read gets a diagnostic at the column where
    /// the problem starts and is kept aside (`unreadable`); the other lines are entries.
    public static func parse(_ text: String, path: String) -> (AllowedSigners, [Diagnostic]) {
        parse(Array(text.utf8), path: path)
    }

    /// Parses the file's bytes (OpenSSH reads bytes; no text decoding happens).
    public static func parse(_ bytes: [UInt8], path: String) -> (AllowedSigners, [Diagnostic]) {
        var signers = AllowedSigners(path: path)
        var diagnostics: [Diagnostic] = []
        var start = 0
        var number = 0
        while start < bytes.count {
            number += 1
            // Like getline: the line keeps its "\n".
            let end = bytes[start...].firstIndex(of: 0x0a).map { $0 + 1 } ?? bytes.count
            var line = Array(bytes[start..<end])
            start = end
            if let nul = line.firstIndex(of: 0) { line = Array(line[..<nul]) }  // C strings end at NUL
            if number == 1 && line.starts(with: [0xef, 0xbb, 0xbf]) {
                // Read on as OpenSSH reads it (the mark joins the first principal), but say so.
                diagnostics.append(
                    Diagnostic(
                        path: path, line: 1, column: 1,
                        message:
                            "the file starts with a byte-order mark, which ssh-keygen reads as part of the "
                            + "first principal"
                    ))
            }
            switch AllowedSignersLine.parse(line, number: number) {
            case .blank:
                break
            case .entry(let entry):
                signers.entries.append(entry)
            case .unreadable(let offset, let message):
                var contentLength = line.count  // an error "at the end" points just after the last character
                while contentLength > 0 && (line[contentLength - 1] == 0x0a || line[contentLength - 1] == 0x0d) {
                    contentLength -= 1
                }
                let column = characterColumn(line, min(offset, contentLength))
                signers.unreadable.append(
                    UnreadableLine(
                        line: number, column: column, message: message, keyBlobs: keyBlobs(in: line)))
                diagnostics.append(Diagnostic(path: path, line: number, column: column, message: message))
            }
        }
        return (signers, diagnostics)
    }

    /// 1-based column in characters of a byte offset (bytes that are not UTF-8 count one each).
    static func characterColumn(_ line: [UInt8], _ offset: Int) -> Int {
        let prefix = line[..<min(offset, line.count)]
        return prefix.filter { $0 & 0xc0 != 0x80 }.count + 1
    }

    private static func keyBlobs(in line: [UInt8]) -> [[UInt8]] {
        line.split(whereSeparator: { SSHBase64.isSpace($0) || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: ",") })
            .compactMap { field in
                guard field.count >= 16, let blob = SSHBase64.decode(field), SSHPublicKey(blob: blob) != nil else {
                    return nil
                }
                return blob
            }
    }
}
