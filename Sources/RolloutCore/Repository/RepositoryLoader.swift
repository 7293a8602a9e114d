/// Builds a `RepositorySnapshot` from a tree listing. The blob reader is the git adapter's.
public enum RepositoryLoader {
    /// Files larger than this are rejected without being read.
    public static let maxBlobSize = 1 << 20

    /// - Parameter plansJudgedBy: the policy plans are validated against (SPEC §4.3 [r3]: the policy in
    ///   force); nil: the tree's own policy (what `validate` judges).
    public static func load(
        files: [TreeFile], plansJudgedBy: PolicySet? = nil, read: (TreeFile) throws -> [UInt8]
    ) -> RepositorySnapshot {
        withoutActuallyEscaping(read) { read in
            load(files: files, plansJudgedBy: plansJudgedBy, reader: FileReader(read: read))
        }
    }

    private static func load(files: [TreeFile], plansJudgedBy: PolicySet?, reader: FileReader) -> RepositorySnapshot {
        let mentionsApprovals = files.contains(where: {
            $0.path.hasPrefix(RepositoryLayout.rolloutsPrefix)
                && $0.path.contains("/\(RepositoryLayout.approvalsFolder)/")
        })
        let (policySet, policyApprovals, policyProblems) = policyPart(
            files: files, mentionsApprovals: mentionsApprovals, reader: reader)
        var policyDiagnostics = policyProblems

        // rollouts/
        var groups: [String: [TreeFile]] = [:]
        for file in files where file.path.hasPrefix(RepositoryLayout.rolloutsPrefix) {
            let components = file.path.split(separator: "/", omittingEmptySubsequences: false)
            guard components.count >= 3 else {
                policyDiagnostics.append(
                    Diagnostic(
                        path: file.path,
                        message: "unexpected file: \(RepositoryLayout.rolloutsPrefix) holds one folder per rollout"))
                continue
            }
            groups[String(components[1]), default: []].append(file)
        }

        let judge = plansJudgedBy ?? policySet
        let policyHasErrors = !judge.diagnostics.isEmpty || (plansJudgedBy == nil && !policyDiagnostics.isEmpty)
        var decoded: [DecodedRollout] = []
        for (name, group) in groups.sorted(by: { $0.key < $1.key }) {
            decoded.append(
                decodeRollout(name: name, files: group, judge: judge, policyHasErrors: policyHasErrors, reader: reader))
        }
        return RepositorySnapshot(
            policySet: policySet, policyApprovals: policyApprovals, rollouts: checkFlags(decoded),
            policyDiagnostics: policyDiagnostics)
    }

    /// A snapshot assembled from `policies/` (and any file directly under `rollouts/`) and rollout folders
    /// decoded one by one (`decodeRollout`, some of them kept from an earlier run), sorted by name, then checked
    /// across rollouts: the same snapshot `load` makes of the same files, when the tip's policy has an
    /// approvers file that decodes (so that no rollout file is needed to judge the policy).
    public static func snapshot(
        policyFiles: [TreeFile], rollouts: [DecodedRollout], read: (TreeFile) throws -> [UInt8]
    ) -> RepositorySnapshot {
        withoutActuallyEscaping(read) { read in
            let reader = FileReader(read: read)
            let (policySet, policyApprovals, policyProblems) = policyPart(
                files: policyFiles, mentionsApprovals: false, reader: reader)
            var policyDiagnostics = policyProblems
            for file in policyFiles where file.path.hasPrefix(RepositoryLayout.rolloutsPrefix) {
                policyDiagnostics.append(
                    Diagnostic(
                        path: file.path,
                        message: "unexpected file: \(RepositoryLayout.rolloutsPrefix) holds one folder per rollout"))
            }
            return RepositorySnapshot(
                policySet: policySet, policyApprovals: policyApprovals,
                rollouts: checkFlags(rollouts.sorted { $0.files.name < $1.files.name }),
                policyDiagnostics: policyDiagnostics)
        }
    }

