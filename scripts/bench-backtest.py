#!/usr/bin/env python3
"""EXP-001 telemetry for scripts/bench-backtest: 31 days of OpenMetrics (one sample every 5 minutes) for the
families rollouts/exp-001-autosave/plan.json's five health checks read, in staging and production, with
known incidents in production (an error spike on day 11 at 02:10, slower latency on day 5, a drop of
submissions on day 20) and a gap of no data in staging on day 8. Timestamps in seconds, ending at --now."""
import argparse
import datetime

FLAG = "portal_form_autosave"
BUCKETS = ["0.05", "0.1", "0.25", "0.5", "1", "+Inf"]
NORMAL = [0.2, 0.5, 0.9, 0.97, 0.995, 1.0]
SLOW = [0.05, 0.2, 0.6, 0.85, 0.97, 1.0]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--now", required=True, help="RFC 3339, e.g. 2026-12-01T00:00:00Z")
    parser.add_argument("--days", type=int, default=31)
    parser.add_argument("--interval", type=int, default=300)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    now = int(datetime.datetime.strptime(args.now, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp())
    start = now - args.days * 86400
    window_start = now - 30 * 86400  # day 0 of the incidents: the start of a 30-day backtest

    def at(day, hour, minute):
        return window_start + day * 86400 + hour * 3600 + minute * 60

    def within(t, begin, minutes):
        return begin <= t < begin + minutes * 60

    times = list(range(start, now, args.interval))
    # family -> list of (labels, [(t, value)])
    families = {"http_requests": [], "http_request_duration_seconds": [], "exp001_form_submitted": [],
                "exp001_form_abandoned": []}
    for environment in ["staging", "production"]:
        for variant in ["treatment", "control"]:
            base = f'flag="{FLAG}",environment="{environment}",variant="{variant}"'
            ok, failed, submitted, abandoned = [], [], [], []
            buckets = [[] for _ in BUCKETS]
            hist_sum = []
            c_ok = c_fail = c_sub = c_ab = c_sum = 0.0
            c_buckets = [0.0] * len(BUCKETS)
            for t in times:
                if environment == "staging" and within(t, at(8, 3, 0), 180):
                    continue  # no data
                requests = 500.0 if variant == "treatment" else 500.0
                error_rate = 0.004
                fractions = NORMAL
                forms = 50.0
                success = 0.97
                if environment == "production" and variant == "treatment":
                    if within(t, at(11, 2, 10), 14):
                        error_rate = 0.25
                    if within(t, at(17, 14, 0), 40):
                        error_rate = 0.06
                    if within(t, at(23, 9, 30), 6):
                        error_rate = 0.3
                    if within(t, at(5, 8, 0), 240):
                        fractions = SLOW
                    if within(t, at(20, 10, 0), 120):
                        forms = 20.0
                        success = 0.8
                c_ok += requests * (1 - error_rate)
                c_fail += requests * error_rate
                c_sub += forms * success
                c_ab += forms * (1 - success)
                c_sum += requests * 0.15
                for i, f in enumerate(fractions):
                    c_buckets[i] += requests * f
                ok.append((t, c_ok))
                failed.append((t, c_fail))
                submitted.append((t, c_sub))
                abandoned.append((t, c_ab))
                hist_sum.append((t, c_sum))
                for i in range(len(BUCKETS)):
                    buckets[i].append((t, c_buckets[i]))
            families["http_requests"].append(("_total", base + ',code="200"', ok))
            families["http_requests"].append(("_total", base + ',code="500"', failed))
            families["exp001_form_submitted"].append(("_total", base, submitted))
            families["exp001_form_abandoned"].append(("_total", base, abandoned))
            for i, le in enumerate(BUCKETS):
                families["http_request_duration_seconds"].append(("_bucket", base + f',le="{le}"', buckets[i]))
            families["http_request_duration_seconds"].append(("_count", base, buckets[-1]))
            families["http_request_duration_seconds"].append(("_sum", base, hist_sum))
    types = {"http_requests": "counter", "http_request_duration_seconds": "histogram",
             "exp001_form_submitted": "counter", "exp001_form_abandoned": "counter"}
    with open(args.out, "w") as out:
        for family, series in families.items():
            out.write(f"# TYPE {family} {types[family]}\n")
            if types[family] == "histogram":
                # OpenMetrics wants a histogram's lines grouped by timestamp per label set.
                groups = {}
                for suffix, labels, points in series:
                    key = labels.split(',le=')[0]
                    groups.setdefault(key, []).append((suffix, labels, dict(points)))
                for key, members in groups.items():
                    for t in sorted(members[0][2]):
                        for suffix, labels, points in members:
                            out.write(f"{family}{suffix}{{{labels}}} {points[t]:.6f} {t}\n")
            else:
                for suffix, labels, points in series:
                    for t, v in points:
                        out.write(f"{family}{suffix}{{{labels}}} {v:.6f} {t}\n")
        out.write("# EOF\n")


if __name__ == "__main__":
    main()
