#!/usr/bin/env python3
"""The baseline of scripts/bench-reconcile (issue 22): a plain sequential client making the calls a first
reconcile run makes to the flag API — for each of N flags a GET, then a PATCH with If-Match of the version
read — over one keep-alive connection, and nothing else (no repository, state or decision).

    bench-flag-client.py URL N [--prefix flag] [--environment staging] [--patch]

Prints the elapsed milliseconds. Without --patch only the GETs (what a no-change run sends).
"""
import argparse
import http.client
import json
import os
import sys
import time
import urllib.parse


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("n", type=int)
    parser.add_argument("--prefix", default="flag")
    parser.add_argument("--environment", default="staging")
    parser.add_argument("--patch", action="store_true")
    args = parser.parse_args()
    url = urllib.parse.urlparse(args.url)
    token = os.environ.get("ADMIN_TOKEN", "")
    connection = http.client.HTTPConnection(url.hostname, url.port)
    start = time.monotonic()
    for index in range(1, args.n + 1):
        path = f"/api/v1/feature-flags/{args.prefix}-{index:04d}"
        connection.request("GET", path, headers={"Accept": "application/json"})
        answer = connection.getresponse()
        body = answer.read()
        if answer.status != 200:
            print(f"GET {path}: HTTP {answer.status}", file=sys.stderr)
            return 1
        if not args.patch:
            continue
        version = json.loads(body).get("version")
        patch = json.dumps({"environment": args.environment, "enabled": True, "coverage": 100})
        connection.request(
            "PATCH", path, body=patch,
            headers={"Content-Type": "application/json", "Accept": "application/json",
                     "If-Match": f'"{version}"', "Authorization": f"Bearer {token}"})
        answer = connection.getresponse()
        answer.read()
        if answer.status != 200:
            print(f"PATCH {path}: HTTP {answer.status}", file=sys.stderr)
            return 1
    print(int((time.monotonic() - start) * 1000))
    return 0


if __name__ == "__main__":
    sys.exit(main())
