// One line of an allowed_signers file, read as OpenSSH 9's sshsig.c reads it
// (`parse_principals_key_and_options`, `strdelimw`, `sshkey_read`,
// `sshkey_advance_past_options`, `sshsigopt_parse`, `opt_dequote`): the same bytes are
// accepted and refused. Only the messages are ours, and they point at a column.

enum AllowedSignersLine {
    enum LineResult {
        case blank
        case entry(AllowedSigners.Entry)
        /// OpenSSH skips the line; `offset` is the byte where the problem starts.
        case unreadable(offset: Int, message: String)
    }

    private struct Failure: Error {
        var offset: Int
        var message: String
    }

    private static let space = UInt8(ascii: " "), tab = UInt8(ascii: "\t")
    private static let quote = UInt8(ascii: "\""), comma = UInt8(ascii: ",")

    private static func isBlank(_ c: UInt8) -> Bool { c == space || c == tab }
    /// OpenSSH's WHITESPACE for `strdelim`: " \t\r\n".
    private static func isDelimiterSpace(_ c: UInt8) -> Bool {
        c == space || c == tab || c == 0x0d || c == 0x0a
    }

    /// `line` is one line of the file including its "\n" (as `getline` returns it), cut at
    /// any NUL byte.
    static func parse(_ s: [UInt8], number: Int) -> LineResult {
        var cp = 0
        while cp < s.count && isBlank(s[cp]) { cp += 1 }
        if cp == s.count || s[cp] == UInt8(ascii: "#") { return .blank }
        // OpenSSH reads a line of only blanks and line ends as an empty principal list that
        // matches nobody: nothing to report.
        if s[cp...].allSatisfy(isDelimiterSpace) { return .blank }
        do {
            return .entry(try parseEntry(s, from: cp, number: number))
        } catch {
            return .unreadable(offset: error.offset, message: error.message)
        }
    }

