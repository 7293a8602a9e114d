/// `rollouts/<name>/plan.json` (SPEC §3).
public struct Plan: Equatable, Sendable {
    public enum State: String, Equatable, Sendable {
        case active, paused, aborted
    }

    public struct Phase: Equatable, Sendable {
        public var name: String
        public var environment: String
        public var coverage: Double
        public var bake: RolloutDuration?
        /// Role names; a role listed twice needs two different approvers.
        public var approvals: [String]
        public var approvalPositions: [SourcePosition]
        public var position: SourcePosition
        /// Where `coverage` is written (a flag store's plan problems point there).
        public var coveragePosition: SourcePosition

        public init(
            name: String, environment: String, coverage: Double, bake: RolloutDuration? = nil,
            approvals: [String] = [], position: SourcePosition = .start
        ) {
            self.name = name
            self.environment = environment
            self.coverage = coverage
            self.bake = bake
            self.approvals = approvals
            self.approvalPositions = Array(repeating: position, count: approvals.count)
            self.position = position
            self.coveragePosition = position
        }
    }

    public struct Health: Equatable, Sendable {
        public var checks: [HealthCheck]
        /// The name of a set in `policies/health/<name>.json`, resolved by the repository loader.
        public var use: String?
        public var usePosition: SourcePosition?
    }

    public struct Rollback: Equatable, Sendable {
        public var automatic: Bool
        public var notify: [String]

        public init(automatic: Bool = true, notify: [String] = []) {
            self.automatic = automatic
            self.notify = notify
        }
    }

    public var apiVersion: String
    public var name: String
    public var namePosition: SourcePosition
    public var flag: String
    public var description: String?
    public var state: State
    public var phases: [Phase]
    public var health: Health
    public var rollback: Rollback
    /// `dashboard.panels` (SPEC §3): time series `rolloutctl serve` draws on the rollout's page.
    public var panels: [DashboardPanel] = []

    public func phaseIndex(named name: String) -> Int? {
        phases.firstIndex { $0.name == name }
    }

    /// The desired state of every environment reached by phase `k` (SPEC §3): the coverage of the
    /// last phase ≤ k that targets it. Environments not reached yet are absent.
    public func desiredState(atPhase k: Int) -> [String: FlagEnvironmentState] {
        var result: [String: FlagEnvironmentState] = [:]
        for phase in phases.prefix(k + 1) {
            result[phase.environment] = FlagEnvironmentState(enabled: phase.coverage > 0, coverage: phase.coverage)
        }
        return result
    }

    /// Environments in the order the plan first reaches them.
    public var environments: [String] {
        var seen: [String] = []
        var known: Set<String> = []  // a set: a plan of thousands of phases stays linear
        for phase in phases where known.insert(phase.environment).inserted { seen.append(phase.environment) }
        return seen
    }
}

/// One `dashboard.panels[]` entry (SPEC §3): a PromQL time series drawn by `rolloutctl serve`.
/// The query takes the substitutions of SPEC §8 (`{{flag}}`, `{{environment}}`, `{{phase}}`, `{{window}}`).
public struct DashboardPanel: Equatable, Sendable {
    public var title: String
    public var query: String
    public var unit: String?

    public init(title: String, query: String, unit: String? = nil) {
        self.title = title
        self.query = query
        self.unit = unit
    }
}

/// One health check (SPEC §3).
public struct HealthCheck: Equatable, Sendable {
    public enum Action: String, Equatable, Sendable {
        /// `notify` never gates: a breach sends one notification per breach episode (SPEC §3).
        case hold, rollback, notify
    }

    public enum NoDataAction: String, Equatable, Sendable {
        case hold, rollback, ignore
    }

    public var name: String
    public var query: String
    public var min: Double?
    public var max: Double?
    public var onBreach: Action
    public var onNoData: NoDataAction

    public init(
        name: String, query: String, min: Double? = nil, max: Double? = nil,
        onBreach: Action, onNoData: NoDataAction = .hold
    ) {
        self.name = name
        self.query = query
        self.min = min
        self.max = max
        self.onBreach = onBreach
        self.onNoData = onNoData
    }

    /// The threshold as people read it: `max 0.02`, `min 0.95`, `0.9 ≤ x ≤ 1`.
    public var thresholdDescription: String {
        switch (min, max) {
        case (let lo?, let hi?): return "\(formatNumber(lo)) ≤ x ≤ \(formatNumber(hi))"
        case (let lo?, nil): return "min \(formatNumber(lo))"
        case (nil, let hi?): return "max \(formatNumber(hi))"
        case (nil, nil): return "no threshold"
        }
    }