    /// One rollout folder (`files` all under `rollouts/<name>/`) decoded on its own, its plan judged by `judge`.
    public static func decodeRollout(
        name: String, files: [TreeFile], judge: PolicySet, policyHasErrors: Bool,
        read: (TreeFile) throws -> [UInt8]
    ) -> DecodedRollout {
        withoutActuallyEscaping(read) { read in
            decodeRollout(
                name: name, files: files, judge: judge, policyHasErrors: policyHasErrors,
                reader: FileReader(read: read))
        }
    }

    private static func decodeRollout(
        name: String, files: [TreeFile], judge: PolicySet, policyHasErrors: Bool, reader: FileReader
    ) -> DecodedRollout {
        var flagAt: (flag: String, position: SourcePosition)?
        let files = loadRollout(
            name: name, files: files, policy: judge.approvers, healthSets: judge.healthSets,
            policyHasErrors: policyHasErrors, json: { reader.json($0, &$1) }, flagAt: &flagAt)
        return DecodedRollout(files: files, flag: flagAt?.flag, flagPosition: flagAt?.position)
    }

    /// Two rollouts may not drive the same flag (SPEC §3): both plans are errors.
    private static func checkFlags(_ decoded: [DecodedRollout]) -> [RolloutFiles] {
        var rollouts = decoded.map(\.files)
        var flags: [String: [(index: Int, position: SourcePosition)]] = [:]
        for (index, rollout) in decoded.enumerated() {
            if let flag = rollout.flag, let position = rollout.flagPosition {
                flags[flag, default: []].append((index, position))
            }
        }
        for (flag, users) in flags where users.count > 1 {
            for (index, position) in users {
                let others = users.filter { $0.index != index }.map { rollouts[$0.index].name }
                rollouts[index].diagnostics.append(
                    Diagnostic(
                        path: rollouts[index].planPath, line: position.line, column: position.column,
                        message: "flag \"\(flag)\" is also driven by \(others.joined(separator: ", ")); "
                            + "two rollouts may not drive the same flag"))
                rollouts[index].plan = nil
            }
        }
        return rollouts
    }

    /// `policies/` decoded: the policy, its approvals, and their problems. `mentionsApprovals`: some file
    /// under `rollouts/` has an `approvals/` folder on its path (approvals then need approvers.json).
    private static func policyPart(files: [TreeFile], mentionsApprovals: Bool, reader: FileReader)
        -> (PolicySet, [PolicyApprovalFile], [Diagnostic])
    {
        var byPath: [String: TreeFile] = [:]
        for file in files { byPath[file.path] = file }
        func json(_ file: TreeFile, _ diagnostics: inout [Diagnostic]) -> JSONValue? { reader.json(file, &diagnostics) }

        // policies/
        let policySet = loadPolicySet(files: files, reader: reader)
        var policyDiagnostics = policySet.diagnostics
        let policy = policySet.approvers
        var policyApprovals: [PolicyApprovalFile] = []
        for file in files where file.path.hasPrefix(RepositoryLayout.policyApprovalsPrefix) {
            var diagnostics: [Diagnostic] = []
            var record: PolicyApprovalRecord?
            let name = file.path.dropFirst(RepositoryLayout.policyApprovalsPrefix.count)
            if file.path.hasSuffix(".json"), !name.contains("/") {
                if let value = json(file, &diagnostics) {
                    let sink = DiagnosticSink(path: file.path)
                    record = PolicyApprovalRecord.decode(value, sink: sink)
                    diagnostics += sink.diagnostics
                }
            } else {
                diagnostics.append(
                    Diagnostic(
                        path: file.path,
                        message: "unexpected file: policy approvals are "
                            + "\(RepositoryLayout.policyApprovalsPrefix)<name>.json"))
            }
            policyDiagnostics += diagnostics
            policyApprovals.append(
                PolicyApprovalFile(
                    path: file.path, blobID: file.objectID, record: record,
                    diagnostics: diagnostics))
        }
        if policy == nil, byPath[RepositoryLayout.approvers] == nil, mentionsApprovals {
            policyDiagnostics.append(
                Diagnostic(
                    path: RepositoryLayout.approvers,
                    message: "is missing: approvals need roles; create it (see SPEC §4)"))
        }

        return (policySet, policyApprovals, policyDiagnostics)
    }

