#!/usr/bin/env python3
"""Generates the synthetic rollout repository for scripts/bench-approvals.

Bulk history through `git fast-import` (1,000 rollouts, ~20,000 first-parent commits: plan
creations and edits, direct, squash and merge approvals, removals, unrelated commits), then a few
hundred SSH-signed approval commits on top (`git commit-tree -S`, direct and merged).
Deterministic: the same arguments give the same repository.
"""
import argparse, hashlib, os, random, subprocess, sys

p = argparse.ArgumentParser()
p.add_argument("repo")
p.add_argument("--rollouts", type=int, default=1000)
p.add_argument("--commits", type=int, default=20000)
p.add_argument("--signed", type=int, default=300)
p.add_argument("--approval-share", type=float, default=0.5,
               help="share of the bulk first-parent commits that add an approval (direct 40%%, squash 30%%, merge 30%%)")
p.add_argument("--keys", required=True, help="folder with ssh keys sre0, qa0, po0 (made by the shell script)")
p.add_argument("--mixed", action="store_true",
               help="qa0 is an RSA key and po0 signs with a certificate (po0-cert.pub) from the CA key 'ca'")
args = p.parse_args()
rng = random.Random(20260101)
REPO = args.repo
T0 = 1767225600  # 2026-01-01

def blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()

ROLES = {"qa-lead": [f"qa{i}@example.com" for i in range(10)],
         "sre": [f"sre{i}@example.com" for i in range(10)],
         "product-owner": [f"po{i}@example.com" for i in range(10)]}
PHASE_ROLES = {"canary-10": ["qa-lead", "sre"], "production": ["product-owner"]}

def policy() -> bytes:
    roles = ",\n".join(f'    "{r}": [' + ", ".join(f'"{e}"' for e in m) + "]" for r, m in ROLES.items())
    return ('{\n  "apiVersion": "rolloutctl/v1",\n  "protectedBranch": "main",\n  "identity": "ssh-signature",\n'
            '  "forbidSelfApproval": true,\n  "policyApprovals": ["sre"],\n  "roles": {\n' + roles + "\n  }\n}\n").encode()

def allowed_signers() -> bytes:
    lines = []
    for who in ("sre0", "qa0") if args.mixed else ("sre0", "qa0", "po0"):
        pub = open(os.path.join(args.keys, who + ".pub")).read().split()
        lines.append(f"{who}@example.com {pub[0]} {pub[1]}")
    if args.mixed:
        ca = open(os.path.join(args.keys, "ca.pub")).read().split()
        lines.append(f"*@example.com cert-authority {ca[0]} {ca[1]}")
    return ("\n".join(lines) + "\n").encode()

def plan(name: str, rev: int) -> bytes:
    return f'''{{
  "apiVersion": "rolloutctl/v1",
  "name": "{name}",
  "flag": "{name.replace('-', '_')}",
  "description": "synthetic rollout, revision {rev}",
  "phases": [
    {{ "name": "staging", "environment": "staging", "coverage": 100 }},
    {{ "name": "canary-10", "environment": "production", "coverage": 10, "bake": "24h",
      "approvals": ["qa-lead", "sre"] }},
    {{ "name": "production", "environment": "production", "coverage": 100,
      "approvals": ["product-owner"] }}
  ],
  "health": {{ "checks": [ {{ "name": "error-rate", "query": "q", "max": 0.02, "onBreach": "rollback" }} ] }}
}}
'''.encode()

def approval(name, phase, role, approver, plan_blob) -> bytes:
    return (f'{{\n  "apiVersion": "rolloutctl/v1",\n  "rollout": "{name}",\n  "phase": "{phase}",\n'
            f'  "role": "{role}",\n  "approver": "{approver}",\n  "plan": "{plan_blob}"\n}}\n').encode()

# ---- state
names = [f"svc-{i:04d}" for i in range(args.rollouts)]
created = []                 # rollouts created so far
plan_rev = {}                # name -> revision
plan_blob = {}               # name -> blob id of current plan
approvals = {}               # name -> list of approval paths
counter = 0

