import Foundation
import RolloutGit
import RolloutAdapters
#if canImport(Glibc)
import Glibc
#endif

/// The history scan cache: one binary file, rewritten atomically, ignored (and then rebuilt by the
/// next write) when it is not exactly what this version writes: another format or version, another
/// repository, truncated, corrupt (checksum), or malformed in any way.
///
/// The warm path of every load reads it, so it is made to be parsed quickly: length-prefixed
/// fields, object ids as 20 raw bytes, no escaping, no text to tokenize.
///
///     header   "rctlscan" (8 bytes)  u32 fileVersion  u32 HistoryScan.formatVersion
///              u64 payloadLength  u64 checksum(payload)
///     payload  str repository  id tip
///              u32 entryCount    entryCount × (str path, id blob, id firstParentCommit, id commit, u8 viaMerge)
///              u32 commitCount   commitCount × (id id, str authorName, str authorEmail, i64 authorTime,
///                                               str committerName, str committerEmail, i64 committerTime,
///                                               u32 parentCount, str summary, u8 flags,
///                                               [str signature if flags & 1], [bytes signedData if flags & 2])
///
/// Integers are little-endian; `str` and `bytes` are a u32 length and that many bytes (UTF-8 for
/// `str`); `id` is a git object id as 20 bytes (ids are kept as 40-digit lowercase hex in memory).
enum ScanCache {
    static let magic: [UInt8] = Array("rctlscan".utf8)
    static let fileVersion: UInt32 = 2
    static let headerSize = 32

    static func read(path: String, repository: String) -> HistoryScan? {
        guard let bytes = readFile(path) else { return nil }
        return decode(bytes, repository: repository)
    }

    static func write(_ scan: HistoryScan, path: String, repository: String) {
        guard let bytes = encode(scan, repository: repository) else { return }
        let url = URL(fileURLWithPath: path)
        try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try? AtomicFile.write(Data(bytes), to: path)
    }

    // MARK: Encoding

    static func encode(_ scan: HistoryScan, repository: String) -> [UInt8]? {
        var writer = Writer()
        writer.string(repository)
        guard writer.id(scan.tip) else { return nil }
        writer.u32(UInt32(scan.entries.count))
        for (path, entry) in scan.entries.sorted(by: { $0.key < $1.key }) {
            writer.string(path)
            guard writer.id(entry.blob), writer.id(entry.firstParentCommit), writer.id(entry.commit) else { return nil }
            writer.bytes.append(entry.viaMerge ? 1 : 0)
        }
        writer.u32(UInt32(scan.commits.count))
        for (key, facts) in scan.commits.sorted(by: { $0.key < $1.key }) {
            guard key == facts.id, writer.id(facts.id) else { return nil }
            writer.string(facts.authorName)
            writer.string(facts.authorEmail)
            writer.u64(UInt64(bitPattern: facts.authorTime))
            writer.string(facts.committerName)
            writer.string(facts.committerEmail)
            writer.u64(UInt64(bitPattern: facts.committerTime))
            guard let parentCount = UInt32(exactly: facts.parentCount) else { return nil }
            writer.u32(parentCount)
            writer.string(facts.summary)
            writer.bytes.append((facts.signature != nil ? 1 : 0) | (facts.signedData != nil ? 2 : 0))
            if let signature = facts.signature { writer.string(signature) }
            if let signedData = facts.signedData {
                writer.u32(UInt32(signedData.count))
                writer.bytes.append(contentsOf: signedData)
            }
        }
        let payload = writer.bytes
        var header = Writer()
        header.bytes.append(contentsOf: magic)
        header.u32(fileVersion)
        header.u32(UInt32(truncatingIfNeeded: scan.formatVersion))
        header.u64(UInt64(payload.count))
        header.u64(payload.withUnsafeBytes { checksum($0) })
        return header.bytes + payload
    }

    struct Writer {
        var bytes: [UInt8] = []

        mutating func u32(_ value: UInt32) {
            withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
        }

        mutating func u64(_ value: UInt64) {
            withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
        }

        mutating func string(_ value: String) {
            var value = value
            value.withUTF8 { utf8 in
                u32(UInt32(utf8.count))
                bytes.append(contentsOf: utf8)
            }
        }

        /// A 40-digit lowercase hex id as 20 bytes; false when it is not one.
        mutating func id(_ hex: String) -> Bool {
            var hex = hex
            return hex.withUTF8 { utf8 in
                guard utf8.count == 40 else { return false }
                for index in stride(from: 0, to: 40, by: 2) {
                    guard let high = nibble(utf8[index]), let low = nibble(utf8[index + 1]) else { return false }
                    bytes.append(high << 4 | low)
                }
                return true
            }
        }

        private func nibble(_ digit: UInt8) -> UInt8? {
            switch digit {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return digit - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return digit - UInt8(ascii: "a") + 10
            default: return nil
            }
        }
    }

    // MARK: Decoding

    static func decode(_ bytes: [UInt8], repository: String) -> HistoryScan? {
        bytes.withUnsafeBytes { buffer -> HistoryScan? in
            guard buffer.count >= headerSize, magic.elementsEqual(buffer[0..<8]) else { return nil }
            var header = Reader(buffer: UnsafeRawBufferPointer(rebasing: buffer[8..<headerSize]))
            guard let version = header.u32(), version == fileVersion,
                  let scanVersion = header.u32(),
                  let length = header.u64(), length == UInt64(buffer.count - headerSize),
                  let sum = header.u64() else { return nil }
            let payload = UnsafeRawBufferPointer(rebasing: buffer[headerSize...])
            guard checksum(payload) == sum else { return nil }
            var reader = Reader(buffer: payload)
            guard let scan = reader.scan(repository: repository), reader.atEnd else { return nil }
            var result = scan
            result.formatVersion = Int(scanVersion)
            return result
        }
    }