    /// True when `value` is within the threshold.
    public func passes(_ value: Double) -> Bool {
        if let min, value < min { return false }
        if let max, value > max { return false }
        return true
    }
}

extension Plan {
    static let fields = [
        "apiVersion", "name", "flag", "description", "state", "phases", "health", "rollback",
        "dashboard",
    ]
    static let phaseFields = ["name", "environment", "coverage", "bake", "approvals"]

    /// Decodes and checks everything that needs no other file. Returns nil when the plan has no
    /// name or flag; the sink holds every problem found either way, and a plan returned with
    /// problems in the sink must not be reconciled.
    public static func decode(_ json: JSONValue, sink: DiagnosticSink) -> Plan? {
        guard let root = ObjectReader(json, sink: sink, name: "the plan", allowed: fields) else { return nil }
        Names.checkAPIVersion(root)
        let name = root.string("name")
        if let (text, position) = name, !Names.isValid(text) {
            sink.report("rollout name \"\(text)\" does not match \(Names.patternDescription)", at: position)
        }
        let flag = root.string("flag")
        if let (text, position) = flag, text.isEmpty || text.contains(where: { $0.isWhitespace || $0 == "/" }) {
            sink.report("flag key \"\(text)\" must be non-empty, without spaces or '/'", at: position)
        }
        let description = root.string("description", required: false)?.0
        let state = root.choice("state", ["active", "paused", "aborted"]).flatMap { State(rawValue: $0.0) } ?? .active

        var phases: [Phase] = []
        if let elements = root.array("phases") {
            if elements.isEmpty, let field = root["phases"] {
                sink.report("\"phases\" must hold at least one phase", at: field)
            }
            var seen: [String: SourcePosition] = [:]
            for element in elements {
                if let phase = decodePhase(element, sink: sink) {
                    if let first = seen[phase.name] {
                        sink.report(
                            "duplicate phase \"\(phase.name)\" (first at line \(first.line))", at: phase.position)
                    } else {
                        seen[phase.name] = phase.position
                    }
                    phases.append(phase)
                }
            }
        }

        var health = Health(checks: [], use: nil, usePosition: nil)
        if let field = root["health"],
            let reader = ObjectReader(field, sink: sink, name: "\"health\"", allowed: ["checks", "use"])
        {
            if let elements = reader.array("checks", required: false) {
                health.checks = decodeChecks(elements, sink: sink)
            }
            if let (use, position) = reader.string("use", required: false) {
                if !Names.isValid(use) {
                    sink.report("health set name \"\(use)\" does not match \(Names.patternDescription)", at: position)
                }
                health.use = use
                health.usePosition = position
            }
        }

        var rollback = Rollback()
        if let field = root["rollback"],
            let reader = ObjectReader(field, sink: sink, name: "\"rollback\"", allowed: ["automatic", "notify"])
        {
            rollback.automatic = reader.bool("automatic") ?? true
            rollback.notify = reader.strings("notify", required: false)?.map(\.0) ?? []
        }

        var panels: [DashboardPanel] = []
        if let field = root["dashboard"],
            let reader = ObjectReader(field, sink: sink, name: "\"dashboard\"", allowed: ["panels"])
        {
            panels = (reader.array("panels", required: false) ?? []).compactMap { decodePanel($0, sink: sink) }
        }

        // A plan with errors is still returned (when it has a name and a flag) so that the checks
        // against other files report their errors too; the loader never uses it to reconcile.
        guard let (nameText, namePosition) = name, let (flagText, _) = flag else {
            return nil
        }
        return Plan(
            apiVersion: root.string("apiVersion")?.0 ?? Names.apiVersion, name: nameText,
            namePosition: namePosition, flag: flagText, description: description, state: state,
            phases: phases, health: health, rollback: rollback, panels: panels)
    }

    private static func decodePanel(_ value: JSONValue, sink: DiagnosticSink) -> DashboardPanel? {
        guard
            let reader = ObjectReader(
                value, sink: sink, name: "a dashboard panel",
                allowed: ["title", "query", "unit"])
        else { return nil }
        let title = reader.string("title")
        if let (text, position) = title, text.isEmpty {
            sink.report("a dashboard panel needs a non-empty title", at: position)
        }
        let query = reader.string("query")
        if let (text, position) = query, text.isEmpty {
            sink.report("a dashboard panel needs a non-empty query", at: position)
        }
        let unit = reader.string("unit", required: false)?.0
        guard let (titleText, _) = title, let (queryText, _) = query else { return nil }
        return DashboardPanel(title: titleText, query: queryText, unit: unit)
    }

