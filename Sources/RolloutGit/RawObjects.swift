import CLibgit2
import Foundation
import RolloutCore

#if canImport(Glibc)
    import Glibc
#endif

// Raw object reads for the history walk: commit headers and tree entries parsed from the object
// database's bytes, without libgit2's parsers (the walk reads every first-parent commit).

/// The object database of a repository, for raw reads.
final class ObjectDatabase {
    let handle: OpaquePointer

    init(_ repository: GitRepository) throws(GitError) {
        var odb: OpaquePointer?
        try GitError.check(git_repository_odb(&odb, repository.handle), "git_repository_odb")
        handle = odb!
    }

    deinit { git_odb_free(handle) }
}

/// An object's bytes, read from the object database without libgit2's parsers.
final class RawObject {
    private let object: OpaquePointer
    let bytes: UnsafeRawBufferPointer

    init(odb: ObjectDatabase, id: ObjectID, type: git_object_t) throws(GitError) {
        var raw = id.raw
        var object: OpaquePointer?
        try GitError.check(git_odb_read(&object, odb.handle, &raw), "git_odb_read(\(id))")
        self.object = object!
        guard git_odb_object_type(object) == type else {
            git_odb_object_free(object)
            throw GitError(.other, "object \(id) is not a \(type == GIT_OBJECT_TREE ? "tree" : "commit")")
        }
        bytes = UnsafeRawBufferPointer(start: git_odb_object_data(object), count: git_odb_object_size(object))
    }

    deinit { git_odb_object_free(object) }
}

/// A commit's tree and parents, read from its raw header (`tree <hex>\n`, then `parent <hex>\n`
/// lines), as libgit2's commit parser reads them.
struct CommitHeader {
    var tree: ObjectID
    var parents: [ObjectID]
    /// For a signed commit, the id of its signed payload (SPEC §4.0 rule 2): the commit object without
    /// its `gpgsig`/`gpgsig-sha256` headers, hashed as a commit. Two commits with one payload are one
    /// commit, however their signatures are wrapped, replaced or stripped; an unsigned commit's payload
    /// is the commit itself (nil here).
    var payloadID: ObjectID?

    init(odb: ObjectDatabase, id: ObjectID) throws(GitError) {
        let object = try RawObject(odb: odb, id: id, type: GIT_OBJECT_COMMIT)
        self = try withExtendedLifetime(object) { () throws(GitError) -> CommitHeader in
            try CommitHeader(bytes: object.bytes, id: id)
        }
    }

    /// Reads a commit object's bytes (`id` names it in errors). Separate from the object database
    /// so that the fuzz target (Fuzz/Targets/CommitHeaderTarget.swift) can feed it any bytes.
    init(bytes: UnsafeRawBufferPointer, id: ObjectID) throws(GitError) {
        func hexID(after keyword: StaticString, at offset: Int) -> ObjectID? {
            let length = keyword.utf8CodeUnitCount
            guard offset + length + 41 <= bytes.count, let base = bytes.baseAddress,
                memcmp(base + offset, keyword.utf8Start, length) == 0,
                bytes[offset + length + 40] == UInt8(ascii: "\n")
            else { return nil }
            var oid = git_oid()
            guard git_oid_fromstrn(&oid, (base + offset + length).assumingMemoryBound(to: CChar.self), 40) == 0 else {
                return nil
            }
            return ObjectID(oid)
        }
        guard let tree = hexID(after: "tree ", at: 0) else { throw GitError(.other, "malformed commit \(id)") }
        self.tree = tree
        parents = []
        var offset = 46
        while let parent = hexID(after: "parent ", at: offset) {
            parents.append(parent)
            offset += 48
        }
        payloadID = CommitPayload.id(of: bytes)
    }
}

/// The signed payload of a commit object (SPEC §4.0 rule 2).
enum CommitPayload {
    /// The id of `bytes` without their signature headers, nil when the commit carries none.
    static func id(of bytes: UnsafeRawBufferPointer) -> ObjectID? {
        guard bytes.count > 0 else { return nil }
        // A signature is a header line starting `gpgsig`, before the first empty line.
        guard hasSignatureHeader(bytes) else { return nil }
        let payload = strippingSignatures(Array(bytes))
        var oid = git_oid()
        let result = payload.withUnsafeBytes { git_odb_hash(&oid, $0.baseAddress, $0.count, GIT_OBJECT_COMMIT) }
        return result == 0 ? ObjectID(oid) : nil
    }