    /// The policy's files of a commit (everything under policies/ but policies/approvals/), decoded.
    public static func loadPolicySet(files: [TreeFile], read: (TreeFile) throws -> [UInt8]) -> PolicySet {
        withoutActuallyEscaping(read) { read in loadPolicySet(files: files, reader: FileReader(read: read)) }
    }

    private static func loadPolicySet(files: [TreeFile], reader: FileReader) -> PolicySet {
        func json(_ file: TreeFile, _ diagnostics: inout [Diagnostic]) -> JSONValue? { reader.json(file, &diagnostics) }
        func text(_ file: TreeFile, _ diagnostics: inout [Diagnostic]) -> [UInt8]? { reader.text(file, &diagnostics) }
        let policyFiles = files.filter { RepositoryLayout.isPolicyFile($0.path) }
        var diagnostics: [Diagnostic] = []
        var policy: ApproversPolicy?
        if let file = policyFiles.first(where: { $0.path == RepositoryLayout.approvers }),
            let value = json(file, &diagnostics)
        {
            let sink = DiagnosticSink(path: file.path)
            policy = ApproversPolicy.decode(value, sink: sink)
            diagnostics += sink.diagnostics
        }
        var signers: AllowedSigners?
        if let file = policyFiles.first(where: { $0.path == RepositoryLayout.allowedSigners }),
            let bytes = text(file, &diagnostics)
        {
            let (parsed, problems) = AllowedSigners.parse(bytes, path: file.path)
            signers = parsed
            diagnostics += problems
        }
        var healthSets: [String: HealthSet] = [:]
        for file in policyFiles where file.path.hasPrefix(RepositoryLayout.healthSetsPrefix) {
            let name = String(file.path.dropFirst(RepositoryLayout.healthSetsPrefix.count))
            guard name.hasSuffix(".json"), !name.contains("/"), Names.isValid(String(name.dropLast(5))) else {
                diagnostics.append(
                    Diagnostic(
                        path: file.path,
                        message: "unexpected file: health sets are \(RepositoryLayout.healthSetsPrefix)<name>.json "
                            + "with <name> matching \(Names.patternDescription)"))
                continue
            }
            if let value = json(file, &diagnostics) {
                let sink = DiagnosticSink(path: file.path)
                if let set = HealthSet.decode(value, sink: sink) { healthSets[String(name.dropLast(5))] = set }
                diagnostics += sink.diagnostics
            }
        }
        return PolicySet(
            digest: PolicyDigest.compute(files), approvers: policy, allowedSigners: signers,
            healthSets: healthSets, diagnostics: diagnostics)
    }

