/// One file of a commit's tree, as the git adapter lists it.
public struct TreeFile: Equatable, Sendable {
    public enum Kind: Equatable, Sendable {
        case blob, symlink, submodule
    }

    public var path: String
    public var kind: Kind
    /// The git object id (a blob for files and symlinks, a commit for submodules).
    public var objectID: String
    public var size: Int

    public init(path: String, kind: Kind, objectID: String, size: Int) {
        self.path = path
        self.kind = kind
        self.objectID = objectID
        self.size = size
    }
}

/// An approval file found in the tree, decoded or not.
public struct ApprovalFile: Equatable, Sendable {
    public var path: String
    public var blobID: String
    /// The phase named by the file's folder.
    public var pathPhase: String
    /// Nil when the file could not be decoded; its diagnostics say why.
    public var record: ApprovalRecord?
    public var diagnostics: [Diagnostic]
}

/// Everything under `rollouts/<name>/`.
public struct RolloutFiles: Equatable, Sendable {
    public var name: String
    public var planPath: String { "rollouts/\(name)/plan.json" }
    /// Nil when plan.json is missing or invalid.
    public var plan: Plan?
    public var planBlob: String?
    /// The checks that apply: the plan's own, or those of the health set it uses.
    public var checks: [HealthCheck]
    public var approvals: [ApprovalFile]
    /// Problems with the plan or the layout: any of them makes the rollout invalid.
    public var diagnostics: [Diagnostic]

    public var isValid: Bool { plan != nil && diagnostics.isEmpty }

    /// Every problem of this rollout, plan and approval files together, in file order.
    public var allDiagnostics: [Diagnostic] {
        (diagnostics + approvals.flatMap(\.diagnostics)).sorted()
    }
}

/// A commit's rollout repository, decoded and validated (everything that needs no history).
public struct RepositorySnapshot: Sendable {
    public var policy: ApproversPolicy?
    public var allowedSigners: AllowedSigners?
    public var healthSets: [String: HealthSet]
    public var rollouts: [RolloutFiles]
    /// Problems in `policies/`.
    public var policyDiagnostics: [Diagnostic]

    public var allDiagnostics: [Diagnostic] {
        policyDiagnostics.sorted() + rollouts.flatMap(\.allDiagnostics)
    }

    public func rollout(named name: String) -> RolloutFiles? {
        rollouts.first { $0.name == name }
    }
}

/// Builds a `RepositorySnapshot` from a tree listing. The blob reader is the git adapter's.
public enum RepositoryLoader {
    /// Files larger than this are rejected without being read.
    public static let maxBlobSize = 1 << 20
    public static let allowedSignersPath = "policies/allowed_signers"

