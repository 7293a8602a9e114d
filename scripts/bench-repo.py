#!/usr/bin/env python3
"""Writes the benchmarks' rollout repositories, deterministically, with `git fast-import`.

Without --commits (scripts/bench-reconcile, bench-serve, bench-state, bench-audit): a bare repository
with one commit on `main` (made with `git fast-import`): policies/approvers.json and
rollouts/rollout-NNNN/plan.json for flag flag-NNNN (the names `rolloutctl-dev-flags
--flags N` serves). Each plan: staging 100% (no approval), canary-10 in
production (bake 24h, approval by sre), production 100% (approval by product-owner),
two health checks.

With --commits C (scripts/bench-approvals): a repository with a history of about C first-parent
commits over N rollouts (scripts/bench-approvals.py: plan creations and edits; approvals, a share
--approval-share of the commits, direct, squashed and merged; removals; unrelated commits), policy
and allowed_signers in signature mode, then --signed SSH-signed approvals on top. The bulk history is
deterministic; the signed commits on top are made with keys generated per repository (ssh-keygen has
no seed). With --signed 0 nothing is signed: allowed_signers then lists fixed public keys (their
private halves were thrown away) and the whole repository, commit ids included, is the same everywhere.

    bench-repo.py --rollouts 1000 --commits 20000 --out DIR                          # issue 22's first
    bench-repo.py --rollouts 10000 --commits 100000 --approval-share 0.6 --out DIR   # and second
"""
import argparse
import os
import shutil
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


# Public keys only (for --signed 0): nothing is signed, so the private keys are not needed.
FIXED_KEYS = {
    "sre0": "AAAAC3NzaC1lZDI1NTE5AAAAIF54H1Senp8PNDa+S4dG/Ec+VYDvnZuk8v2lOlPvKk34",
    "qa0": "AAAAC3NzaC1lZDI1NTE5AAAAICcC84Mn3GCXvsPOxGcKp3JYCblOmp2uQCBS4otvmFIt",
    "po0": "AAAAC3NzaC1lZDI1NTE5AAAAICL1ySi2vwKm3MsmzKGk9ao4XARHIwj9ku/XjHqjEa+K",
}


def history(args):
    """The repository with a history (a work-tree repository; its keys in .git/bench-keys)."""
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    subprocess.run(["git", "init", "-q", "-b", "main", args.out], check=True)
    keys = os.path.join(args.out, ".git", "bench-keys")
    os.makedirs(keys)

    def keygen(kind, who, *extra):
        subprocess.run(["ssh-keygen", "-q", "-t", kind, *extra, "-N", "", "-C", who, "-f", os.path.join(keys, who)],
                       check=True)

    if args.signed == 0 and not args.mixed:
        for who, key in FIXED_KEYS.items():
            with open(os.path.join(keys, who + ".pub"), "w") as out:
                out.write("ssh-ed25519 %s %s\n" % (key, who))
    elif args.mixed:
        keygen("ed25519", "sre0")
        keygen("rsa", "qa0", "-b", "3072")
        keygen("ed25519", "po0")
        keygen("rsa", "ca", "-b", "3072")
        subprocess.run(["ssh-keygen", "-q", "-s", os.path.join(keys, "ca"), "-I", "po0", "-n", "po0@example.com",
                        "-V", "20251201Z:20270101Z", os.path.join(keys, "po0.pub")], check=True)
    else:
        for who in ("sre0", "qa0", "po0"):
            keygen("ed25519", who)
    generator = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench-approvals.py")
    command = [sys.executable, generator, args.out, "--keys", keys, "--rollouts", str(args.rollouts),
               "--commits", str(args.commits), "--approval-share", str(args.approval_share),
               "--signed", str(args.signed)]
    subprocess.run(command + (["--mixed"] if args.mixed else []), check=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rollouts", type=int, default=1000)
    parser.add_argument("--out", required=True, help="path of the repository to create")
    parser.add_argument("--commits", type=int, help="a history of about this many first-parent commits")
    parser.add_argument("--approval-share", type=float, default=0.5)
    parser.add_argument("--signed", type=int, default=300)
    parser.add_argument("--mixed", action="store_true", help="signed approvals by Ed25519, RSA and certificates")
    args = parser.parse_args()
    if args.commits is not None:
        history(args)
        return

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
