// Shared by every fuzz target (Fuzz/Targets/*Target.swift). scripts/fuzz compiles this file, one
// target file and a libFuzzer entry point into one executable; the RolloutFuzzTests test target
// compiles all of them and replays Fuzz/corpus and Fuzz/regressions through the same `run`.
@testable import RolloutCore

/// One parser under fuzzing. `run` feeds it arbitrary bytes; it must return (or throw a
/// violation) in bounded time and never trap. A violation is a broken invariant beyond "no crash".
protocol FuzzTarget {
    /// The folder of its inputs under Fuzz/corpus and Fuzz/regressions.
    static var name: String { get }
    static func run(_ bytes: [UInt8]) throws(FuzzViolation)
}

/// An invariant the parser broke on some input.
struct FuzzViolation: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

enum Fuzz {
    static func require(_ condition: Bool, _ message: @autoclosure () -> String) throws(FuzzViolation) {
        if !condition { throw FuzzViolation(message()) }
    }

    /// The number of lines of a text, and the length in Unicode scalars of each line (what a
    /// `SourcePosition` counts). Bytes that are not UTF-8 count as one column each.
    static func lineLengths(_ bytes: [UInt8]) -> [Int] {
        var lengths: [Int] = []
        var column = 0
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                lengths.append(column)
                column = 0
            } else if byte & 0xC0 != 0x80 {
                column += 1
            }
        }
        lengths.append(column)
        return lengths
    }

    /// Every position lies inside the input: an existing line, and a column at most one past
    /// that line's end (an error at the end of a line or of the file points just after it).
    static func requireInside(_ positions: [(line: Int, column: Int, what: String)], _ bytes: [UInt8])
        throws(FuzzViolation)
    {
        let lengths = lineLengths(bytes)
        for position in positions {
            try require(
                position.line >= 1 && position.line <= lengths.count,
                "line \(position.line) outside 1...\(lengths.count): \(position.what)")
            let length = lengths[position.line - 1]
            try require(
                position.column >= 1 && position.column <= length + 1,
                "column \(position.column) outside 1...\(length + 1) of line \(position.line): "
                    + position.what)
        }
    }

    static func requireInside(_ diagnostics: [Diagnostic], _ bytes: [UInt8]) throws(FuzzViolation) {
        try requireInside(diagnostics.map { (line: $0.line, column: $0.column, what: $0.description) }, bytes)
    }

    /// Decodes one repository file the way `validate` and `reconcile` do (size, UTF-8, JSON,
    /// decoder), as the only file of a tree, and checks that every diagnostic of that file lies
    /// inside it. Returns the snapshot for the target's own checks.
    static func loadAlone(path: String, _ bytes: [UInt8]) throws(FuzzViolation) -> RepositorySnapshot {
        let file = TreeFile(path: path, kind: .blob, objectID: String(repeating: "0", count: 40), size: bytes.count)
        let snapshot = RepositoryLoader.load(files: [file]) { _ in bytes }
        try requireInside(snapshot.allDiagnostics.filter { $0.path == path }, bytes)
        return snapshot
    }
}