    public static func load(files: [TreeFile], read: (TreeFile) throws -> [UInt8]) -> RepositorySnapshot {
        var policyDiagnostics: [Diagnostic] = []
        var byPath: [String: TreeFile] = [:]
        for file in files { byPath[file.path] = file }

        /// Reads a text file, reporting size, kind and encoding problems.
        func text(_ file: TreeFile, into diagnostics: inout [Diagnostic]) -> [UInt8]? {
            switch file.kind {
            case .symlink:
                diagnostics.append(Diagnostic(path: file.path, message: "is a symbolic link; rolloutctl reads only regular files"))
                return nil
            case .submodule:
                diagnostics.append(Diagnostic(path: file.path, message: "is a submodule; rolloutctl reads only regular files"))
                return nil
            case .blob:
                break
            }
            if file.size > maxBlobSize {
                diagnostics.append(Diagnostic(path: file.path, message: "is \(file.size) bytes, over the 1 MiB limit"))
                return nil
            }
            let bytes: [UInt8]
            do {
                bytes = try read(file)
            } catch {
                diagnostics.append(Diagnostic(path: file.path, message: "cannot be read: \(error)"))
                return nil
            }
            if let position = firstInvalidUTF8(bytes) {
                diagnostics.append(Diagnostic(path: file.path, line: position.line, column: position.column,
                                              message: "is not valid UTF-8 text"))
                return nil
            }
            return bytes
        }

        func json(_ file: TreeFile, into diagnostics: inout [Diagnostic]) -> JSONValue? {
            guard let bytes = text(file, into: &diagnostics) else { return nil }
            do {
                return try JSONParser.parse(bytes)
            } catch {
                diagnostics.append(Diagnostic(path: file.path, line: error.position.line, column: error.position.column,
                                              message: error.message))
                return nil
            }
        }

        // policies/
        var policy: ApproversPolicy?
        if let file = byPath[ApproversPolicy.path] {
            if let value = json(file, into: &policyDiagnostics) {
                let sink = DiagnosticSink(path: file.path)
                policy = ApproversPolicy.decode(value, sink: sink)
                policyDiagnostics += sink.diagnostics
            }
        }
        var signers: AllowedSigners?
        if let file = byPath[allowedSignersPath], let bytes = text(file, into: &policyDiagnostics) {
            let (parsed, problems) = AllowedSigners.parse(bytes, path: file.path)
            signers = parsed
            policyDiagnostics += problems
        }
        var healthSets: [String: HealthSet] = [:]
        for file in files where file.path.hasPrefix("policies/health/") {
            let name = String(file.path.dropFirst("policies/health/".count))
            guard name.hasSuffix(".json"), !name.contains("/"), Names.isValid(String(name.dropLast(5))) else {
                policyDiagnostics.append(Diagnostic(path: file.path,
                    message: "unexpected file: health sets are policies/health/<name>.json with <name> matching \(Names.patternDescription)"))
                continue
            }
            if let value = json(file, into: &policyDiagnostics) {
                let sink = DiagnosticSink(path: file.path)
                if let set = HealthSet.decode(value, sink: sink) { healthSets[String(name.dropLast(5))] = set }
                policyDiagnostics += sink.diagnostics
            }
        }
        if policy == nil, byPath[ApproversPolicy.path] == nil,
           files.contains(where: { $0.path.hasPrefix("rollouts/") && $0.path.contains("/approvals/") }) {
            policyDiagnostics.append(Diagnostic(path: ApproversPolicy.path,
                message: "is missing: approvals need roles; create it (see SPEC §4)"))
        }

        // rollouts/
        var groups: [String: [TreeFile]] = [:]
        for file in files where file.path.hasPrefix("rollouts/") {
            let components = file.path.split(separator: "/", omittingEmptySubsequences: false)
            guard components.count >= 3 else {
                policyDiagnostics.append(Diagnostic(path: file.path,
                    message: "unexpected file: rollouts/ holds one folder per rollout"))
                continue
            }
            groups[String(components[1]), default: []].append(file)
        }

        var rollouts: [RolloutFiles] = []
        for (name, group) in groups.sorted(by: { $0.key < $1.key }) {
            rollouts.append(loadRollout(name: name, files: group, policy: policy, healthSets: healthSets,
                                        policyHasErrors: !policyDiagnostics.isEmpty, json: json))
        }
        return RepositorySnapshot(policy: policy, allowedSigners: signers, healthSets: healthSets,
                                  rollouts: rollouts, policyDiagnostics: policyDiagnostics)
    }

