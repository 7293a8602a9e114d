/// The episode rule of `notify` checks (SPEC §3), as pure code: a breach notifies once per breach
/// episode and never gates.
///
/// An episode starts when a check breaches and was not breaching at the previous run; it ends when the
/// check passes. No data neither starts nor ends an episode: a watch whose data flickers would otherwise
/// notify on every return of the data. A check that is no longer a `notify` check of the plan is forgotten.
public enum NotifyWatch {
    public struct Outcome: Equatable, Sendable {
        /// The checks whose breach starts an episode in this run, in the order of the results.
        public var newEpisodes: [HealthResult]
        /// The `notify` checks breaching after this run, to store for the next run.
        public var breaching: Set<String>

        public init(newEpisodes: [HealthResult], breaching: Set<String>) {
            self.newEpisodes = newEpisodes
            self.breaching = breaching
        }
    }

    /// - Parameters:
    ///   - previous: the `notify` checks breaching at the previous run.
    ///   - checks: the plan's health checks (those not `notify` are ignored).
    ///   - results: this run's health results; empty when health was not evaluated (nothing changes then).
    public static func step(previous: Set<String>, checks: [HealthCheck], results: [HealthResult]) -> Outcome {
        let watched = Set(checks.filter { $0.onBreach == .notify }.map(\.name))
        var breaching = previous.intersection(watched)
        var episodes: [HealthResult] = []
        for result in results where watched.contains(result.check.name) {
            switch result.verdict {
            case .breach:
                if breaching.insert(result.check.name).inserted { episodes.append(result) }
            case .pass:
                breaching.remove(result.check.name)
            case .noData:
                continue
            }
        }
        return Outcome(newEpisodes: episodes, breaching: breaching)
    }
}