    /// Whether a header line (before the first empty line) starts with `gpgsig`.
    static func hasSignatureHeader(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let newline = UInt8(ascii: "\n")
        let marker = Array("gpgsig".utf8)
        var lineStart = 0
        while lineStart < bytes.count, bytes[lineStart] != newline {
            if lineStart + marker.count <= bytes.count,
                (0..<marker.count).allSatisfy({ bytes[lineStart + $0] == marker[$0] })
            {
                return true
            }
            var index = lineStart
            while index < bytes.count, bytes[index] != newline { index += 1 }
            lineStart = index + 1
        }
        return false
    }

    /// The commit without its `gpgsig` and `gpgsig-sha256` header lines and their continuation lines.
    static func strippingSignatures(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = 0
        var inSignature = false
        while index < bytes.count {
            let end = bytes[index...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.count
            let lineEnd = min(end + 1, bytes.count)
            let line = bytes[index..<end]
            if line.isEmpty {
                out.append(contentsOf: bytes[index...])  // the message, as it is
                break
            }
            if inSignature, line.first == UInt8(ascii: " ") {
                index = lineEnd
                continue
            }
            inSignature = line.starts(with: Array("gpgsig ".utf8)) || line.starts(with: Array("gpgsig-sha256 ".utf8))
            if !inSignature { out.append(contentsOf: bytes[index..<lineEnd]) }
            index = lineEnd
        }
        return out
    }
}

/// A tree object's bytes, read without libgit2's tree parser: a sequence of
/// `<octal mode> SP <name> NUL <20-byte id>` entries in git's order.
final class RawTree {
    private let object: RawObject
    var bytes: UnsafeRawBufferPointer { object.bytes }

    init(odb: ObjectDatabase, id: ObjectID) throws(GitError) {
        object = try RawObject(odb: odb, id: id, type: GIT_OBJECT_TREE)
    }

    var entries: Entries { Entries(bytes: bytes) }

    struct Entry {
        /// The whole entry: mode, name and id.
        var bytes: UnsafeRawBufferPointer
        var nameRange: Range<Int>
        var isTree: Bool

        var name: String { String(decoding: bytes[nameRange], as: UTF8.self) }

        /// Whether the entry's name is `name` (a `RepositoryLayout` name: short, ASCII, contiguous).
        func hasName(_ name: String) -> Bool {
            var name = name
            return name.withUTF8 { utf8 in
                nameRange.count == utf8.count
                    && memcmp(bytes.baseAddress! + nameRange.lowerBound, utf8.baseAddress!, utf8.count) == 0
            }
        }

        var idBytes: UnsafeRawPointer { bytes.baseAddress! + (bytes.count - 20) }

        var id: ObjectID {
            var oid = git_oid()
            git_oid_fromraw(&oid, idBytes.assumingMemoryBound(to: UInt8.self))
            return ObjectID(oid)
        }
    }

    struct Entries {
        let bytes: UnsafeRawBufferPointer
        var offset = 0

        init(bytes: UnsafeRawBufferPointer, offset: Int = 0) {
            self.bytes = bytes
            self.offset = offset
        }

        mutating func next() throws(GitError) -> Entry? {
            guard offset < bytes.count, bytes.baseAddress != nil else { return nil }
            let start = offset
            let entry = try RawTree.entry(in: bytes, at: start)
            offset = start + entry.bytes.count
            return entry
        }
    }

