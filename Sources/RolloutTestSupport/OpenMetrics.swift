import Foundation
import RolloutCore

// The synthetic telemetry as OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`,
// with the histogram math that makes `histogram_quantile(0.95, …)` return the segment's p95 exactly.
extension PrometheusFixture {
    /// Finite histogram bucket bounds (Prometheus client defaults), then `+Inf`.
    public static let latencyBuckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    /// OpenMetrics text with timestamps (seconds) for the segments, ending with `# EOF`.
    public static func openMetrics(_ segments: [TelemetrySegment]) -> String {
        var families = FamilyWriter()
        for segment in segments.sorted(by: { $0.start < $1.start }) {
            families.add(segment)
        }
        return families.render()
    }

    /// Cumulative fraction of requests at or below each finite bound such that linear
    /// interpolation (what `histogram_quantile` does) puts the 0.95 quantile exactly at `p95`.
    static func cumulativeFractions(p95: Double, bounds: [Double]) -> [Double] {
        guard let hiIndex = bounds.firstIndex(where: { $0 > p95 }) else {
            // p95 beyond the last finite bound: everything up to it holds 90%, the rest is in +Inf.
            return bounds.map { 0.9 * $0 / bounds.last! }
        }
        let hi = bounds[hiIndex]
        let lo = hiIndex == 0 ? 0 : bounds[hiIndex - 1]
        // In (lo, hi] the distribution is uniform with slope s, passing 0.95 at p95.
        let s = min(0.04 / (hi - p95), 0.90 / max(p95 - lo, 1e-12), 0.90 / (hi - lo))
        let atLo = 0.95 - s * (p95 - lo)
        let atHi = 0.95 + s * (hi - p95)
        var result: [Double] = []
        for (i, b) in bounds.enumerated() {
            if i < hiIndex - 1 {
                result.append(atLo * b / lo)  // uniform below lo
            } else if i == hiIndex - 1 {
                result.append(atLo)
            } else if i == hiIndex {
                result.append(atHi)
            } else {
                result.append(1 - (1 - atHi) * hi / b)  // a tail above hi; the rest is in +Inf
            }
        }
        return result
    }

    private struct FamilyWriter {
        // family name → (TYPE, ordered metric keys, samples per metric key)
        struct Family {
            var type: String
            var order: [String] = []
            var points: [String: [(t: Double, lines: [(suffix: String, extra: String, value: Double)])]] = [:]
        }
        var familyOrder: [String] = []
        var families: [String: Family] = [:]
        var counters: [String: Double] = [:]  // carried counter values per series

        mutating func point(
            _ family: String, type: String, labels: String, t: Double,
            _ lines: [(suffix: String, extra: String, value: Double)]
        ) {
            if families[family] == nil {
                families[family] = Family(type: type)
                familyOrder.append(family)
            }
            if families[family]!.points[labels] == nil {
                families[family]!.order.append(labels)
                families[family]!.points[labels] = []
            }
            families[family]!.points[labels]!.append((t, lines))
        }

