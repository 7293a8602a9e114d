import CLibgit2
import Foundation
import RolloutCore

#if canImport(Glibc)
    import Glibc
#endif

/// The walk's state on disk: one binary file, rewritten atomically, ignored (and then rebuilt) when
/// it is not exactly what this version writes: another format, another repository, truncated,
/// corrupt (checksum) or inconsistent. Length-prefixed fields, object ids as 20 raw bytes.
///
///     header   "rctlwalk" (8 bytes)  u32 fileVersion  u64 payloadLength  u64 checksum(payload)
///     payload  str repository, then WalkState's fields in declaration order
public enum HistoryCache {
    static let magic: [UInt8] = Array("rctlwalk".utf8)
    static let headerSize = 28

    public static func read(path: String, repository: String) -> WalkState? {
        guard let bytes = readFile(path) else { return nil }
        return decode(bytes, repository: repository)
    }

    public static func write(_ state: WalkState, path: String, repository: String) {
        let bytes = encode(state, repository: repository)
        let url = URL(fileURLWithPath: path)
        try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        // Not fsynced: a file damaged by a crash fails the checksum and is rebuilt.
        let temporary = path + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(bytes)) else { return }
        if rename(temporary, path) != 0 { unlink(temporary) }
    }

    static func encode(_ state: WalkState, repository: String) -> [UInt8] {
        var w = Writer()
        w.string(repository)
        w.u32(state.formatVersion)
        w.optionalID(state.policyRootOverride)
        w.u64(UInt64(state.count))
        w.optionalID(state.tip)
        w.optionalID(state.firstParentRoot)
        w.optionalID(state.tipRollouts)
        w.optionalID(state.tipPolicies)
        w.u64(UInt64(state.files.count))
        for (path, file) in state.files.sorted(by: { $0.key < $1.key }) {
            w.string(path)
            w.id(file.blob)
            w.u64(UInt64(file.changeIndex))
            w.id(file.changeCommit)
            w.u8(file.viaMerge ? 1 : 0)
            switch file.approval {
            case .unresolved: w.u8(0)
            case .notFound: w.u8(1)
            case .commit(let id):
                w.u8(2)
                w.id(id)
            }
            w.makers(file.makers)
        }
        w.u64(UInt64(state.policyApprovalFiles.count))
        for (path, blob) in state.policyApprovalFiles.sorted(by: { $0.key < $1.key }) {
            w.string(path)
            w.id(blob)
        }
        for point in [state.root, state.inForce, state.pending] { w.point(point) }
        w.u8(state.inForceSignatureMode ? 1 : 0)
        w.optionalString(state.lastDigest)
        w.makers(state.policyMakers)
        w.u64(UInt64(state.facts.count))
        for (id, facts) in state.facts.sorted(by: { $0.key.precedes($1.key) }) {
            w.id(id)
            w.string(facts.id)
            w.string(facts.authorEmail)
            w.string(facts.committerEmail)
            w.u64(UInt64(bitPattern: clampedTime(facts.committerTime.timeIntervalSince1970)))
            w.optionalString(facts.signature)
            w.optionalBytes(facts.signedData)
        }
        w.u64(UInt64(state.seen.count))
        // Sorted, so that the same state always writes the same bytes.
        for id in state.seen.sorted() { w.id(id) }
        w.u64(UInt64(state.folders.count))
        for (name, folder) in state.folders.sorted(by: { $0.key < $1.key }) {
            w.string(name)
            w.id(folder.tree)
            w.string(folder.judge)
            RolloutFilesCodec.encode(folder.rollout, into: &w.bytes)
        }

        var file = Writer()
        file.bytes = magic
        file.u32(WalkState.formatVersion)
        file.u64(UInt64(w.bytes.count))
        file.u64(w.bytes.withUnsafeBytes { checksum($0) })
        return file.bytes + w.bytes
    }

    /// Commit times the cache accepts (years 0001 to 9999): a time outside goes through a Double and
    /// back to Int64 on the next write, which would trap for values near Int64's limits.
    static let timeRange: ClosedRange<Int64> = -62_135_596_800...253_402_300_799

    /// A commit time as the cache stores it. A hostile commit can carry any 64-bit time; converting
    /// it from Double back to Int64 would trap, so it is clamped into `timeRange` (here and where
    /// the walk reads it, so that a walk from the cache and a fresh walk agree).
    static func clampedTime(_ seconds: Double) -> Int64 {
        guard seconds.isFinite else { return 0 }
        return Int64(min(max(seconds, Double(timeRange.lowerBound)), Double(timeRange.upperBound)))
    }

    /// The cached tip and its first-parent root, without decoding the rest (nil when the file is not a
    /// readable cache of this repository in this format, or was made before any commit was walked).
    public static func readLine(path: String, repository: String) -> (tip: ObjectID, root: ObjectID)? {
        guard let bytes = readFile(path) else { return nil }
        return bytes.withUnsafeBytes { buffer -> (tip: ObjectID, root: ObjectID)? in
            guard let payload = verifiedPayload(buffer) else { return nil }
            var r = Reader(buffer: payload)
            guard r.string() == repository, r.u32() == WalkState.formatVersion, r.optionalID() != nil,
                r.count() != nil, let tip = r.optionalID(), let root = r.optionalID(), let tip, let root
            else { return nil }
            return (tip, root)
        }
    }

    /// The payload of a file of this format whose length and checksum are right.
    private static func verifiedPayload(_ buffer: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        guard buffer.count >= headerSize, magic.elementsEqual(buffer[0..<8]) else { return nil }
        var header = Reader(buffer: UnsafeRawBufferPointer(rebasing: buffer[8..<headerSize]))
        guard header.u32() == WalkState.formatVersion, let length = header.u64(),
            length == UInt64(buffer.count - headerSize), let sum = header.u64()
        else { return nil }
        let payload = UnsafeRawBufferPointer(rebasing: buffer[headerSize...])
        return checksum(payload) == sum ? payload : nil
    }

    static func decode(_ bytes: [UInt8], repository: String) -> WalkState? {
        bytes.withUnsafeBytes { buffer -> WalkState? in
            guard let payload = verifiedPayload(buffer) else { return nil }
            var r = Reader(buffer: payload)
            guard r.string() == repository, let version = r.u32(), version == WalkState.formatVersion,
                let override = r.optionalID()
            else { return nil }
            var state = WalkState(policyRootOverride: override)
            guard let count = r.count(), let tip = r.optionalID(), let root = r.optionalID(),
                let rollouts = r.optionalID(), let policies = r.optionalID(), let fileCount = r.count(minimum: 46)
            else { return nil }
            state.count = count
            state.tip = tip
            state.firstParentRoot = root
            state.tipRollouts = rollouts
            state.tipPolicies = policies
            for _ in 0..<fileCount {
                guard let path = r.string(), let blob = r.id(), let index = r.count(), let commit = r.id(),
                    let viaMerge = r.u8(), let kind = r.u8()
                else { return nil }
                var file = FileState(blob: blob, changeIndex: index, changeCommit: commit, viaMerge: viaMerge == 1)
                switch kind {
                case 0: file.approval = .unresolved
                case 1: file.approval = .notFound
                case 2:
                    guard let id = r.id() else { return nil }
                    file.approval = .commit(id)
                default: return nil
                }
                guard let makers = r.makers() else { return nil }
                file.makers = makers
                state.files[path] = file
            }
            guard let approvalCount = r.count(minimum: 24) else { return nil }
            for _ in 0..<approvalCount {
                guard let path = r.string(), let blob = r.id() else { return nil }
                state.policyApprovalFiles[path] = blob
            }
            guard let root = r.point(), let inForce = r.point(), let pending = r.point(), let mode = r.u8(),
                let lastDigest = r.optionalString(), let policyMakers = r.makers()
            else { return nil }
            (state.root, state.inForce, state.pending) = (root, inForce, pending)
            state.inForceSignatureMode = mode == 1
            state.lastDigest = lastDigest
            state.policyMakers = policyMakers
            guard let factCount = r.count(minimum: 40) else { return nil }
            for _ in 0..<factCount {
                guard let key = r.id(), let id = r.string(), let author = r.string(), let committer = r.string(),
                    let time = r.u64(), let signature = r.optionalString(), let signed = r.optionalBytes(),
                    Self.timeRange.contains(Int64(bitPattern: time))
                else { return nil }
                state.facts[key] = CommitIdentity(
                    id: id, authorEmail: author, committerEmail: committer,
                    committerTime: Date(timeIntervalSince1970: TimeInterval(Int64(bitPattern: time))),
                    signature: signature, signedData: signed)
            }
            guard let seenCount = r.count(minimum: 20) else { return nil }
            var seen: [ObjectID] = []
            seen.reserveCapacity(seenCount)
            for _ in 0..<seenCount {
                guard let id = r.id() else { return nil }
                seen.append(id)
            }
            // Written sorted: anything else is not this version's file.
            guard let set = SeenSet(sorted: seen) else { return nil }
            state.seen = set
            guard let folderCount = r.count(minimum: 32) else { return nil }
            for _ in 0..<folderCount {
                guard let name = r.string(), let tree = r.id(), let judge = r.string(),
                    let rollout = RolloutFilesCodec.decode(r.buffer, offset: &r.offset), rollout.files.name == name,
                    state.folders[name] == nil
                else { return nil }
                state.folders[name] = KeptFolder(tree: tree, judge: judge, rollout: rollout)
            }
            return r.atEnd ? state : nil
        }
    }

    struct Writer {
        var bytes: [UInt8] = []

        mutating func u8(_ value: UInt8) { bytes.append(value) }

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

        mutating func optionalString(_ value: String?) {
            u8(value == nil ? 0 : 1)
            if let value { string(value) }
        }

        mutating func optionalBytes(_ value: [UInt8]?) {
            u8(value == nil ? 0 : 1)
            if let value {
                u32(UInt32(value.count))
                bytes.append(contentsOf: value)
            }
        }

        mutating func id(_ id: ObjectID) {
            withUnsafeBytes(of: id.raw.id) { bytes.append(contentsOf: $0) }
        }

        mutating func optionalID(_ id: ObjectID?) {
            u8(id == nil ? 0 : 1)
            if let id { self.id(id) }
        }

        mutating func makers(_ makers: [Maker]) {
            u32(UInt32(makers.count))
            for maker in makers {
                id(maker.commit)
                u8(maker.signatureMode ? 1 : 0)
            }
        }

        mutating func point(_ point: PolicyPointState?) {
            u8(point == nil ? 0 : 1)
            guard let point else { return }
            u64(UInt64(point.index))
            id(point.commit)
            string(point.digest)
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

        /// A count or index: a u64 that fits in an Int, and (when `minimum` is given) a number of
        /// records at least that long each that the rest of the payload can hold.
        mutating func count(minimum: Int = 0) -> Int? {
            guard let value = u64(), value <= UInt64(Int32.max) else { return nil }
            if minimum > 0, Int(value) > (buffer.count - offset) / minimum { return nil }
            return Int(value)
        }

        mutating func string() -> String? {
            guard let length = u32(), let raw = take(Int(length)) else { return nil }
            return String(decoding: raw, as: UTF8.self)
        }

        /// nil when unreadable; .some(nil) when absent.
        mutating func optionalString() -> String?? {
            guard let flag = u8(), flag <= 1 else { return nil }
            if flag == 0 { return .some(nil) }
            guard let value = string() else { return nil }
            return .some(value)
        }

        mutating func optionalBytes() -> [UInt8]?? {
            guard let flag = u8(), flag <= 1 else { return nil }
            if flag == 0 { return .some(nil) }
            guard let length = u32(), let raw = take(Int(length)) else { return nil }
            return .some(Array(raw))
        }

        mutating func id() -> ObjectID? {
            guard let raw = take(20) else { return nil }
            var oid = git_oid()
            withUnsafeMutableBytes(of: &oid.id) { $0.copyMemory(from: raw) }
            return ObjectID(oid)
        }

        mutating func optionalID() -> ObjectID?? {
            guard let flag = u8(), flag <= 1 else { return nil }
            if flag == 0 { return .some(nil) }
            guard let id = id() else { return nil }
            return .some(id)
        }

        mutating func makers() -> [Maker]? {
            guard let count = u32(), Int(count) <= (buffer.count - offset) / 21 else { return nil }
            var result: [Maker] = []
            for _ in 0..<count {
                guard let id = id(), let mode = u8() else { return nil }
                result.append(Maker(commit: id, signatureMode: mode == 1))
            }
            return result
        }

        mutating func point() -> PolicyPointState?? {
            guard let flag = u8(), flag <= 1 else { return nil }
            if flag == 0 { return .some(nil) }
            guard let index = count(), let commit = id(), let digest = string() else { return nil }
            return .some(PolicyPointState(index: index, commit: commit, digest: digest))
        }
    }

    /// A fast 64-bit checksum (not cryptographic: it catches corruption, not forgery).
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
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return [UInt8](data)
    }
}
