import Foundation

// git's SSH allowed-signers file (`gpg.ssh.allowedSignersFile`), in the format of the
// ALLOWED SIGNERS section of ssh-keygen(1):
//
//     principals [options] keytype base64-key [comment]
//
// `principals` is a comma-separated pattern list (`*`, `?`, `!negation`), optionally in
// double quotes. Options (keywords case-insensitive, comma-separated, no spaces outside
// quotes): `cert-authority`, `namespaces="pattern-list"`, `valid-after="time"`,
// `valid-before="time"`, where time is YYYYMMDD[Z] or YYYYMMDDHHMM[SS][Z]. As in OpenSSH,
// option values must be in double quotes, and matching of principals is case-sensitive.
//
// Deviations from OpenSSH, on purpose:
// - Times without `Z` are local time in OpenSSH; here they are read as UTC, so that the
//   reconciler gives the same answer on every machine. Write `Z` to be explicit.
// - `cert-authority` lines are parsed but never match: SSH certificates are not supported.

/// The answer to "may this key sign as this principal, in this namespace, at this time?".
public enum AllowedSignerCheck: Equatable, Sendable {
    case allowed
    case denied(String)
}

/// A parsed allowed-signers file.
public struct AllowedSigners: Sendable {
    /// One valid line of the file.
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
        }
    }

    /// The path the file was read from, used in reasons (e.g. `policies/allowed_signers`).
    public var path: String
    public var entries: [Entry]

    public init(path: String = "policies/allowed_signers", entries: [Entry] = []) {
        self.path = path
        self.entries = entries
    }

    // MARK: - Checking

    /// May `key` sign as `principal` in `namespace` at time `at` (for a commit: its committer
    /// date, as git passes `-Overify-time`)? Mirrors OpenSSH: some non-CA line must list the
    /// key, match the principal (and not exclude it with `!`), allow the namespace, and have
    /// `valid-after <= at <= valid-before`.
    public func check(principal: String, key: SSHPublicKey, namespace: String, at: Date) -> AllowedSignerCheck {
        let fp = key.fingerprint
        let keyLines = entries.filter { !$0.certAuthority && $0.key == key }
        if keyLines.isEmpty {
            if entries.contains(where: { $0.certAuthority && $0.key == key }) {
                return .denied("key \(fp) is listed in \(path) only as a cert-authority (SSH certificates are not supported)")
            }
            return .denied("key \(fp) is not in \(path)")
        }
        let t = at.timeIntervalSince1970.rounded(.down)
        let seconds = Int64(exactly: t) ?? (t > 0 ? Int64.max : Int64.min)  // whole seconds, as OpenSSH
        var principalMatchedReason: String?
        var exclusionReason: String?
        for entry in keyLines {
            switch Self.matchPatternList(principal, entry.principals) {
            case .negated(let pattern):
                exclusionReason = exclusionReason
                    ?? "key \(fp) is not allowed for \(principal): excluded by \(pattern) in \(path) line \(entry.line)"
                continue
            case .noMatch:
                continue
            case .match:
                break
            }
            if let namespaces = entry.namespaces,
               Self.matchPatternList(namespace, namespaces) != .match
            {
                principalMatchedReason = principalMatchedReason
                    ?? "namespace \"\(namespace)\" is not allowed for key \(fp) (\(path) line \(entry.line) allows namespaces=\"\(namespaces.joined(separator: ","))\")"
                continue
            }
            if let after = entry.validAfter, seconds < after {
                principalMatchedReason = principalMatchedReason
                    ?? "signature made \(Self.iso8601(seconds)) is before valid-after \(entry.validAfterText ?? String(after)) of key \(fp) (\(path) line \(entry.line))"
                continue
            }
            if let before = entry.validBefore, seconds > before {
                principalMatchedReason = principalMatchedReason
                    ?? "signature made \(Self.iso8601(seconds)) is after valid-before \(entry.validBeforeText ?? String(before)) of key \(fp) (\(path) line \(entry.line))"
                continue
            }
            return .allowed
        }
        if let reason = principalMatchedReason { return .denied(reason) }
        if let reason = exclusionReason { return .denied(reason) }
        var listed: [String] = []
        for entry in keyLines {
            for p in entry.principals where !p.hasPrefix("!") && !listed.contains(p) { listed.append(p) }
        }
        let who = listed.isEmpty ? "no principal" : listed.joined(separator: ", ")
        return .denied("key \(fp) is allowed for \(who), not \(principal)")
    }

    enum PatternListMatch: Equatable {
        case match
        case noMatch
        case negated(String)
    }

    /// OpenSSH `match_pattern_list`: a matching `!pattern` denies outright; otherwise any
    /// matching positive pattern matches.
    static func matchPatternList(_ string: String, _ patterns: [String]) -> PatternListMatch {
        let s = Array(string)
        var matched = false
        for pattern in patterns {
            if pattern.hasPrefix("!") {
                if globMatch(s, Array(pattern.dropFirst())) { return .negated(pattern) }
            } else if globMatch(s, Array(pattern)) {
                matched = true
            }
        }
        return matched ? .match : .noMatch
    }

    /// `*` matches any run (including empty), `?` any one character; everything else literally.
    static func globMatch(_ s: [Character], _ p: [Character]) -> Bool {
        var si = 0, pi = 0
        var starP = -1, starS = 0
        while si < s.count {
            if pi < p.count && (p[pi] == "?" || p[pi] == s[si]) {
                si += 1; pi += 1
            } else if pi < p.count && p[pi] == "*" {
                starP = pi; starS = si; pi += 1
            } else if starP >= 0 {
                pi = starP + 1; starS += 1; si = starS
            } else {
                return false
            }
        }
        while pi < p.count && p[pi] == "*" { pi += 1 }
        return pi == p.count
    }

    static func iso8601(_ seconds: Int64) -> String {
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let rem = seconds - days * 86400
        let (y, m, d) = civil(fromDays: days)
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let year = y >= 0 && y < 10000 ? String(repeating: "0", count: max(0, 4 - String(y).count)) + String(y) : String(y)
        return "\(year)-\(two(m))-\(two(d))T\(two(rem / 3600)):\(two(rem % 3600 / 60)):\(two(rem % 60))Z"
    }

    // Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian, UTC).
    static func days(fromCivil y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    static func civil(fromDays z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? yoe + era * 400 + 1 : yoe + era * 400, m, d)
    }

    /// Parses YYYYMMDD[Z] or YYYYMMDDHHMM[SS][Z] as UTC seconds since 1970 (see the note at the
    /// top of this file about times without `Z`).
    static func parseTime(_ text: String) -> Int64? {
        var digits = Array(text.utf8)
        if digits.last == UInt8(ascii: "Z") { digits.removeLast() }
        guard [8, 12, 14].contains(digits.count),
              digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        else { return nil }
        func num(_ from: Int, _ len: Int) -> Int64 {
            digits[from..<from + len].reduce(0) { $0 * 10 + Int64($1 - UInt8(ascii: "0")) }
        }
        let y = num(0, 4), mo = num(4, 2), d = num(6, 2)
        let h = digits.count >= 12 ? num(8, 2) : 0
        let mi = digits.count >= 12 ? num(10, 2) : 0
        let s = digits.count == 14 ? num(12, 2) : 0
        guard mo >= 1, mo <= 12, d >= 1, h <= 23, mi <= 59, s <= 59 else { return nil }
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
        let monthDays: [Int64] = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard d <= monthDays[Int(mo) - 1] else { return nil }
        return days(fromCivil: y, mo, d) * 86400 + h * 3600 + mi * 60 + s
    }

    // MARK: - Parsing

    static let keyTypes: Set<String> = {
        let plain = [
            "ssh-ed25519", "ssh-rsa", "ssh-dss", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
            "ecdsa-sha2-nistp521", "sk-ecdsa-sha2-nistp256@openssh.com", "sk-ssh-ed25519@openssh.com",
        ]
        var all = Set(plain)
        for t in plain {
            if let at = t.firstIndex(of: "@") {
                all.insert(t[..<at] + "-cert-v01@openssh.com")
            } else {
                all.insert(t + "-cert-v01@openssh.com")
            }
        }
        return all
    }()

    /// Parses the file. Every bad line gets a diagnostic at the column where the problem
    /// starts and is skipped; the other lines are kept.
    public static func parse(_ text: String, path: String) -> (AllowedSigners, [Diagnostic]) {
        var entries: [Entry] = []
        var diagnostics: [Diagnostic] = []
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
        for (index, raw) in lines.enumerated() {
            var chars = Array(raw)
            if index == 0, chars.first == "\u{FEFF}" { chars[0] = " " }  // BOM: keep columns
            if chars.last == "\r" { chars.removeLast() }
            var parser = LineParser(chars: chars, line: index + 1, path: path)
            switch parser.parse() {
            case .none: break
            case .entry(let e): entries.append(e)
            case .error(let d): diagnostics.append(d)
            }
        }
        return (AllowedSigners(path: path, entries: entries), diagnostics)
    }

    private enum LineResult {
        case none
        case entry(Entry)
        case error(Diagnostic)
    }

    private struct ParseError: Error {
        var column: Int  // 0-based index into the line
        var message: String
    }

    private struct Token {
        var text: [Character]
        var start: Int  // 0-based
    }

    private struct LineParser {
        let chars: [Character]
        let line: Int
        let path: String
        var pos = 0

        init(chars: [Character], line: Int, path: String) {
            self.chars = chars
            self.line = line
            self.path = path
        }

        static func isBlank(_ c: Character) -> Bool { c == " " || c == "\t" }

        mutating func skipBlanks() {
            while pos < chars.count && Self.isBlank(chars[pos]) { pos += 1 }
        }

        /// The next field: runs to the first blank outside double quotes.
        mutating func nextToken() throws(ParseError) -> Token? {
            skipBlanks()
            guard pos < chars.count else { return nil }
            let start = pos
            var quoteStart: Int?
            while pos < chars.count {
                let c = chars[pos]
                if c == "\"" {
                    quoteStart = quoteStart == nil ? pos : nil
                } else if quoteStart == nil && Self.isBlank(c) {
                    break
                }
                pos += 1
            }
            if let q = quoteStart { throw ParseError(column: q, message: "unterminated quote") }
            return Token(text: Array(chars[start..<pos]), start: start)
        }

        mutating func parse() -> LineResult {
            skipBlanks()
            if pos >= chars.count || chars[pos] == "#" { return .none }
            do {
                return .entry(try parseEntry())
            } catch {
                return .error(Diagnostic(path: path, line: line, column: error.column + 1, message: error.message))
            }
        }

        mutating func parseEntry() throws(ParseError) -> Entry {
            guard let principalsToken = try nextToken() else {
                throw ParseError(column: chars.count, message: "missing principals")
            }
            let principals = try parsePrincipals(principalsToken)

            guard var token = try nextToken() else {
                throw ParseError(column: chars.count, message: "missing key type and key after principals")
            }
            var options = Options()
            if !AllowedSigners.keyTypes.contains(String(token.text)) {
                options = try parseOptions(token)
                guard let next = try nextToken() else {
                    throw ParseError(column: chars.count, message: "missing key type and key after options")
                }
                token = next
                guard AllowedSigners.keyTypes.contains(String(token.text)) else {
                    throw ParseError(column: token.start, message: "unknown key type \"\(String(token.text))\"")
                }
            }
            let keyType = String(token.text)
            guard let keyToken = try nextToken() else {
                throw ParseError(column: chars.count, message: "missing base64 key after \(keyType)")
            }
            // Anything after the key is a comment.
            guard let bytes = SSHBase64.decode(String(keyToken.text)) else {
                throw ParseError(column: keyToken.start, message: "key is not valid base64")
            }
            guard let key = SSHPublicKey(blob: bytes) else {
                throw ParseError(column: keyToken.start, message: "key is not a valid SSH public key blob")
            }
            guard key.keyType == keyType else {
                throw ParseError(column: keyToken.start, message: "key is of type \(key.keyType), but the line says \(keyType)")
            }
            return Entry(
                line: line, principals: principals, key: key, certAuthority: options.certAuthority,
                namespaces: options.namespaces, validAfter: options.validAfter?.0,
                validAfterText: options.validAfter?.1, validBefore: options.validBefore?.0,
                validBeforeText: options.validBefore?.1)
        }

        func parsePrincipals(_ token: Token) throws(ParseError) -> [String] {
            var text = token.text
            var offset = token.start
            if text.first == "\"" {
                guard text.count >= 2, text.last == "\"" else {
                    // A quote ends the field early, e.g. `"a,b"x`.
                    let q = text.dropFirst().firstIndex(of: "\"") ?? text.count - 1
                    throw ParseError(column: token.start + q + 1, message: "unexpected text after closing quote")
                }
                text = Array(text.dropFirst().dropLast())
                offset += 1
            } else if let q = text.firstIndex(of: "\"") {
                throw ParseError(column: token.start + q, message: "unexpected quote in principals")
            }
            return try splitPatternList(text, offset: offset, what: "principal")
        }

        func splitPatternList(_ text: [Character], offset: Int, what: String) throws(ParseError) -> [String] {
            var result: [String] = []
            var start = 0
            for i in 0...text.count where i == text.count || text[i] == "," {
                let item = Array(text[start..<i])
                if item.isEmpty || item == ["!"] {
                    throw ParseError(column: offset + start, message: "empty \(what) pattern")
                }
                if let q = item.firstIndex(of: "\"") {
                    throw ParseError(column: offset + start + q, message: "unexpected quote in \(what) pattern")
                }
                result.append(String(item))
                start = i + 1
            }
            return result
        }

        struct Options {
            var certAuthority = false
            var namespaces: [String]?
            var validAfter: (Int64, String)?
            var validBefore: (Int64, String)?
        }

        func parseOptions(_ token: Token) throws(ParseError) -> Options {
            var options = Options()
            var validBeforeColumn = 0
            // Split at commas outside quotes.
            var pieces: [(text: [Character], start: Int)] = []
            var start = 0
            var inQuotes = false
            for i in 0...token.text.count {
                if i < token.text.count {
                    if token.text[i] == "\"" { inQuotes.toggle() }
                    if inQuotes || token.text[i] != "," { continue }
                }
                pieces.append((Array(token.text[start..<i]), token.start + start))
                start = i + 1
            }
            for (text, column) in pieces {
                if text.isEmpty { throw ParseError(column: column, message: "empty option") }
                let eq = text.firstIndex(of: "=")
                let name = String(text[..<(eq ?? text.count)]).lowercased()
                let valueColumn = column + (eq ?? text.count) + 1
                func quotedValue() throws(ParseError) -> [Character] {
                    guard let eq else { throw ParseError(column: column, message: "option \(name) needs a value") }
                    let value = Array(text[(eq + 1)...])
                    guard value.count >= 2, value.first == "\"", value.last == "\"" else {
                        throw ParseError(column: valueColumn, message: "value of option \(name) must be in double quotes")
                    }
                    return Array(value.dropFirst().dropLast())
                }
                switch name {
                case "cert-authority":
                    if eq != nil { throw ParseError(column: column, message: "option cert-authority takes no value") }
                    if options.certAuthority { throw ParseError(column: column, message: "multiple cert-authority options") }
                    options.certAuthority = true
                case "namespaces":
                    if options.namespaces != nil { throw ParseError(column: column, message: "multiple namespaces options") }
                    let value = try quotedValue()
                    options.namespaces = try splitPatternList(value, offset: valueColumn + 1, what: "namespace")
                case "valid-after", "valid-before":
                    let isAfter = name == "valid-after"
                    if (isAfter ? options.validAfter != nil : options.validBefore != nil) {
                        throw ParseError(column: column, message: "multiple \(name) options")
                    }
                    let value = String(try quotedValue())
                    guard let t = AllowedSigners.parseTime(value) else {
                        throw ParseError(
                            column: valueColumn + 1,
                            message: "invalid \(name) time \"\(value)\" (expected YYYYMMDD[Z] or YYYYMMDDHHMM[SS][Z])")
                    }
                    if isAfter {
                        options.validAfter = (t, value)
                    } else {
                        options.validBefore = (t, value)
                        validBeforeColumn = column
                    }
                default:
                    let raw = String(text)
                    if pieces.count == 1, eq == nil,
                       raw.hasPrefix("ssh-") || raw.hasPrefix("ecdsa-") || raw.hasPrefix("sk-") || raw.contains("@openssh.com")
                    {
                        throw ParseError(column: column, message: "unknown key type \"\(raw)\"")
                    }
                    throw ParseError(column: column, message: "unknown option \"\(String(text[..<(eq ?? text.count)]))\"")
                }
            }
            if let after = options.validAfter, let before = options.validBefore, before.0 <= after.0 {
                throw ParseError(column: validBeforeColumn, message: "valid-before \(before.1) is not after valid-after \(after.1)")
            }
            return options
        }
    }
}
