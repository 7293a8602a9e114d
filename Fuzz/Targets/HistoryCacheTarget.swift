@testable import RolloutGit

/// The history walk's cache file. The fuzzed bytes are the payload; the target writes the header
/// (magic, version, length, checksum) so that the fuzzer reaches the field readers. A state read
/// back writes the same bytes again (the cache is canonical).
enum HistoryCacheTarget: FuzzTarget {
    static let name = "history-cache"

    static func run(_ bytes: [UInt8]) throws(FuzzViolation) {
        var header = HistoryCache.Writer()
        header.bytes = HistoryCache.magic
        header.u32(WalkState.formatVersion)
        header.u64(UInt64(bytes.count))
        header.u64(bytes.withUnsafeBytes { HistoryCache.checksum($0) })
        let file = header.bytes + bytes
        _ = HistoryCache.decode(bytes, repository: "fuzz")  // raw bytes too: bad headers
        guard let state = HistoryCache.decode(file, repository: "fuzz") else { return }
        let written = HistoryCache.encode(state, repository: "fuzz")
        guard let again = HistoryCache.decode(written, repository: "fuzz") else {
            throw FuzzViolation("a state read from the cache does not read back after writing")
        }
        try Fuzz.require(HistoryCache.encode(again, repository: "fuzz") == written, "the cache is not canonical")
    }
}
