import Foundation

// A real Prometheus (Debian's `prometheus` package) for tests, on 127.0.0.1, loaded with
// synthetic EXP-001 telemetry that is backfilled with
// `promtool tsdb create-blocks-from openmetrics` into a private data directory.
//
// Telemetry schema (see docs/prometheus.md):
//   http_requests_total{flag,environment,variant,code,job,instance}                 counter
//   http_request_duration_seconds_bucket{flag,environment,variant,le,job,instance}  histogram
//   exp001_form_submitted_total{flag,environment,variant,job,instance}              counter
//   exp001_form_abandoned_total{flag,environment,variant,job,instance}              counter
//   exp001_draft_recovered_total{flag,environment,variant,job,instance}             counter
//     (forms finished from a recovered draft; the control has no autosave, so none)
// variant is "treatment" (flag on for that request) or "control" (flag off).

/// One stretch of synthetic telemetry: constant behaviour from `start` for `duration`,
/// one sample every `step` seconds, for every environment and instance listed.
///
/// Counters are deterministic (no randomness): per step the treatment sees
/// `treatmentRequestsPerStep` requests of which `errorRate` fail with code 500, and
/// `treatmentFormsPerStep` forms of which `submissionSuccess` are submitted. The latency
/// histograms are built so that `histogram_quantile(0.95, …)` over them returns exactly
/// `controlP95` for the control and `controlP95 * (1 + latencyShift)` for the treatment.
///
/// Segments that write the same series must not overlap in time; a later segment continues
/// the counters of an earlier one (no reset).
public struct TelemetrySegment: Sendable, Equatable {
    public var start: Date
    public var duration: TimeInterval
    public var step: TimeInterval
    public var flag: String
    public var environments: [String]
    /// One copy of every series per instance label. Two instances give the
    /// "query matching two series" case for queries that do not aggregate.
    public var instances: [String]
    public var job: String

    public var treatmentRequestsPerStep: Double
    public var controlRequestsPerStep: Double
    /// Fraction of treatment requests answered with code 500.
    public var errorRate: Double
    public var controlErrorRate: Double
    /// The control (baseline) p95 latency, in seconds.
    public var controlP95: Double
    /// Treatment p95 relative to the control: 0.05 means +5%.
    public var latencyShift: Double
    public var treatmentFormsPerStep: Double
    public var controlFormsPerStep: Double
    /// submitted / (submitted + abandoned) for the treatment.
    public var submissionSuccess: Double
    public var controlSubmissionSuccess: Double
    /// Fraction of the treatment's forms finished from a recovered draft (the control has none).
    public var draftRecoveryRate: Double = 0.06

    public init(
        start: Date,
        duration: TimeInterval,
        step: TimeInterval = 60,
        flag: String = "portal_form_autosave",
        environments: [String] = ["staging", "production"],
        instances: [String] = ["portal-1"],
        job: String = "portal",
        treatmentRequestsPerStep: Double = 1000,
        controlRequestsPerStep: Double = 1000,
        errorRate: Double = 0.005,
        controlErrorRate: Double = 0.005,
        controlP95: Double = 0.32,
        latencyShift: Double = 0.05,
        treatmentFormsPerStep: Double = 100,
        controlFormsPerStep: Double = 100,
        submissionSuccess: Double = 0.98,
        controlSubmissionSuccess: Double = 0.97
    ) {
        self.start = start
        self.duration = duration
        self.step = step
        self.flag = flag
        self.environments = environments
        self.instances = instances
        self.job = job
        self.treatmentRequestsPerStep = treatmentRequestsPerStep
        self.controlRequestsPerStep = controlRequestsPerStep
        self.errorRate = errorRate
        self.controlErrorRate = controlErrorRate
        self.controlP95 = controlP95
        self.latencyShift = latencyShift
        self.treatmentFormsPerStep = treatmentFormsPerStep
        self.controlFormsPerStep = controlFormsPerStep
        self.submissionSuccess = submissionSuccess
        self.controlSubmissionSuccess = controlSubmissionSuccess
    }

    /// Healthy: error rate 0.5%, p95 +5%, submission success 98%.
    public static func healthy(start: Date, hours: Double, step: TimeInterval = 60) -> TelemetrySegment {
        TelemetrySegment(start: start, duration: hours * 3600, step: step)
    }

    /// Error rate 3% (breaches `error-rate` max 0.02 → rollback); the rest healthy.
    public static func failingErrors(
        start: Date, hours: Double, errorRate: Double = 0.03,
        step: TimeInterval = 60
    ) -> TelemetrySegment {
        var s = TelemetrySegment(start: start, duration: hours * 3600, step: step)
        s.errorRate = errorRate
        return s
    }

    /// Treatment p95 +25% (breaches `latency-p95-delta` max 0.20 → hold); the rest healthy.
    public static func slowLatency(
        start: Date, hours: Double, latencyShift: Double = 0.25,
        step: TimeInterval = 60
    ) -> TelemetrySegment {
        var s = TelemetrySegment(start: start, duration: hours * 3600, step: step)
        s.latencyShift = latencyShift
        return s
    }

    /// Healthy values, but every series written twice (instances portal-1 and portal-2):
    /// a query that does not aggregate (`PrometheusFixture.Queries.unaggregatedSubmitted`)
    /// returns 2 series. The three check queries aggregate and still return one.
    public static func duplicated(start: Date, hours: Double, step: TimeInterval = 60) -> TelemetrySegment {
        var s = TelemetrySegment(start: start, duration: hours * 3600, step: step)
        s.instances = ["portal-1", "portal-2"]
        return s
    }
}