out = open(os.path.join(REPO, "stream.fi"), "wb")
def w(b): out.write(b if isinstance(b, bytes) else b.encode())
mark = 0
clock = T0
def person(email):
    return f"{email.split('@')[0]} <{email}>"

def commit(ref, message, author, files, parent=None, merge=None, committer=None):
    global mark, clock
    mark += 1
    clock += 37
    w(f"commit {ref}\nmark :{mark}\n")
    w(f"author {person(author)} {clock} +0000\ncommitter {person(committer or author)} {clock} +0000\n")
    msg = message.encode()
    w(f"data {len(msg)}\n"); w(msg); w("\n")
    if parent: w(f"from :{parent}\n")
    if merge: w(f"merge :{merge}\n")
    for path, data in files:
        if data is None:
            w(f"D {path}\n")
        else:
            w(f"M 100644 inline {path}\ndata {len(data)}\n"); w(data); w("\n")
    w("\n")
    return mark

def new_approval(name):
    global counter
    counter += 1
    phase = rng.choice(list(PHASE_ROLES))
    role = rng.choice(PHASE_ROLES[phase])
    approver = rng.choice(ROLES[role])
    path = f"rollouts/{name}/approvals/{phase}/{role}-{approver.split('@')[0]}-{counter}.json"
    return path, approver, approval(name, phase, role, approver, plan_blob[name])

# Shares of the bulk history (for 20,000 commits and --approval-share 0.5: 2,000 edits, 4,000 direct,
# 3,000 squash and 3,000 merge approvals, 500 removals; the repository of the first benchmarks).
approvals_total = round(args.commits * args.approval_share)
direct = round(approvals_total * 0.4)
squash = round(approvals_total * 0.3)
kinds = (["create"] * args.rollouts + ["edit"] * round(args.commits * 0.1) + ["direct"] * direct
         + ["squash"] * squash + ["merge"] * (approvals_total - direct - squash)
         + ["remove"] * round(args.commits * 0.025))
kinds += ["other"] * max(0, args.commits - 1 - len(kinds))
rng.shuffle(kinds)
# Creations must all happen: move them forward so every rollout exists by 3/4 of the history.
tip = commit("refs/heads/main", "Policies", "robin@example.com",
             [("policies/approvers.json", policy()), ("policies/allowed_signers", allowed_signers()),
              ("README.md", b"synthetic\n")])
first_parent = 1
pending_creates = args.rollouts
for index, kind in enumerate(kinds):
    remaining = len(kinds) - index
    if pending_creates and (kind == "create" or not created or rng.random() < pending_creates / max(1, remaining * 0.75)):
        kind = "create"
    elif kind == "create":
        kind = "other"
    if kind == "create":
        name = names[args.rollouts - pending_creates]
        pending_creates -= 1
        created.append(name); plan_rev[name] = 1
        data = plan(name, 1); plan_blob[name] = blob_id(data); approvals[name] = []
        author = rng.choice(["robin@example.com", "alex@example.com", "kim@example.com"])
        tip = commit("refs/heads/main", f"Add {name}", author, [(f"rollouts/{name}/plan.json", data)])
    elif kind == "edit":
        name = rng.choice(created)
        plan_rev[name] += 1
        data = plan(name, plan_rev[name]); plan_blob[name] = blob_id(data)
        tip = commit("refs/heads/main", f"Edit {name}", rng.choice(["robin@example.com", "alex@example.com"]),
                     [(f"rollouts/{name}/plan.json", data)])
    elif kind in ("direct", "squash"):
        name = rng.choice(created)
        path, approver, data = new_approval(name)
        approvals[name].append(path)
        author = approver if kind == "direct" else "noreply@git.example.com"
        tip = commit("refs/heads/main", f"Approve {path}", author, [(path, data)])
    elif kind == "merge":
        name = rng.choice(created)
        path, approver, data = new_approval(name)
        approvals[name].append(path)
        side = commit("refs/heads/pr", f"Approve {path}", approver, [(path, data)], parent=tip)
        tip = commit("refs/heads/main", "Merge pull request", "noreply@git.example.com", [(path, data)],
                     parent=tip, merge=side)
    elif kind == "remove":
        candidates = [n for n in created if approvals[n]]
        if candidates:
            name = rng.choice(candidates)
            path = approvals[name].pop(rng.randrange(len(approvals[name])))
            tip = commit("refs/heads/main", f"Remove {path}", "robin@example.com", [(path, None)])
        else:
            tip = commit("refs/heads/main", "Docs", "robin@example.com", [("docs/notes.md", f"{index}\n".encode())])
    else:
        tip = commit("refs/heads/main", "Docs", rng.choice(["robin@example.com", "kim@example.com"]),
                     [(f"docs/notes-{index % 50}.md", f"note {index}\n".encode())])
    first_parent += 1
