import Foundation
import RolloutCore
import RolloutGit

/// `rolloutctl validate`: every problem of every file, each at its `path:line:column`.
public struct ValidateReport: Sendable {
    public var ref: String
    public var revision: String
    public var diagnostics: [Diagnostic]
    public var rolloutCount: Int
    public var approvalCount: Int

    public var isValid: Bool { diagnostics.isEmpty }

    public static func run(repositoryPath: String, ref: String?) throws(GitError) -> ValidateReport {
        let repository = try GitRepository(path: repositoryPath)
        let (refName, commit) = try RepositoryReader.resolve(repository: repository, ref: ref)
        let snapshot = try RepositoryReader.snapshot(repository: repository, commit: commit)
        return ValidateReport(ref: refName, revision: commit.description, diagnostics: snapshot.allDiagnostics,
                              rolloutCount: snapshot.rollouts.count,
                              approvalCount: snapshot.rollouts.reduce(0) { $0 + $1.approvals.count })
    }

    public func human(style: Style) -> String {
        var lines = diagnostics.map { diagnostic in
            "\(style.bold("\(diagnostic.path):\(diagnostic.line):\(diagnostic.column):")) \(style.red("error:")) \(diagnostic.message)"
        }
        let at = "\(ref) @ \(revision.prefix(12))"
        let counted = "\(rolloutCount) rollout\(rolloutCount == 1 ? "" : "s"), \(approvalCount) approval file\(approvalCount == 1 ? "" : "s")"
        if isValid {
            lines.append(style.green("Valid:") + " \(counted), policies checked (\(at)).")
        } else {
            let files = Set(diagnostics.map(\.path)).count
            lines.append(style.red("Invalid:") + " \(diagnostics.count) error\(diagnostics.count == 1 ? "" : "s") in "
                + "\(files) file\(files == 1 ? "" : "s") (\(counted); \(at)).")
        }
        return lines.joined(separator: "\n")
    }

    public func json() -> String {
        JSONOutput.object([
            ("formatVersion", .string("1.0")),
            ("ref", .string(ref)),
            ("revision", .string(revision)),
            ("valid", .bool(isValid)),
            ("errors", .array(diagnostics.map(\.json))),
            ("summary", .object([("rollouts", .int(rolloutCount)), ("approvals", .int(approvalCount)),
                                 ("errors", .int(diagnostics.count))])),
        ]).render()
    }
}

extension Diagnostic {
    var json: JSONOutput {
        .object([("path", .string(path)), ("line", .int(line)), ("column", .int(column)), ("message", .string(message))])
    }
}
