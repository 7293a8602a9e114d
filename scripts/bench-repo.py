#!/usr/bin/env python3
"""Writes a bare rollout repository with N rollouts for scripts/bench-reconcile.

One commit on `main` (made with `git fast-import`): policies/approvers.json and
rollouts/rollout-NNNN/plan.json for flag flag-NNNN (the names `rolloutctl-dev-flags
--flags N` serves). Each plan: staging 100% (no approval), canary-10 in
production (bake 24h, approval by sre), production 100% (approval by product-owner),
two health checks.
"""
import argparse
import subprocess
import sys

APPROVERS = """{
  "apiVersion": "rolloutctl/v1",
  "protectedBranch": "main",
  "identity": "author",
  "forbidSelfApproval": true,
  "policyApprovals": ["sre"],
  "roles": {
    "sre": ["dana@example.com"],
    "product-owner": ["pat@example.com"]
  }
}
"""

PLAN = """{
  "apiVersion": "rolloutctl/v1",
  "name": "%(name)s",
  "flag": "%(flag)s",
  "description": "benchmark rollout %(index)d",
  "phases": [
    { "name": "staging", "environment": "staging", "coverage": 100 },
    { "name": "canary-10", "environment": "production", "coverage": 10, "bake": "24h", "approvals": ["sre"] },
    { "name": "production", "environment": "production", "coverage": 100, "approvals": ["product-owner"] }
  ],
  "health": { "checks": [
    { "name": "error-rate", "query": "error_rate{flag=\\"{{flag}}\\"}", "max": 0.02, "onBreach": "rollback" },
    { "name": "latency-p95-delta", "query": "p95_delta{flag=\\"{{flag}}\\"}", "max": 0.2, "onBreach": "hold" }
  ] },
  "rollback": { "automatic": true, "notify": ["platform-team"] }
}
"""


def blob(out, mark, text):
    data = text.encode()
    out.write(b"blob\nmark :%d\ndata %d\n" % (mark, len(data)))
    out.write(data)
    out.write(b"\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rollouts", type=int, default=1000)
    parser.add_argument("--out", required=True, help="path of the bare repository to create")
    args = parser.parse_args()

    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", args.out], check=True)
    fi = subprocess.Popen(["git", "-C", args.out, "fast-import", "--quiet"], stdin=subprocess.PIPE)
    out = fi.stdin
    blob(out, 1, APPROVERS)
    paths = [(1, "policies/approvers.json")]
    for i in range(1, args.rollouts + 1):
        name = "rollout-%04d" % i
        blob(out, i + 1, PLAN % {"name": name, "flag": "flag-%04d" % i, "index": i})
        paths.append((i + 1, "rollouts/%s/plan.json" % name))
    message = b"Add %d rollouts\n" % args.rollouts
    who = b"Robin Release <robin@example.com> 1767225600 +0000"
    out.write(b"commit refs/heads/main\nmark :%d\n" % (args.rollouts + 2))
    out.write(b"author " + who + b"\ncommitter " + who + b"\n")
    out.write(b"data %d\n" % len(message) + message)
    for mark, path in paths:
        out.write(b"M 100644 :%d %s\n" % (mark, path.encode()))
    out.write(b"\n")
    out.close()
    if fi.wait() != 0:
        sys.exit("git fast-import failed")


if __name__ == "__main__":
    main()