    /// The entry starting at `start`.
    static func entry(in bytes: UnsafeRawBufferPointer, at start: Int) throws(GitError) -> Entry {
        // Callers pass offsets inside the bytes; checked anyway, as memchr would read out of bounds.
        guard let base = bytes.baseAddress, start >= 0, start < bytes.count else {
            throw GitError(.other, "malformed tree object")
        }
        let remaining = bytes.count - start
        guard let spacePointer = memchr(base + start, 0x20, min(remaining, 8)) else {
            throw GitError(.other, "malformed tree object")
        }
        let space = base.distance(to: UnsafeRawPointer(spacePointer))
        guard let nulPointer = memchr(base + space + 1, 0, bytes.count - space - 1) else {
            throw GitError(.other, "malformed tree object")
        }
        let nul = base.distance(to: UnsafeRawPointer(nulPointer))
        guard nul + 21 <= bytes.count else { throw GitError(.other, "malformed tree object") }
        // The mode as git reads it (SPEC §4.0 rule 4): octal digits, a folder when its type bits are
        // S_IFDIR, so `040000` (zero-padded, as some tools write it) is a folder as `40000` is.
        var mode: UInt32 = 0
        for offset in start..<space {
            let digit = base.load(fromByteOffset: offset, as: UInt8.self)
            guard digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "7") else {
                throw GitError(.other, "malformed tree object")
            }
            mode = mode << 3 | UInt32(digit - UInt8(ascii: "0"))
        }
        let isTree = mode & 0o170000 == 0o040000
        let end = nul + 21
        return Entry(
            bytes: UnsafeRawBufferPointer(start: base + start, count: end - start),
            nameRange: (space + 1 - start)..<(nul - start), isTree: isTree)
    }

    /// Same object id.
    static func sameID(_ a: Entry, _ b: Entry) -> Bool {
        memcmp(a.idBytes, b.idBytes, 20) == 0
    }

    /// git's tree order (`base_name_compare`): bytes of the names, a tree's name followed by '/'.
    static func order(_ a: Entry, _ b: Entry) -> Int {
        let nameA = a.bytes.baseAddress! + a.nameRange.lowerBound
        let nameB = b.bytes.baseAddress! + b.nameRange.lowerBound
        let countA = a.nameRange.count
        let countB = b.nameRange.count
        let common = min(countA, countB)
        let order = memcmp(nameA, nameB, common)
        if order != 0 { return Int(order) }
        let endA: UInt8 =
            countA > common ? nameA.load(fromByteOffset: common, as: UInt8.self) : (a.isTree ? UInt8(ascii: "/") : 0)
        let endB: UInt8 =
            countB > common ? nameB.load(fromByteOffset: common, as: UInt8.self) : (b.isTree ? UInt8(ascii: "/") : 0)
        return Int(endA) - Int(endB)
    }

    /// The length of the longest common prefix of two byte sequences.
    static func commonPrefix(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
        let count = min(a.count, b.count)
        guard count > 0, let pa = a.baseAddress, let pb = b.baseAddress else { return 0 }
        var offset = 0
        // Whole chunks by memcmp (vectorised), then the differing chunk word by word and byte by byte.
        let chunk = 256
        while offset + chunk <= count, memcmp(pa + offset, pb + offset, chunk) == 0 { offset += chunk }
        while offset + 8 <= count,
            pa.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
                == pb.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
        {
            offset += 8
        }
        while offset < count,
            pa.load(fromByteOffset: offset, as: UInt8.self) == pb.load(fromByteOffset: offset, as: UInt8.self)
        {
            offset += 1
        }
        return offset
    }

    /// The length of the longest common suffix of two byte sequences.
    static func commonSuffix(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
        let count = min(a.count, b.count)
        guard count > 0, let baseA = a.baseAddress, let baseB = b.baseAddress else { return 0 }
        let endA = baseA + a.count
        let endB = baseB + b.count
        var length = 0
        let chunk = 256
        while length + chunk <= count, memcmp(endA - length - chunk, endB - length - chunk, chunk) == 0 {
            length += chunk
        }
        while length + 8 <= count,
            (endA - length - 8).loadUnaligned(as: UInt64.self) == (endB - length - 8).loadUnaligned(as: UInt64.self)
        {
            length += 8
        }
        while length < count, (endA - length - 1).load(as: UInt8.self) == (endB - length - 1).load(as: UInt8.self) {
            length += 1
        }
        return length
    }
}

/// A raw tree with the offsets of its entries (`starts[i]` is where entry `i` begins, and a last
/// element is the tree's size), so that a comparison can skip to any entry.
struct IndexedTree {
    let raw: RawTree
    let starts: [Int32]

    init(raw: RawTree, starts: [Int32]) {
        self.raw = raw
        self.starts = starts
    }

    /// Parses every entry.
    init(_ raw: RawTree) throws(GitError) {
        self.raw = raw
        self.starts = try Self.starts(of: raw.bytes)
    }