        mutating func add(_ s: TelemetrySegment) {
            let n = max(1, Int((s.duration / s.step).rounded(.down)))
            let t0 = s.start.timeIntervalSince1970
            for environment in s.environments {
                for instance in s.instances {
                    for variant in ["treatment", "control"] {
                        let treatment = variant == "treatment"
                        let base =
                            "flag=\"\(esc(s.flag))\",environment=\"\(esc(environment))\",variant=\"\(variant)\",job=\"\(esc(s.job))\",instance=\"\(esc(instance))\""
                        let requests = treatment ? s.treatmentRequestsPerStep : s.controlRequestsPerStep
                        let errors = requests * (treatment ? s.errorRate : s.controlErrorRate)
                        let forms = treatment ? s.treatmentFormsPerStep : s.controlFormsPerStep
                        let submitted = forms * (treatment ? s.submissionSuccess : s.controlSubmissionSuccess)
                        let p95 = treatment ? s.controlP95 * (1 + s.latencyShift) : s.controlP95
                        let fractions = PrometheusFixture.cumulativeFractions(
                            p95: p95, bounds: PrometheusFixture.latencyBuckets)
                        let mean = PrometheusFixture.mean(
                            fractions: fractions, bounds: PrometheusFixture.latencyBuckets)

                        let ok = base + ",code=\"200\""
                        let failed = base + ",code=\"500\""
                        let kOK = "req|" + ok
                        let kFail = "req|" + failed
                        let kSub = "sub|" + base
                        let kAb = "ab|" + base
                        let kHist = "hist|" + base
                        let kDraft = "draft|" + base
                        let drafts = treatment ? forms * s.draftRecoveryRate : 0
                        let d0 = counters[kDraft] ?? 0
                        let c0 = (
                            counters[kOK] ?? 0, counters[kFail] ?? 0, counters[kSub] ?? 0,
                            counters[kAb] ?? 0, counters[kHist] ?? 0
                        )
                        for i in 0..<n {
                            let t = t0 + Double(i) * s.step
                            let k = Double(i)
                            point(
                                "http_requests", type: "counter", labels: ok, t: t,
                                [("_total", "", c0.0 + k * (requests - errors))])
                            point(
                                "http_requests", type: "counter", labels: failed, t: t,
                                [("_total", "", c0.1 + k * errors)])
                            point(
                                "exp001_form_submitted", type: "counter", labels: base, t: t,
                                [("_total", "", c0.2 + k * submitted)])
                            point(
                                "exp001_form_abandoned", type: "counter", labels: base, t: t,
                                [("_total", "", c0.3 + k * (forms - submitted))])
                            point(
                                "exp001_draft_recovered", type: "counter", labels: base, t: t,
                                [("_total", "", d0 + k * drafts)])
                            let count = c0.4 + k * requests
                            var lines: [(suffix: String, extra: String, value: Double)] = []
                            // Buckets are cumulative over all time: earlier segments' counts
                            // are carried per bucket.
                            for (j, b) in PrometheusFixture.latencyBuckets.enumerated() {
                                let key = "bucket|\(b)|" + base
                                lines.append(
                                    ("_bucket", ",le=\"\(fmt(b))\"", (counters[key] ?? 0) + k * requests * fractions[j])
                                )
                            }
                            lines.append(("_bucket", ",le=\"+Inf\"", count))
                            lines.append(("_count", "", count))
                            lines.append(("_sum", "", (counters["sum|" + base] ?? 0) + k * requests * mean))
                            point("http_request_duration_seconds", type: "histogram", labels: base, t: t, lines)
                        }
                        let m = Double(n)
                        counters[kOK] = c0.0 + m * (requests - errors)
                        counters[kFail] = c0.1 + m * errors
                        counters[kSub] = c0.2 + m * submitted
                        counters[kAb] = c0.3 + m * (forms - submitted)
                        counters[kHist] = c0.4 + m * requests
                        counters[kDraft] = d0 + m * drafts
                        for (j, b) in PrometheusFixture.latencyBuckets.enumerated() {
                            let key = "bucket|\(b)|" + base
                            counters[key] = (counters[key] ?? 0) + m * requests * fractions[j]
                        }
                        counters["sum|" + base] = (counters["sum|" + base] ?? 0) + m * requests * mean
                    }
                }
            }
        }

        func render() -> String {
            var out = ""
            out.reserveCapacity(1 << 20)
            for name in familyOrder {
                let family = families[name]!
                out += "# TYPE \(name) \(family.type)\n"
                for labels in family.order {
                    // Points of one metric in time order; a later segment may have been
                    // added for an earlier time only if segments were not sorted.
                    let points = family.points[labels]!.sorted { $0.t < $1.t }
                    for p in points {
                        let ts = fmt(p.t)
                        for line in p.lines {
                            out += "\(name)\(line.suffix){\(labels)\(line.extra)} \(fmt(line.value)) \(ts)\n"
                        }
                    }
                }
            }
            out += "# EOF\n"
            return out
        }
    }

    static func mean(fractions: [Double], bounds: [Double]) -> Double {
        var total = 0.0
        var previousBound = 0.0
        var previousFraction = 0.0
        for (b, f) in zip(bounds, fractions) {
            total += (f - previousFraction) * (previousBound + b) / 2
            previousBound = b
            previousFraction = f
        }
        total += (1 - previousFraction) * previousBound * 1.5
        return total
    }
}

private func esc(_ s: String) -> String {
    s.replacingOccurrences(of: "\\", with: "\\\\")
        .replacingOccurrences(of: "\"", with: "\\\"")
        .replacingOccurrences(of: "\n", with: "\\n")
}
