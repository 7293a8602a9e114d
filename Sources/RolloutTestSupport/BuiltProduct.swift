import Foundation

/// The package's built executables, for tests that run them as processes (`swift build --build-tests`
/// builds every product): one place that knows where SwiftPM puts them.
public enum BuiltProduct {
    /// The folder holding `Package.swift`, found upwards from this file.
    public static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while url.path != "/" {
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
                return url.path
            }
            url.deleteLastPathComponent()
        }
        fatalError("no Package.swift above \(#filePath)")
    }()

    /// The debug build of `name` (`.build/debug/NAME`, or the platform folder it links to), or nil
    /// when it is not built.
    public static func debug(_ name: String) -> String? {
        let candidates = [
            packageRoot + "/.build/debug/" + name,
            packageRoot + "/.build/x86_64-unknown-linux-gnu/debug/" + name,
            packageRoot + "/.build/aarch64-unknown-linux-gnu/debug/" + name,
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}