    private static func decodePhase(_ value: JSONValue, sink: DiagnosticSink) -> Phase? {
        let label: String
        if case .object(let members) = value.kind, let nameMember = members.first(where: { $0.key == "name" }),
            case .string(let text) = nameMember.value.kind
        {
            label = "phase \"\(text)\""
        } else {
            label = "a phase"
        }
        guard let reader = ObjectReader(value, sink: sink, name: label, allowed: phaseFields) else { return nil }
        let name = reader.string("name")
        if let (text, position) = name, !Names.isValid(text) {
            sink.report("phase name \"\(text)\" does not match \(Names.patternDescription)", at: position)
        }
        let environment = reader.string("environment")
        if let (text, position) = environment, text.isEmpty {
            sink.report("\"environment\" must not be empty", at: position)
        }
        let coverage = reader.number("coverage")
        if let (number, position) = coverage, !(0...100).contains(number) {
            sink.report("coverage \(formatNumber(number)) is outside 0…100", at: position)
        }
        var bake: RolloutDuration?
        if let (text, position) = reader.string("bake", required: false) {
            bake = RolloutDuration(parsing: text)
            if bake == nil {
                sink.report(
                    RolloutDuration.isOverLimit(text)
                        ? "bake \"\(Diagnostic.shortened(text))\" is longer than the limit of "
                            + RolloutDuration.maxDescription
                        : "bake \"\(text)\" is not a duration; write e.g. \"90s\", \"30m\", \"24h\" or \"2d\"",
                    at: position)
            }
        }
        let approvals = reader.strings("approvals", required: false) ?? []
        for (role, position) in approvals where !Names.isValid(role) {
            sink.report("role name \"\(role)\" does not match \(Names.patternDescription)", at: position)
        }
        guard let (nameText, _) = name, let (environmentText, _) = environment,
            let (number, coveragePosition) = coverage
        else {
            return nil
        }
        var phase = Phase(
            name: nameText, environment: environmentText, coverage: number, bake: bake,
            approvals: approvals.map(\.0), position: value.position)
        phase.approvalPositions = approvals.map(\.1)
        phase.coveragePosition = coveragePosition
        return phase
    }

    /// Decodes `checks` (of a plan or of a health set file).
    static func decodeChecks(_ elements: [JSONValue], sink: DiagnosticSink) -> [HealthCheck] {
        var checks: [HealthCheck] = []
        var seen: Set<String> = []
        for element in elements {
            guard
                let reader = ObjectReader(
                    element, sink: sink, name: "a health check",
                    allowed: ["name", "query", "min", "max", "onBreach", "onNoData"])
            else { continue }
            let name = reader.string("name")
            if let (text, position) = name {
                if text.isEmpty { sink.report("a health check needs a non-empty name", at: position) }
                if !seen.insert(text).inserted { sink.report("duplicate health check \"\(text)\"", at: position) }
            }
            let query = reader.string("query")
            let min = reader.number("min", required: false)
            let max = reader.number("max", required: false)
            if min == nil, max == nil, !reader.has("min"), !reader.has("max") {
                sink.report("health check \(name.map { "\"\($0.0)\" " } ?? "")needs \"min\" or \"max\"", at: element)
            }
            if let (lo, position) = min, let (hi, _) = max, lo > hi {
                sink.report("min \(formatNumber(lo)) is greater than max \(formatNumber(hi))", at: position)
            }
            let onBreach = reader.choice("onBreach", ["hold", "rollback", "notify"], required: true)
            let onNoData = reader.choice("onNoData", ["hold", "rollback", "ignore"])
            // A notify check never gates (SPEC §3): a no-data action that would gate contradicts it, so it is
            // refused rather than silently read one way or the other.
            if let (breach, _) = onBreach, breach == "notify", let (noData, position) = onNoData, noData != "ignore" {
                sink.report(
                    "a \"notify\" check never gates: \"onNoData\" must be \"ignore\" (its default) "
                        + "or be left out; use \"onBreach\": \"hold\" for a check that gates", at: position)
            }
            guard let (nameText, _) = name, let (queryText, _) = query, let (breach, _) = onBreach else { continue }
            let action = HealthCheck.Action(rawValue: breach) ?? .hold
            let defaultNoData: HealthCheck.NoDataAction = action == .notify ? .ignore : .hold
            checks.append(
                HealthCheck(
                    name: nameText, query: queryText, min: min?.0, max: max?.0, onBreach: action,
                    onNoData: onNoData.flatMap { HealthCheck.NoDataAction(rawValue: $0.0) }
                        ?? defaultNoData))
        }
        return checks
    }
}
