import Foundation
import RolloutGit
import RolloutAdapters
#if canImport(Glibc)
import Glibc
#endif

/// The history scan cache: one binary file, rewritten atomically, ignored (and then rebuilt by the
/// next write) when it is not exactly what this version writes: another format or version, another
/// repository, truncated, corrupt (checksum), or inconsistent in any way.
///
/// Every warm load reads it, so it is made to be parsed quickly: length-prefixed fields, object
/// ids as 20 raw bytes kept once in a table (an id appears as a blob, a first-parent commit, an
/// approval commit and a commit's key), names and e-mail addresses kept once in a table, no
/// escaping, nothing to tokenize.
///
///     header   "rctlscan" (8 bytes)  u32 fileVersion  u32 HistoryScan.formatVersion
///              u64 payloadLength  u64 checksum(payload)
///     payload  str repository   id tip
///              u32 idCount      idCount × id
///              u32 nameCount    nameCount × str                        (names and e-mail addresses)
///              u32 entryCount   entryCount × (str path, u32 blob, u32 firstParentCommit, u32 commit, u8 viaMerge)
///              u32 commitCount  commitCount × (u32 id, u32 authorName, u32 authorEmail, i64 authorTime,
///                                              u32 committerName, u32 committerEmail, i64 committerTime,
///                                              u32 parentCount, str summary, u8 flags,
///                                              [str signature if flags & 1], [bytes signedData if flags & 2])
///
/// Integers are little-endian; `str` and `bytes` are a u32 length and that many bytes (UTF-8 for
/// `str`); `id` is a git object id as 20 bytes (ids are 40-digit lowercase hex in memory); a u32
/// in an entry or commit is an index into the id or name table. The commits are exactly those the
/// entries name as `commit`, each once (as the scanner returns them), or the file is rejected.
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
        // Not fsynced: a file damaged by a crash fails the checksum and is rebuilt.
        try? AtomicFile.write(Data(bytes), to: path, durable: false)
    }

    // MARK: Encoding

    /// Nil when the scan cannot be written faithfully (an id that is not 40 lowercase hex digits,
    /// facts filed under another commit's id, or facts missing for an entry's commit).
    static func encode(_ scan: HistoryScan, repository: String) -> [UInt8]? {
        var ids: [String: UInt32] = [:]
        var idOrder: [String] = []
        func id(_ hex: String) -> UInt32 {
            if let index = ids[hex] { return index }
            let index = UInt32(idOrder.count)
            ids[hex] = index
            idOrder.append(hex)
            return index
        }
        var names: [String: UInt32] = [:]
        var nameOrder: [String] = []
        func name(_ text: String) -> UInt32 {
            if let index = names[text] { return index }
            let index = UInt32(nameOrder.count)
            names[text] = index
            nameOrder.append(text)
            return index
        }

        var body = Writer()
        // Sorted, so that one scan always makes the same file (by UTF-8 bytes: cheaper than String's `<`).
        // (Keys are sorted, not (key, value) pairs: moving the pairs around cost more than the sort.)
        let paths = scan.entries.keys.sorted(by: utf8Precedes)
        body.u32(UInt32(paths.count))
        var entryCommits = Set<String>()
        entryCommits.reserveCapacity(scan.commits.count)
        for path in paths {
            let entry = scan.entries[path]!
            body.string(path)
            body.u32(id(entry.blob))
            body.u32(id(entry.firstParentCommit))
            body.u32(id(entry.commit))
            body.bytes.append(entry.viaMerge ? 1 : 0)
            entryCommits.insert(entry.commit)
        }
        guard scan.commits.count == entryCommits.count, scan.commits.keys.allSatisfy(entryCommits.contains) else { return nil }
        body.u32(UInt32(scan.commits.count))
        for key in scan.commits.keys.sorted(by: utf8Precedes) {
            let facts = scan.commits[key]!
            guard key == facts.id, let parentCount = UInt32(exactly: facts.parentCount) else { return nil }
            body.u32(id(facts.id))
            body.u32(name(facts.authorName))
            body.u32(name(facts.authorEmail))
            body.u64(UInt64(bitPattern: facts.authorTime))
            body.u32(name(facts.committerName))
            body.u32(name(facts.committerEmail))
            body.u64(UInt64(bitPattern: facts.committerTime))
            body.u32(parentCount)
            body.string(facts.summary)
            body.bytes.append((facts.signature != nil ? 1 : 0) | (facts.signedData != nil ? 2 : 0))
            if let signature = facts.signature { body.string(signature) }
            if let signedData = facts.signedData {
                body.u32(UInt32(signedData.count))
                body.bytes.append(contentsOf: signedData)
            }
        }

        var payload = Writer()
        payload.bytes.reserveCapacity(body.bytes.count + 20 * idOrder.count + 1024)
        payload.string(repository)
        guard payload.id(scan.tip) else { return nil }
        payload.u32(UInt32(idOrder.count))
        for hex in idOrder {
            guard payload.id(hex) else { return nil }
        }
        payload.u32(UInt32(nameOrder.count))
        for text in nameOrder { payload.string(text) }
        payload.bytes.append(contentsOf: body.bytes)

        var file = Writer()
        file.bytes.reserveCapacity(headerSize + payload.bytes.count)
        file.bytes.append(contentsOf: magic)
        file.u32(fileVersion)
        file.u32(UInt32(truncatingIfNeeded: scan.formatVersion))
        file.u64(UInt64(payload.bytes.count))
        file.u64(payload.bytes.withUnsafeBytes { checksum($0) })
        file.bytes.append(contentsOf: payload.bytes)
        return file.bytes
    }

    private static func utf8Precedes(_ a: String, _ b: String) -> Bool {
        var a = a, b = b
        return a.withUTF8 { a in
            b.withUTF8 { b in
                let common = min(a.count, b.count)
                let order = common == 0 ? 0 : memcmp(a.baseAddress!, b.baseAddress!, common)
                return order != 0 ? order < 0 : a.count < b.count
            }
        }
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
            var raw: (UInt64, UInt64, UInt32) = (0, 0, 0)
            let valid = hex.withUTF8 { utf8 in
                withUnsafeMutableBytes(of: &raw) { out in
                    guard utf8.count == 40 else { return false }
                    for index in 0..<20 {
                        guard let high = nibble(utf8[2 * index]), let low = nibble(utf8[2 * index + 1]) else { return false }
                        out[index] = high << 4 | low
                    }
                    return true
                }
            }
            guard valid else { return false }
            withUnsafeBytes(of: &raw) { bytes.append(contentsOf: $0) }
            return true
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
            guard var scan = reader.scan(repository: repository), reader.atEnd else { return nil }
            scan.formatVersion = Int(scanVersion)
            return scan
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

        /// A count of records at least `minimum` bytes long each, which the rest of the payload can hold.
        mutating func count(minimum: Int) -> Int? {
            guard let count = u32(), Int(count) <= (buffer.count - offset) / minimum else { return nil }
            return Int(count)
        }

        /// An index into a table of `count` elements.
        mutating func index(below count: Int) -> Int? {
            guard let index = u32(), Int(index) < count else { return nil }
            return Int(index)
        }

        mutating func scan(repository: String) -> HistoryScan? {
            guard let stored = data(), stored.elementsEqual(repository.utf8), let tip = id(),
                  let idCount = count(minimum: 20) else { return nil }
            var ids: [String] = []
            ids.reserveCapacity(idCount)
            for _ in 0..<idCount {
                guard let id = id() else { return nil }
                ids.append(id)
            }
            guard let nameCount = count(minimum: 4) else { return nil }
            var names: [String] = []
            names.reserveCapacity(nameCount)
            for _ in 0..<nameCount {
                guard let name = string() else { return nil }
                names.append(name)
            }

            guard let entryCount = count(minimum: 17) else { return nil }
            var entries: [String: IntroducingCommit] = [:]
            entries.reserveCapacity(entryCount)
            // Which ids entries name as their commit: the commits section must describe exactly those.
            var named = [UInt8](repeating: 0, count: idCount)
            var namedCount = 0
            for _ in 0..<entryCount {
                guard let path = string(), let blob = index(below: idCount), let firstParent = index(below: idCount),
                      let commit = index(below: idCount), let viaMerge = u8(), viaMerge <= 1 else { return nil }
                if named[commit] == 0 {
                    named[commit] = 1
                    namedCount += 1
                }
                entries[path] = IntroducingCommit(blob: ids[blob], firstParentCommit: ids[firstParent], commit: ids[commit],
                                                  viaMerge: viaMerge == 1)
            }
            guard entries.count == entryCount, let commitCount = count(minimum: 45), commitCount == namedCount else {
                return nil
            }
            var commits: [String: CommitFacts] = [:]
            commits.reserveCapacity(commitCount)
            for _ in 0..<commitCount {
                guard let id = index(below: idCount), named[id] == 1,
                      let authorName = index(below: nameCount), let authorEmail = index(below: nameCount),
                      let authorTime = u64(),
                      let committerName = index(below: nameCount), let committerEmail = index(below: nameCount),
                      let committerTime = u64(), let parentCount = u32(), let summary = string(),
                      let flags = u8(), flags <= 3 else { return nil }
                named[id] = 2  // described once
                var facts = CommitFacts(
                    id: ids[id], authorName: names[authorName], authorEmail: names[authorEmail],
                    authorTime: Int64(bitPattern: authorTime), committerName: names[committerName],
                    committerEmail: names[committerEmail], committerTime: Int64(bitPattern: committerTime),
                    parentCount: Int(parentCount), summary: summary, signature: nil, signedData: nil)
                if flags & 1 != 0 {
                    guard let signature = string() else { return nil }
                    facts.signature = signature
                }
                if flags & 2 != 0 {
                    guard let signedData = data() else { return nil }
                    facts.signedData = Data(signedData)
                }
                commits[ids[id]] = facts
            }
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
            hash = (hash ^ word) &* 0xFF51_AFD7_ED55_8CCD
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
        var filled = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            while filled < size {
                let count = Glibc.read(fd, buffer.baseAddress! + filled, size - filled)
                if count <= 0 { break }
                filled += count
            }
            initialized = filled
        }
        return filled == size ? bytes : nil
    }
}
