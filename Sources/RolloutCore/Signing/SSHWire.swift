// SSH wire encoding (RFC 4251 §5) and OpenSSH's base64 reader, as OpenSSH's sshbuf and
// b64_pton read them. Never traps on bad input.

/// Bounds-checked reader for SSH wire encoding.
struct SSHWireReader {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isAtEnd: Bool { offset == bytes.count }
    /// How many bytes the reader has consumed.
    var consumed: Int { offset }

    mutating func readBytes(_ n: Int) -> [UInt8]? {
        guard n >= 0, bytes.count - offset >= n else { return nil }
        defer { offset += n }
        return Array(bytes[offset..<offset + n])
    }

    mutating func readUInt8() -> UInt8? { readBytes(1)?[0] }

    mutating func readUInt32() -> UInt32? {
        guard let b = readBytes(4) else { return nil }
        return UInt32(b[0]) << 24 | UInt32(b[1]) << 16 | UInt32(b[2]) << 8 | UInt32(b[3])
    }

    mutating func readUInt64() -> UInt64? {
        guard let hi = readUInt32(), let lo = readUInt32() else { return nil }
        return UInt64(hi) << 32 | UInt64(lo)
    }

    /// An SSH `string`: uint32 length, then that many bytes.
    mutating func readString() -> [UInt8]? {
        let saved = offset
        guard let n = readUInt32(), let b = readBytes(Int(n)) else {
            offset = saved
            return nil
        }
        return b
    }

    /// A string that must not contain NUL (OpenSSH `sshbuf_get_cstring`).
    mutating func readCString() -> [UInt8]? {
        guard let b = readString(), !b.contains(0) else { return nil }
        return b
    }

    /// An unsigned `mpint` as OpenSSH's `sshbuf_get_bignum2_bytes_direct` reads it: negative
    /// values and values over 16384 bits are refused; leading zero bytes are dropped.
    mutating func readPositiveMpint() -> [UInt8]? {
        guard let b = readString() else { return nil }
        if b.count > 2049 || (b.count == 2049 && b[0] != 0) { return nil }
        if let first = b.first, first & 0x80 != 0 { return nil }
        return Array(b.drop(while: { $0 == 0 }))
    }
}

enum SSHWire {
    static func string(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        append(&out, bytes)
        return out
    }

    static func append(_ out: inout [UInt8], _ bytes: [UInt8]) {
        appendUInt32(&out, UInt32(bytes.count))
        out += bytes
    }

    static func appendUInt32(_ out: inout [UInt8], _ n: UInt32) {
        out += [UInt8(n >> 24 & 0xff), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)]
    }
}

enum SSHBase64 {
    private static let table: [Int8] = {
        var t = [Int8](repeating: -1, count: 256)
        for (i, c) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() {
            t[Int(c)] = Int8(i)
        }
        return t
    }()

    /// C `isspace` in the C locale.
    static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || (c >= 0x09 && c <= 0x0d) }

    /// Strict base64 as OpenSSH's `b64_pton` reads it (`sshbuf_b64tod`): whitespace anywhere is
    /// skipped, padding must be complete and the bits past the last byte must be zero; nil otherwise.
    static func decode<S: Collection>(_ input: S) -> [UInt8]? where S.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(input.count * 3 / 4)
        var state = 0
        var pending: UInt8 = 0
        var it = input.makeIterator()
        var sawPad = false
        while let c = it.next() {
            if c == 0 { break }
            if isSpace(c) { continue }
            if c == UInt8(ascii: "=") {
                sawPad = true
                break
            }
            let v = table[Int(c)]
            guard v >= 0 else { return nil }
            let b = UInt8(v)
            switch state {
            case 0:
                pending = b << 2
                state = 1
            case 1:
                out.append(pending | b >> 4)
                pending = (b & 0x0f) << 4
                state = 2
            case 2:
                out.append(pending | b >> 2)
                pending = (b & 0x03) << 6
                state = 3
            default:
                out.append(pending | b)
                pending = 0
                state = 0
            }
        }
        if sawPad {
            switch state {
            case 0, 1:
                return nil
            case 2:
                // One more `=` must follow (whitespace allowed in between).
                var c = it.next()
                while let ch = c, ch != 0, isSpace(ch) { c = it.next() }
                guard c == UInt8(ascii: "=") else { return nil }
                fallthrough
            default:
                while let ch = it.next(), ch != 0 {
                    if !isSpace(ch) { return nil }
                }
                if pending != 0 { return nil }
            }
        } else if state != 0 {
            return nil
        }
        return out.isEmpty ? nil : out
    }

    static func decode(_ s: String) -> [UInt8]? { decode(Array(s.utf8)) }
}