    /// A bounds-checked cursor over the payload; every read fails (nil) past the end.
    struct Reader {
        let buffer: UnsafeRawBufferPointer
        var offset = 0

        var atEnd: Bool { offset == buffer.count }

        private mutating func take(_ count: Int) -> UnsafeRawBufferPointer? {
            guard count >= 0, count <= buffer.count - offset else { return nil }
            defer { offset += count }
            return UnsafeRawBufferPointer(rebasing: buffer[offset..<(offset + count)])
        }

        mutating func u8() -> UInt8? { take(1)?[0] }

        mutating func u32() -> UInt32? {
            guard let raw = take(4) else { return nil }
            return UInt32(littleEndian: raw.loadUnaligned(as: UInt32.self))
        }

        mutating func u64() -> UInt64? {
            guard let raw = take(8) else { return nil }
            return UInt64(littleEndian: raw.loadUnaligned(as: UInt64.self))
        }

        mutating func data() -> UnsafeRawBufferPointer? {
            guard let count = u32() else { return nil }
            return take(Int(count))
        }

        mutating func string() -> String? {
            guard let raw = data() else { return nil }
            return raw.withMemoryRebound(to: UInt8.self) { String(decoding: $0, as: UTF8.self) }
        }

        /// 20 bytes, as 40-digit lowercase hex.
        mutating func id() -> String? {
            guard let raw = take(20) else { return nil }
            return String(unsafeUninitializedCapacity: 40) { out in
                let digits: StaticString = "0123456789abcdef"
                let table = UnsafeRawBufferPointer(start: digits.utf8Start, count: 16)
                for index in 0..<20 {
                    let byte = raw[index]
                    out[2 * index] = table[Int(byte >> 4)]
                    out[2 * index + 1] = table[Int(byte & 15)]
                }
                return 40
            }
        }

        mutating func scan(repository: String) -> HistoryScan? {
            guard let stored = data(), stored.elementsEqual(repository.utf8), let tip = id(),
                  let entryCount = u32(), Int(entryCount) <= buffer.count / 61 else { return nil }
            var entries: [String: IntroducingCommit] = [:]
            entries.reserveCapacity(Int(entryCount))
            for _ in 0..<entryCount {
                guard let path = string(), let blob = id(), let firstParent = id(), let commit = id(),
                      let viaMerge = u8(), viaMerge <= 1 else { return nil }
                entries[path] = IntroducingCommit(blob: blob, firstParentCommit: firstParent, commit: commit,
                                                  viaMerge: viaMerge == 1)
            }
            guard entries.count == Int(entryCount), let commitCount = u32(), Int(commitCount) <= buffer.count / 61
            else { return nil }
            var commits: [String: CommitFacts] = [:]
            commits.reserveCapacity(Int(commitCount))
            for _ in 0..<commitCount {
                guard let id = id(), let authorName = string(), let authorEmail = string(), let authorTime = u64(),
                      let committerName = string(), let committerEmail = string(), let committerTime = u64(),
                      let parentCount = u32(), let summary = string(), let flags = u8(), flags <= 3 else { return nil }
                var facts = CommitFacts(
                    id: id, authorName: authorName, authorEmail: authorEmail, authorTime: Int64(bitPattern: authorTime),
                    committerName: committerName, committerEmail: committerEmail,
                    committerTime: Int64(bitPattern: committerTime), parentCount: Int(parentCount), summary: summary,
                    signature: nil, signedData: nil)
                if flags & 1 != 0 {
                    guard let signature = string() else { return nil }
                    facts.signature = signature
                }
                if flags & 2 != 0 {
                    guard let signedData = data() else { return nil }
                    facts.signedData = Data(signedData)
                }
                commits[id] = facts
            }
            guard commits.count == Int(commitCount) else { return nil }
            return HistoryScan(tip: tip, entries: entries, commits: commits)
        }
    }

    /// A fast 64-bit checksum (not cryptographic: it catches corruption, not forgery): the bytes
    /// as little-endian words, each mixed in by multiply and rotate, the tail and length last.
    static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var hash: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(bytes.count)
        let words = bytes.count / 8
        var offset = 0
        for _ in 0..<words {
            let word = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            hash = ((hash ^ word) &* 0xFF51_AFD7_ED55_8CCD)
            hash = (hash << 31) | (hash >> 33)
            offset += 8
        }
        var tail: UInt64 = 0
        for index in offset..<bytes.count { tail = tail << 8 | UInt64(bytes[index]) }
        hash = (hash ^ tail) &* 0xC4CE_B9FE_1A85_EC53
        hash ^= hash >> 29
        return hash
    }

    /// The whole file, nil when it cannot be read.
    private static func readFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_size >= 0, info.st_size < 1 << 31 else { return nil }
        let size = Int(info.st_size)
        var bytes = [UInt8](repeating: 0, count: size)
        var filled = 0
        let ok = bytes.withUnsafeMutableBytes { buffer -> Bool in
            while filled < size {
                let count = Glibc.read(fd, buffer.baseAddress! + filled, size - filled)
                if count <= 0 { return count == 0 && filled == size }
                filled += count
            }
            return true
        }
        return ok && filled == size ? bytes : nil
    }
}