    private static func parseEntry(_ s: [UInt8], from start: Int, number: Int) throws(Failure) -> AllowedSigners.Entry {
        // strdelimw: the principals field ends at the first blank or line end; a double quote
        // (the first one in the field) opens a part that runs to the next quote.
        guard let d = s[start...].firstIndex(where: { isDelimiterSpace($0) || $0 == quote }) else {
            throw Failure(offset: s.count, message: "missing key type and key after principals")
        }
        var principals: [UInt8]
        var rest: Int
        if s[d] == quote {
            guard let close = s[(d + 1)...].firstIndex(of: quote) else {
                throw Failure(offset: d, message: "unterminated quote in principals")
            }
            principals = Array(s[start..<d]) + Array(s[(d + 1)..<close])
            rest = close + 1
        } else {
            principals = Array(s[start..<d])
            rest = d + 1
        }
        while rest < s.count && isDelimiterSpace(s[rest]) { rest += 1 }

        // A key here, or options and then a key.
        var optionsRange: Range<Int>?
        let key: (SSHPublicKey, SSHParsedKey)
        switch readKey(s, at: rest) {
        case .success(let k):
            key = k
        case .failure(let first):
            var p = rest
            var quoted = false
            var openQuote = rest
            while p < s.count && (quoted || !isBlank(s[p])) {
                if s[p] == UInt8(ascii: "\\") && p + 1 < s.count && s[p + 1] == quote {
                    p += 1
                } else if s[p] == quote {
                    quoted.toggle()
                    if quoted { openQuote = p }
                }
                p += 1
            }
            let looksLikeKey = startsWithKeyType(s, at: rest)
            if p == s.count && quoted {
                throw looksLikeKey ? first : Failure(offset: openQuote, message: "unterminated quote in options")
            }
            if p == s.count {
                if looksLikeKey { throw first }
                throw Failure(
                    offset: rest == s.count || s[rest] == 0x0a ? s.count : rest,
                    message: rest == s.count || s[rest] == 0x0a || s[rest] == 0x0d
                        ? "missing key type and key after principals"
                        : "missing key after options (or unknown key type)")
            }
            optionsRange = rest..<p
            var k = p + 1
            while k < s.count && isBlank(s[k]) { k += 1 }
            switch readKey(s, at: k) {
            case .success(let found):
                key = found
            case .failure(let second):
                if looksLikeKey { throw first }
                // `ssh-foo AAAA…`: the base64 key is fine, so the word before it is the problem.
                let keyEnd = s[k...].firstIndex(where: isDelimiterSpace) ?? s.count
                if k < keyEnd, let blob = SSHBase64.decode(s[k..<keyEnd]), case .success = SSHKeyParser.parse(blob) {
                    throw Failure(
                        offset: rest,
                        message:
                            "unknown key type \"\(SSHText.printable(Array(s[rest..<p])))\"")
                }
                throw second
            }
        }
        let options = try parseOptions(s, optionsRange)
        var entry = AllowedSigners.Entry(
            line: number,
            principals: principals.split(separator: comma, omittingEmptySubsequences: false).map {
                String(decoding: $0, as: UTF8.self)
            },
            key: key.0, certAuthority: options.certAuthority,
            namespaces: options.namespaces.map {
                $0.split(separator: comma, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
            },
            validAfter: options.validAfter?.0, validAfterText: options.validAfter?.1,
            validBefore: options.validBefore?.0, validBeforeText: options.validBefore?.1)
        entry.principalPatterns = principals
        entry.namespacePatterns = options.namespaces
        entry.parsedKey = key.1
        return entry
    }

    private static func startsWithKeyType(_ s: [UInt8], at i: Int) -> Bool {
        let end = s[i...].firstIndex(where: isDelimiterSpace) ?? s.count
        return SSHKeyFamily.byName[Array(s[i..<end])] != nil
    }

    /// `sshkey_read`: `keytype base64 [comment]`, the type one OpenSSH knows, the blob a
    /// well-formed key of that type.
    private static func readKey(_ s: [UInt8], at start: Int) -> Result<(SSHPublicKey, SSHParsedKey), Failure> {
        guard start < s.count, !isDelimiterSpace(s[start]) else {
            return .failure(Failure(offset: s.count, message: "missing key type and key"))
        }
        // OpenSSH's type field runs to the next blank and must be followed by one.
        let typeEnd = s[start...].firstIndex(where: isDelimiterSpace) ?? s.count
        let typeName = Array(s[start..<typeEnd])
        guard let (family, isCert) = SSHKeyFamily.byName[typeName] else {
            return .failure(Failure(offset: start, message: "unknown key type \"\(SSHText.printable(typeName))\""))
        }
        guard typeEnd < s.count, isBlank(s[typeEnd]) else {
            return .failure(
                Failure(
                    offset: s.count, message: "missing base64 key after \(SSHText.printable(typeName))"))
        }
        var p = typeEnd
        while p < s.count && isBlank(s[p]) { p += 1 }
        guard p < s.count else { return .failure(Failure(offset: p, message: "missing base64 key after key type")) }
        let blobEnd = s[p...].firstIndex(where: isBlank) ?? s.count
        guard let blob = SSHBase64.decode(s[p..<blobEnd]) else {
            return .failure(Failure(offset: p, message: "key is not valid base64"))
        }
        let parsed: SSHParsedKey
        switch SSHKeyParser.parse(blob) {
        case .success(let k): parsed = k
        case .failure(.malformed(let why)): return .failure(Failure(offset: p, message: "invalid key: \(why)"))
        }
        guard parsed.family == family, (parsed.certificate != nil) == isCert, let key = SSHPublicKey(blob: blob) else {
            let inBlob = SSHPublicKey(blob: blob)?.keyType ?? "?"
            return .failure(
                Failure(
                    offset: p, message: "key is of type \(inBlob), but the line says \(SSHText.printable(typeName))"))
        }
        return .success((key, parsed))
    }

    private struct Options {
        var certAuthority = false
        var namespaces: [UInt8]?
        var validAfter: (Int64, String)?
        var validBefore: (Int64, String)?
    }

    /// `sshsigopt_parse` over `s[range]`.
    private static func parseOptions(_ s: [UInt8], _ range: Range<Int>?) throws(Failure) -> Options {
        var options = Options()
        guard let range, !range.isEmpty else { return options }
        let end = range.upperBound
        var i = range.lowerBound
        var validBeforeOffset = i
        func has(_ word: String) -> Bool {
            let w = Array(word.utf8)
            guard end - i >= w.count else { return false }
            for (k, c) in w.enumerated() {
                let b = s[i + k]
                if (b >= 0x41 && b <= 0x5a ? b + 0x20 : b) != c { return false }
            }
            return true
        }
        func dequote(_ name: String) throws(Failure) -> [UInt8] {
            guard i < end, s[i] == quote else {
                throw Failure(offset: i, message: "value of option \(name) must be in double quotes")
            }
            let open = i
            i += 1
            var out: [UInt8] = []
            while i < end && s[i] != quote {
                if s[i] == UInt8(ascii: "\\") && i + 1 < end && s[i + 1] == quote { i += 1 }
                out.append(s[i])
                i += 1
            }
            guard i < end else { throw Failure(offset: open, message: "unterminated quote in value of option \(name)") }
            i += 1
            return out
        }
        while i < end && !isBlank(s[i]) {
            let optionStart = i
            if has("cert-authority") {
                i += 14
                options.certAuthority = true
            } else if has("namespaces=") {
                i += 11
                if options.namespaces != nil {
                    throw Failure(offset: optionStart, message: "multiple namespaces options")
                }
                options.namespaces = try dequote("namespaces")
            } else if has("valid-after=") || has("valid-before=") {
                let isAfter = has("valid-after=")
                let name = isAfter ? "valid-after" : "valid-before"
                i += name.utf8.count + 1
                if isAfter ? options.validAfter != nil : options.validBefore != nil {
                    throw Failure(offset: optionStart, message: "multiple \(name) options")
                }
                let valueOffset = i + 1
                let value = try dequote(name)
                let text = String(decoding: value, as: UTF8.self)
                guard let t = AllowedSigners.parseTime(value) else {
                    throw Failure(
                        offset: valueOffset,
                        message:
                            "invalid \(name) time \"\(SSHText.printable(value))\" "
                            + "(expected YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS, optionally followed by Z, "
                            + "after 1970)"
                    )
                }
                if isAfter {
                    options.validAfter = (t, text)
                } else {
                    options.validBefore = (t, text)
                    validBeforeOffset = optionStart
                }
            }
            if i >= end || isBlank(s[i]) { break }
            if s[i] != comma {
                if i == optionStart {
                    let nameEnd = s[i..<end].firstIndex(where: { $0 == comma || $0 == UInt8(ascii: "=") }) ?? end
                    let name = SSHText.printable(Array(s[i..<nameEnd]))
                    let looksLikeType =
                        nameEnd == end && i == range.lowerBound
                        && (name.hasPrefix("ssh-") || name.hasPrefix("ecdsa-") || name.hasPrefix("sk-")
                            || name.hasPrefix("rsa-") || name.contains("@openssh.com"))
                    throw Failure(
                        offset: i,
                        message: looksLikeType
                            ? "unknown key type \"\(name)\"" : "unknown option \"\(name)\"")
                }
                if s[i] == UInt8(ascii: "=") && options.certAuthority && i == optionStart + 14 {
                    throw Failure(offset: optionStart, message: "option cert-authority takes no value")
                }
                throw Failure(offset: i, message: "unexpected text after option (options are separated by commas)")
            }
            i += 1
            if i >= end { throw Failure(offset: i - 1, message: "option list ends with a comma") }
        }
        if let after = options.validAfter, let before = options.validBefore, before.0 <= after.0 {
            throw Failure(
                offset: validBeforeOffset,
                message: "valid-before \(before.1) is not after valid-after \(after.1)")
        }
        return options
    }
}
