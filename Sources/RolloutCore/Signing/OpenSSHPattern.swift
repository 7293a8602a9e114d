import Foundation

// OpenSSH's `match.c` on bytes, as `allowed_signers` principals are matched (SPEC §4.1 rule 5).

extension AllowedSigners {
    enum PatternListMatch: Equatable {
        case match
        case noMatch
        case negated(String)
    }

    /// OpenSSH `match_pattern_list(string, list, 0)` on bytes: a matching `!pattern` denies
    /// outright; otherwise any matching positive pattern matches. A sub-pattern of 1023 bytes
    /// or more makes the whole list fail, as in OpenSSH.
    static func matchPatternList(_ string: [UInt8], _ list: [UInt8]) -> PatternListMatch {
        var matched = false
        var i = 0
        while i < list.count {
            var negated = false
            if list[i] == UInt8(ascii: "!") {
                negated = true
                i += 1
            }
            var sub: [UInt8] = []
            while i < list.count && sub.count < 1023 && list[i] != UInt8(ascii: ",") {
                sub.append(list[i])
                i += 1
            }
            if sub.count >= 1023 { return .noMatch }
            if i < list.count && list[i] == UInt8(ascii: ",") { i += 1 }
            if globMatch(string, sub) {
                if negated { return .negated("!" + String(decoding: sub, as: UTF8.self)) }
                matched = true
            }
        }
        return matched ? .match : .noMatch
    }

    /// `match_pattern`: `*` matches any run of bytes (including none), `?` any one byte.
    static func globMatch(_ s: [UInt8], _ p: [UInt8]) -> Bool {
        var si = 0
        var pi = 0
        var starP = -1
        var starS = 0
        while si < s.count {
            if pi < p.count && (p[pi] == UInt8(ascii: "?") || p[pi] == s[si]) && p[pi] != UInt8(ascii: "*") {
                si += 1
                pi += 1
            } else if pi < p.count && p[pi] == UInt8(ascii: "*") {
                starP = pi
                starS = si
                pi += 1
            } else if starP >= 0 {
                pi = starP + 1
                starS += 1
                si = starS
            } else {
                return false
            }
        }
        while pi < p.count && p[pi] == UInt8(ascii: "*") { pi += 1 }
        return pi == p.count
    }
}
