// fuzz-dictionary: json
@testable import RolloutCore

/// `rollouts/<name>/plan.json`: diagnostics point inside the file; a plan decoded without a
/// problem re-encodes to JSON that decodes to the same plan (positions aside), without a problem.
enum PlanTarget: FuzzTarget {
    static let name = "plan"

    static func run(_ bytes: [UInt8]) throws(FuzzViolation) {
        _ = try Fuzz.loadAlone(path: "rollouts/fuzz/plan.json", bytes)
        guard let json = try? JSONParser.parse(bytes) else { return }
        let sink = DiagnosticSink(path: "plan.json")
        guard let plan = Plan.decode(json, sink: sink), sink.diagnostics.isEmpty else { return }
        let encoded = Array(encode(plan).render().utf8)
        let again = DiagnosticSink(path: "plan.json")
        guard let reencoded = try? JSONParser.parse(encoded), let decoded = Plan.decode(reencoded, sink: again) else {
            throw FuzzViolation(
                "a valid plan does not survive re-encoding:\n"
                    + String(decoding: encoded, as: UTF8.self))
        }
        try Fuzz.require(again.diagnostics.isEmpty, "the re-encoded plan has problems: \(again.diagnostics)")
        try Fuzz.require(meaning(decoded) == meaning(plan), "the re-encoded plan means something else")
    }

    static func encode(_ plan: Plan) -> JSONOutput {
        let phases: [JSONOutput] = plan.phases.map { phase in
            let bake: JSONOutput? = phase.bake.map { JSONOutput.string("\($0.seconds)s") }
            return JSONOutput.members([
                ("name", .string(phase.name)), ("environment", .string(phase.environment)),
                ("coverage", .number(phase.coverage)),
                ("bake", bake),
                ("approvals", .array(phase.approvals.map { .string($0) })),
            ])
        }
        let checks: [JSONOutput] = plan.health.checks.map { check in
            let min: JSONOutput? = check.min.map { JSONOutput.number($0) }
            let max: JSONOutput? = check.max.map { JSONOutput.number($0) }
            return JSONOutput.members([
                ("name", .string(check.name)), ("query", .string(check.query)), ("min", min), ("max", max),
                ("onBreach", .string(check.onBreach.rawValue)), ("onNoData", .string(check.onNoData.rawValue)),
            ])
        }
        return .members([
            ("apiVersion", .string(plan.apiVersion)), ("name", .string(plan.name)), ("flag", .string(plan.flag)),
            ("description", .string(plan.description)), ("state", .string(plan.state.rawValue)),
            ("phases", .array(phases)),
            ("health", .members([("checks", .array(checks)), ("use", .string(plan.health.use))])),
            (
                "rollback",
                .object([
                    ("automatic", .bool(plan.rollback.automatic)),
                    ("notify", .array(plan.rollback.notify.map { .string($0) })),
                ])
            ),
            (
                "dashboard",
                plan.panels.isEmpty
                    ? nil
                    : .object([
                        (
                            "panels",
                            .array(
                                plan.panels.map { panel in
                                    JSONOutput.members([
                                        ("title", .string(panel.title)), ("query", .string(panel.query)),
                                        ("unit", .string(panel.unit)),
                                    ])
                                })
                        )
                    ])
            ),
        ])
    }

    /// The plan without the positions it was read at.
    static func meaning(_ plan: Plan) -> Plan {
        var plan = plan
        plan.namePosition = .start
        plan.health.usePosition = nil
        for index in plan.phases.indices {
            plan.phases[index].position = .start
            plan.phases[index].coveragePosition = .start
            plan.phases[index].approvalPositions = plan.phases[index].approvalPositions.map { _ in .start }
        }
        return plan
    }
}