w("reset refs/heads/pr\nfrom 0000000000000000000000000000000000000000\n\n")
out.close()
assert pending_creates == 0, pending_creates

def git(*a, input=None, env=None):
    e = dict(os.environ); e.update(env or {})
    return subprocess.run(["git", "-C", REPO, *a], input=input, capture_output=True, check=True, env=e).stdout.decode().strip()

with open(os.path.join(REPO, "stream.fi"), "rb") as stream:
    subprocess.run(["git", "-C", REPO, "fast-import", "--quiet"], stdin=stream, check=True)
os.remove(os.path.join(REPO, "stream.fi"))
git("update-ref", "-d", "refs/heads/pr")

# ---- signed approvals on top: direct (signed commit on main) and merged (signed side + merge commit)
index_file = os.path.join(REPO, ".git", "bench-index")
env = {"GIT_INDEX_FILE": index_file}
git("read-tree", "main", env=env)
head = git("rev-parse", "main")
signers = {"sre": "sre0@example.com", "qa-lead": "qa0@example.com", "product-owner": "po0@example.com"}
for n in range(args.signed):
    global_clock = clock + 60 * (n + 1)
    name = rng.choice(created)
    phase = rng.choice(list(PHASE_ROLES)); role = rng.choice(PHASE_ROLES[phase]); approver = signers[role]
    counter += 1
    path = f"rollouts/{name}/approvals/{phase}/{role}-signed-{counter}.json"
    blob = git("hash-object", "-w", "--stdin", input=approval(name, phase, role, approver, plan_blob[name]))
    git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
    tree = git("write-tree", env=env)
    who = approver.split("@")[0]
    ident = {"GIT_AUTHOR_NAME": who, "GIT_AUTHOR_EMAIL": approver, "GIT_COMMITTER_NAME": who,
             "GIT_COMMITTER_EMAIL": approver, "GIT_AUTHOR_DATE": f"@{global_clock} +0000",
             "GIT_COMMITTER_DATE": f"@{global_clock} +0000"}
    key = os.path.join(args.keys, who + ("-cert.pub" if args.mixed and who == "po0" else ""))
    signed = git("-c", "gpg.format=ssh", "-c", f"user.signingkey={key}",
                 "commit-tree", "-S", tree, "-p", head, "-m", f"Approve {path}", env=ident)
    if n % 2 == 0:
        head = signed
    else:
        service = dict(ident, GIT_AUTHOR_NAME="service", GIT_AUTHOR_EMAIL="noreply@git.example.com",
                       GIT_COMMITTER_NAME="service", GIT_COMMITTER_EMAIL="noreply@git.example.com")
        head = git("commit-tree", tree, "-p", head, "-p", signed, "-m", "Merge signed approval", env=service)
git("update-ref", "refs/heads/main", head)
os.remove(index_file)
git("symbolic-ref", "HEAD", "refs/heads/main")
git("gc", "-q", "--aggressive" if os.environ.get("BENCH_AGGRESSIVE") else "--quiet")
print(f"generated {REPO}: {args.rollouts} rollouts, "
      f"{git('rev-list', '--first-parent', '--count', 'main')} first-parent commits, "
      f"{git('rev-list', '--count', 'main')} commits, {args.signed} signed approvals on top", file=sys.stderr)