    /// Where each entry of a tree's bytes begins, then the size. Offsets are kept as Int32 to halve
    /// the index; a tree of 2 GiB or more is an error rather than a trap.
    static func starts(of bytes: UnsafeRawBufferPointer) throws(GitError) -> [Int32] {
        var starts: [Int32] = [0]
        var entries = RawTree.Entries(bytes: bytes)
        while try entries.next() != nil {
            guard let offset = Int32(exactly: entries.offset) else {
                throw GitError(.other, "tree object larger than \(Int32.max) bytes")
            }
            starts.append(offset)
        }
        return starts
    }

    /// The entry at `index` (the offsets come from a parse of these bytes; read again with checks
    /// all the same, so a wrong index is an error, not a trap).
    func entry(_ index: Int) throws(GitError) -> RawTree.Entry {
        guard starts.indices.contains(index) else { throw GitError(.other, "malformed tree object") }
        return try RawTree.entry(in: raw.bytes, at: Int(starts[index]))
    }
}

/// Who made a commit and its SSH/GPG signature, read from the raw commit object: the `author` and
/// `committer` lines (`Name <email> seconds zone`) and the `gpgsig` header (continuation lines start
/// with a space). The signed data is the object without the `gpgsig` header, as
/// `git_commit_extract_signature` gives it. Nil fields when a line is missing or malformed.
enum RawCommitIdentity {
    static func read(odb: ObjectDatabase, id: ObjectID) throws(GitError) -> CommitIdentity {
        let object = try RawObject(odb: odb, id: id, type: GIT_OBJECT_COMMIT)
        return parse(Array(object.bytes), id: id.description)
    }

    static func parse(_ bytes: [UInt8], id: String) -> CommitIdentity {
        var author = ""
        var committer = ""
        var time: Int64 = 0
        var signatureLines: [ArraySlice<UInt8>] = []
        var signed: [UInt8] = []
        signed.reserveCapacity(bytes.count)
        var index = 0
        var inSignature = false
        var inHeader = true
        while index < bytes.count {
            let end = bytes[index...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.count
            let lineEnd = min(end + 1, bytes.count)
            let line = bytes[index..<end]
            defer { index = lineEnd }
            guard inHeader else {
                signed.append(contentsOf: bytes[index..<lineEnd])
                continue
            }
            if line.isEmpty {
                inHeader = false
                inSignature = false
                signed.append(contentsOf: bytes[index..<lineEnd])
                continue
            }
            if inSignature, line.first == UInt8(ascii: " ") {
                signatureLines.append(line.dropFirst())
                continue
            }
            inSignature = false
            if starts(line, with: "gpgsig ") {
                inSignature = true
                signatureLines.append(line.dropFirst(7))
                continue
            }
            signed.append(contentsOf: bytes[index..<lineEnd])
            if starts(line, with: "author ") {
                author = email(line.dropFirst(7)).0
            } else if starts(line, with: "committer ") {
                (committer, time) = email(line.dropFirst(10))
            }
        }
        var identity = CommitIdentity(
            id: id, authorEmail: author, committerEmail: committer,
            committerTime: Date(timeIntervalSince1970: TimeInterval(HistoryCache.clampedTime(Double(time)))))
        if !signatureLines.isEmpty {
            identity.signature = signatureLines.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "\n")
            identity.signedData = signed
        }
        return identity
    }

    private static func starts(_ line: ArraySlice<UInt8>, with prefix: StaticString) -> Bool {
        let count = prefix.utf8CodeUnitCount
        guard line.count >= count else { return false }
        return UnsafeBufferPointer(start: prefix.utf8Start, count: count).elementsEqual(line.prefix(count))
    }

    /// `Name <email> 1700000000 +0000` → the email and the time (libgit2 takes the last `<`…`>`).
    private static func email(_ value: ArraySlice<UInt8>) -> (String, Int64) {
        guard let close = value.lastIndex(of: UInt8(ascii: ">")),
            let open = value[..<close].lastIndex(of: UInt8(ascii: "<"))
        else { return ("", 0) }
        let email = String(decoding: value[(open + 1)..<close], as: UTF8.self)
        let rest = value[(close + 1)...].drop { $0 == UInt8(ascii: " ") }
        var time: Int64 = 0
        for digit in rest.prefix(while: { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            let (scaled, overflow) = time.multipliedReportingOverflow(by: 10)
            guard !overflow else { return (email, 0) }
            time = scaled &+ Int64(digit - UInt8(ascii: "0"))
        }
        return (email, time)
    }
}
