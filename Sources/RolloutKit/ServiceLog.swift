import Foundation
import Logging
import RolloutCore

#if canImport(Glibc)
    import Glibc
#endif

/// How a service writes its log (`--log-format`, SPEC §6 [r3]).
public enum ServiceLogFormat: String, Sendable, CaseIterable {
    /// One line per event: the message, `warning: ` or `error: ` before it at those levels.
    case text
    /// One JSON object per line: `time`, `level`, `message`, then the event's fields.
    case json
}

/// The `LogHandler` of `reconcile --interval` and `serve`: one line per event on a stream, as
/// text or as JSON for log collectors. Lines are written whole (one `write` each), so lines of
/// concurrent tasks never interleave.
public struct ServiceLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public var logLevel: Logger.Level = .info
    let format: ServiceLogFormat
    let write: @Sendable (String) -> Void
    let clock: @Sendable () -> Date

    /// - Parameter write: receives each line with its newline (default: standard output).
    public init(
        format: ServiceLogFormat, clock: @escaping @Sendable () -> Date = { Date() },
        write: @escaping @Sendable (String) -> Void = ServiceLogHandler.standardOutput
    ) {
        self.format = format
        self.clock = clock
        self.write = write
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let fields = metadata.merging(event.metadata ?? [:]) { _, new in new }
        write(Self.line(format: format, time: clock(), level: event.level, message: "\(event.message)", fields: fields))
    }

    /// One rendered line, newline included.
    static func line(
        format: ServiceLogFormat, time: Date, level: Logger.Level, message: String, fields: Logger.Metadata
    ) -> String {
        switch format {
        case .text:
            let prefix: String
            switch level {
            case .warning: prefix = "warning: "
            case .error, .critical: prefix = "error: "
            default: prefix = ""
            }
            return prefix + message + "\n"
        case .json:
            var members: [(String, JSONOutput)] = [
                ("time", .string(RFC3339.format(time))), ("level", .string(level.rawValue)),
                ("message", .string(message)),
            ]
            for (key, value) in fields.sorted(by: { $0.key < $1.key })
            where !["time", "level", "message"].contains(key) {
                members.append((key, json(value)))
            }
            return JSONOutput.object(members).render(pretty: false) + "\n"
        }
    }

    private static func json(_ value: Logger.MetadataValue) -> JSONOutput {
        switch value {
        case .string(let text): return .string(text)
        case .stringConvertible(let item):
            if let number = item as? Int { return .int(number) }
            if let number = item as? Double, number.isFinite { return .number(number) }
            if let flag = item as? Bool { return .bool(flag) }
            return .string(item.description)
        case .array(let items): return .array(items.map(json))
        case .dictionary(let entries):
            return .object(entries.sorted { $0.key < $1.key }.map { ($0.key, json($0.value)) })
        }
    }

    /// Writes to standard output in one `write` per line (no buffer), so a collector sees each line at
    /// once and lines of concurrent tasks never interleave.
    public static let standardOutput: @Sendable (String) -> Void = { line in
        var bytes = Array(line.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Glibc.write(STDOUT_FILENO, $0.baseAddress, $0.count) }
            if written < 0, errno == EINTR { continue }
            guard written > 0 else { return }
            bytes = bytes.dropFirst(written)
        }
    }
}
