import RolloutCore
import RolloutKit

/// The overview's table order and filter (SPEC §9, issue 24): `/?sort=name|status|phase|flag&status=STATUS`,
/// read on the server so that sorting and filtering need no script. Anything else in the query is ignored
/// (the default order, every status): only known words reach a page or a cache key.
struct OverviewOrder: Sendable {
    enum Key: String, CaseIterable, Sendable {
        case name, status, phase, flag
    }

    var sort: Key
    var status: RolloutStatus?

    init(sort: String? = nil, status: String? = nil) {
        self.sort = sort.flatMap(Key.init(rawValue:)) ?? .name
        self.status = status.flatMap(RolloutStatus.init(rawValue:))
    }

    /// The rendered-page cache key: one per order and filter.
    var key: String { "/?sort=\(sort.rawValue)&status=\(status?.rawValue ?? "")" }

    /// Statuses that need someone first when sorted by status.
    static let severity: [RolloutStatus] = [
        .rolledBack, .invalid, .overridden, .holding, .blocked, .orphaned, .paused, .progressing, .aborted, .completed,
    ]

    func href(sort: Key? = nil, status: RolloutStatus?? = nil) -> String {
        let chosen = status ?? self.status
        return "/?sort=\((sort ?? self.sort).rawValue)" + (chosen.map { "&status=\($0.rawValue)" } ?? "")
    }

    func apply(_ rollouts: [RolloutReport]) -> [RolloutReport] {
        let kept = rollouts.filter { status == nil || $0.status == status }
        func rank(_ status: RolloutStatus) -> Int { Self.severity.firstIndex(of: status) ?? Self.severity.count }
        return kept.sorted { a, b in
            switch sort {
            case .name: return a.name < b.name
            case .status:
                return (rank(a.status), a.name) < (rank(b.status), b.name)
            case .phase:
                return (a.currentPhase ?? "", a.name) < (b.currentPhase ?? "", b.name)
            case .flag:
                return (a.flag ?? "", a.name) < (b.flag ?? "", b.name)
            }
        }
    }

    func context(_ rollouts: [RolloutReport]) -> [String: Any] {
        var counts: [RolloutStatus: Int] = [:]
        for rollout in rollouts { counts[rollout.status, default: 0] += 1 }
        let filters = Self.severity.filter { counts[$0] != nil }.map { status -> [String: Any] in
            [
                "status": status.rawValue, "count": counts[status] ?? 0, "href": href(status: .some(status)),
                "selected": self.status == status,
            ]
        }
        let labels: [Key: String] = [.name: "rollout", .status: "status", .phase: "phase", .flag: "flag"]
        var context: [String: Any] = [
            "statusFilters": filters, "allHref": href(status: .some(nil)), "allSelected": status == nil,
            "sort": sort.rawValue,
            "shown": rollouts.filter { status == nil || $0.status == status }.count,
            "columns": Key.allCases.map { key -> [String: Any] in
                [
                    "key": key.rawValue, "label": labels[key] ?? key.rawValue, "href": href(sort: key),
                    "active": key == sort,
                ]
            },
        ]
        if let status { context["statusFilter"] = status.rawValue }
        return context
    }
}
