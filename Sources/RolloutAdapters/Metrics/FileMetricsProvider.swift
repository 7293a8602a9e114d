import Foundation
import RolloutCore

/// The metrics provider behind `--metrics file:PATH` (SPEC §6): a JSON object of check
/// name → number, e.g. `{"error-rate": 0.004, "submission-success": 0.99}`.
///
/// The file is read again on every `evaluate`, so a test or an operator can change it
/// between runs. The query text is not used: the check's name is the key. A missing key,
/// `null`, a value that is not a number, or a file that cannot be read or is not a JSON
/// object is `.noData` with the reason. `evaluate` never throws.
public final class FileMetricsProvider: MetricsProvider {
    public let path: String

    public init(path: String) {
        self.path = path
    }

    /// The provider for a `file:PATH` argument, or nil when `spec` does not start with `file:`.
    public convenience init?(spec: String) {
        guard spec.hasPrefix("file:") else { return nil }
        var path = String(spec.dropFirst("file:".count))
        if path.hasPrefix("//") { path.removeFirst(2) }  // file:///abs/path → /abs/path
        self.init(path: path)
    }

    public func evaluate(_ query: MetricQuery) async -> MetricResult {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            return .noData(reason: "cannot read metrics file \(path): \(Self.describe(readError: error))")
        }
        let top: JSONValue
        do {
            top = try JSONParser.parse([UInt8](data))
        } catch {
            return .noData(reason: "malformed metrics file \(path): not valid JSON")
        }
        guard case .object(let members) = top.kind else {
            return .noData(reason: "malformed metrics file \(path): not a JSON object of check name → number")
        }
        // The core's parser refuses repeated keys: a file that says two things is not valid JSON.
        guard let value = members.first(where: { $0.key == query.check })?.value.kind else {
            return .noData(reason: "no value for \(query.check) in \(path)")
        }
        switch value {
        case .number(let number) where number.isFinite:
            return .value(number)
        case .null:
            return .noData(reason: "value for \(query.check) in \(path) is null")
        default:
            return .noData(reason: "value for \(query.check) in \(path) is not a number")
        }
    }

    private static func describe(readError error: Error) -> String {
        let nsError = error as NSError
        if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? NSError,
            underlying.domain == NSPOSIXErrorDomain,
            let code = POSIXErrorCode(rawValue: Int32(underlying.code))
        {
            return String(cString: strerror(code.rawValue))
        }
        if nsError.domain == NSCocoaErrorDomain {
            switch nsError.code {
            case NSFileReadNoSuchFileError: return "no such file"
            case NSFileReadNoPermissionError: return "permission denied"
            default: break
            }
        }
        return nsError.localizedDescription
    }
}