    private static func loadRollout(
        name: String, files: [TreeFile], policy: ApproversPolicy?, healthSets: [String: HealthSet],
        policyHasErrors: Bool, json: (TreeFile, inout [Diagnostic]) -> JSONValue?,
        flagAt: inout (flag: String, position: SourcePosition)?
    ) -> RolloutFiles {
        var diagnostics: [Diagnostic] = []
        let planPath = RepositoryLayout.planPath(rollout: name)
        if !Names.isValid(name) {
            diagnostics.append(
                Diagnostic(
                    path: RepositoryLayout.rolloutFolder(name),
                    message: "rollout folder \"\(name)\" does not match \(Names.patternDescription)"))
        }
        var result = RolloutFiles(name: name, plan: nil, planBlob: nil, checks: [], approvals: [], diagnostics: [])
        // SPEC §4.0 rule 4: names git keeps apart but text would fold make this rollout (and it alone) invalid.
        for file in files {
            guard let problem = file.nameProblem else { continue }
            diagnostics.append(Diagnostic(path: file.path, message: problem))
            result.hasNameProblem = true
        }

        var plan: Plan?
        if let file = files.first(where: { $0.path == planPath }) {
            result.planBlob = file.objectID
            if let value = json(file, &diagnostics) {
                let sink = DiagnosticSink(path: planPath)
                plan = Plan.decode(value, sink: sink)
                diagnostics += sink.diagnostics
                if let decoded = plan {
                    if case .object(let members) = value.kind,
                        let member = members.first(where: { $0.key == "flag" })
                    {
                        flagAt = (decoded.flag, member.value.position)
                    }
                    checkPlanAgainstPolicies(
                        decoded, path: planPath, policy: policy, policyHasErrors: policyHasErrors,
                        healthSets: healthSets, folder: name, diagnostics: &diagnostics)
                    result.checks =
                        decoded.health.checks + (decoded.health.use.flatMap { healthSets[$0]?.checks } ?? [])
                }
            }
        } else {
            diagnostics.append(
                Diagnostic(
                    path: planPath,
                    message: "is missing: every folder under "
                        + "\(RepositoryLayout.rolloutsPrefix) needs a \(RepositoryLayout.planFile)"))
        }

        for file in files where file.path != planPath {
            let components = file.path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            // rollouts/<name>/approvals/<phase>/<file>.json
            guard components.count == 5, components[2] == RepositoryLayout.approvalsFolder,
                components[4].hasSuffix(".json"),
                components[4].count > 5
            else {
                diagnostics.append(
                    Diagnostic(
                        path: file.path,
                        message:
                            "unexpected file: a rollout folder holds plan.json and approvals/<phase>/<name>.json only"))
                continue
            }
            let phaseName = components[3]
            var fileDiagnostics: [Diagnostic] = []
            if !Names.isValid(phaseName) {
                fileDiagnostics.append(
                    Diagnostic(
                        path: file.path,
                        message: "phase folder \"\(phaseName)\" does not match \(Names.patternDescription)"))
            } else if let plan, plan.phaseIndex(named: phaseName) == nil {
                fileDiagnostics.append(
                    Diagnostic(
                        path: file.path,
                        message: "approves phase \"\(phaseName)\", which the plan does not have"))
            }
            var record: ApprovalRecord?
            if let value = json(file, &fileDiagnostics) {
                let sink = DiagnosticSink(path: file.path)
                record = ApprovalRecord.decode(value, sink: sink, pathRollout: name, pathPhase: phaseName)
                fileDiagnostics += sink.diagnostics
            }
            result.approvals.append(
                ApprovalFile(
                    path: file.path, blobID: file.objectID, pathPhase: phaseName,
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
                        report(
                            "role \"\(role)\" is not defined in \(RepositoryLayout.approvers) (roles: \(known))",
                            position)
                    }
                } else if !policyHasErrors {
                    report("role \"\(role)\" needs \(RepositoryLayout.approvers), which is missing", position)
                }
            }
        }
        if let use = plan.health.use, healthSets[use] == nil {
            report(
                "health set \"\(use)\" does not exist: expected policies/health/\(use).json",
                plan.health.usePosition ?? plan.namePosition)
        }
    }

    /// The position of the first byte that is not valid UTF-8, or nil when the text is valid.
    static func firstInvalidUTF8(_ bytes: [UInt8]) -> SourcePosition? {
        var line = 1
        var column = 1
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
                if String(validating: sequence, as: UTF8.self) == nil {
                    return SourcePosition(line: line, column: column)
                }
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

/// Reads repository files for decoding, reporting size, kind, encoding and JSON problems.