    private static func loadRollout(
        name: String, files: [TreeFile], policy: ApproversPolicy?, healthSets: [String: HealthSet],
        policyHasErrors: Bool, json: (TreeFile, inout [Diagnostic]) -> JSONValue?
    ) -> RolloutFiles {
        var diagnostics: [Diagnostic] = []
        let planPath = "rollouts/\(name)/plan.json"
        if !Names.isValid(name) {
            diagnostics.append(Diagnostic(path: "rollouts/\(name)",
                message: "rollout folder \"\(name)\" does not match \(Names.patternDescription)"))
        }
        var result = RolloutFiles(name: name, plan: nil, planBlob: nil, checks: [], approvals: [], diagnostics: [])

        var plan: Plan?
        if let file = files.first(where: { $0.path == planPath }) {
            result.planBlob = file.objectID
            if let value = json(file, &diagnostics) {
                let sink = DiagnosticSink(path: planPath)
                plan = Plan.decode(value, sink: sink)
                diagnostics += sink.diagnostics
                if let decoded = plan {
                    checkPlanAgainstPolicies(decoded, path: planPath, policy: policy, policyHasErrors: policyHasErrors,
                                             healthSets: healthSets, folder: name, diagnostics: &diagnostics)
                    result.checks = decoded.health.checks + (decoded.health.use.flatMap { healthSets[$0]?.checks } ?? [])
                }
            }
        } else {
            diagnostics.append(Diagnostic(path: planPath, message: "is missing: every folder under rollouts/ needs a plan.json"))
        }

        for file in files where file.path != planPath {
            let components = file.path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            // rollouts/<name>/approvals/<phase>/<file>.json
            guard components.count == 5, components[2] == "approvals", components[4].hasSuffix(".json"),
                  components[4].count > 5 else {
                diagnostics.append(Diagnostic(path: file.path,
                    message: "unexpected file: a rollout folder holds plan.json and approvals/<phase>/<name>.json only"))
                continue
            }
            let phaseName = components[3]
            var fileDiagnostics: [Diagnostic] = []
            if !Names.isValid(phaseName) {
                fileDiagnostics.append(Diagnostic(path: file.path,
                    message: "phase folder \"\(phaseName)\" does not match \(Names.patternDescription)"))
            } else if let plan, plan.phaseIndex(named: phaseName) == nil {
                fileDiagnostics.append(Diagnostic(path: file.path,
                    message: "approves phase \"\(phaseName)\", which the plan does not have"))
            }
            var record: ApprovalRecord?
            if let value = json(file, &fileDiagnostics) {
                let sink = DiagnosticSink(path: file.path)
                record = ApprovalRecord.decode(value, sink: sink, pathRollout: name, pathPhase: phaseName)
                fileDiagnostics += sink.diagnostics
            }
            result.approvals.append(ApprovalFile(path: file.path, blobID: file.objectID, pathPhase: phaseName,
                                                 record: record, diagnostics: fileDiagnostics))
        }
        result.approvals.sort { $0.path < $1.path }
        result.plan = diagnostics.isEmpty ? plan : nil
        result.diagnostics = diagnostics
        return result
    }

    private static func checkPlanAgainstPolicies(
        _ plan: Plan, path: String, policy: ApproversPolicy?, policyHasErrors: Bool,
        healthSets: [String: HealthSet], folder: String, diagnostics: inout [Diagnostic]
    ) {
        func report(_ message: String, _ position: SourcePosition) {
            diagnostics.append(Diagnostic(path: path, line: position.line, column: position.column, message: message))
        }
        if plan.name != folder {
            report("name \"\(plan.name)\" must equal its folder name \"\(folder)\"", plan.namePosition)
        }
        for phase in plan.phases {
            for (role, position) in zip(phase.approvals, phase.approvalPositions) {
                if let policy {
                    if policy.roles[role] == nil {
                        let known = policy.roles.keys.sorted().joined(separator: ", ")
                        report("role \"\(role)\" is not defined in \(ApproversPolicy.path) (roles: \(known))", position)
                    }
                } else if !policyHasErrors {
                    report("role \"\(role)\" needs \(ApproversPolicy.path), which is missing", position)
                }
            }
        }
        if let use = plan.health.use, healthSets[use] == nil {
            report("health set \"\(use)\" does not exist: expected policies/health/\(use).json",
                   plan.health.usePosition ?? plan.namePosition)
        }
    }

    /// The position of the first byte that is not valid UTF-8, or nil when the text is valid.
    static func firstInvalidUTF8(_ bytes: [UInt8]) -> SourcePosition? {
        var line = 1, column = 1
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            let length: Int
            switch byte {
            case 0x00...0x7F: length = 1
            case 0xC2...0xDF: length = 2
            case 0xE0...0xEF: length = 3
            case 0xF0...0xF4: length = 4
            default: return SourcePosition(line: line, column: column)
            }
            guard index + length <= bytes.count else { return SourcePosition(line: line, column: column) }
            if length > 1 {
                let sequence = Array(bytes[index..<(index + length)])
                if String(validating: sequence, as: UTF8.self) == nil { return SourcePosition(line: line, column: column) }
            }
            if byte == UInt8(ascii: "\n") {
                line += 1
                column = 1
            } else {
                column += 1
            }
            index += length
        }
        return nil
    }
}
