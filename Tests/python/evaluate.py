"""Evaluates a flag with its project's own evaluator and prints which targeting keys get `true`.

    evaluate.py flagd   --file PATH --flag KEY [--flag KEY2 ...] --keys N
    evaluate.py unleash --url URL --token CLIENT_TOKEN --environment ENV --flag KEY --keys N

flagd: the OpenFeature SDK with the flagd provider's in-process FILE resolver reads the file as
flagd would. Unleash: the official Python SDK (UnleashClient, Unleash's Yggdrasil engine) fetches
/client/features from the server. Keys are "user-0" … "user-(N-1)", given as the OpenFeature
targetingKey and as Unleash's userId.

Prints one JSON object: {"flags": {KEY: {"true": [indices], "errors": n, "reasons": {...}}}}.
"""

import argparse
import json
import sys
import tempfile


def flagd(args):
    from openfeature import api
    from openfeature.contrib.provider.flagd import FlagdProvider
    from openfeature.contrib.provider.flagd.config import ResolverType
    from openfeature.evaluation_context import EvaluationContext

    provider = FlagdProvider(resolver_type=ResolverType.FILE, offline_flag_source_path=args.file)
    api.set_provider_and_wait(provider)
    client = api.get_client()
    result = {}
    for flag in args.flag:
        true, errors, reasons = [], 0, {}
        for index in range(args.keys):
            details = client.get_boolean_details(flag, False, EvaluationContext(targeting_key=f"user-{index}"))
            reason = str(details.reason)
            reasons[reason] = reasons.get(reason, 0) + 1
            if details.error_code is not None:
                errors += 1
            if details.value is True:
                true.append(index)
        result[flag] = {"true": true, "errors": errors, "reasons": reasons}
    api.shutdown()
    return result


def unleash(args):
    from UnleashClient import UnleashClient

    with tempfile.TemporaryDirectory() as cache:
        client = UnleashClient(
            url=args.url,
            app_name="rolloutctl-tests",
            environment=args.environment,
            custom_headers={"Authorization": args.token},
            disable_metrics=True,
            disable_registration=True,
            cache_directory=cache,
            refresh_interval=3600,
        )
        client.initialize_client()
        if not client.is_initialized:
            raise SystemExit("the Unleash SDK did not initialise")
        result = {}
        for flag in args.flag:
            true = [i for i in range(args.keys) if client.is_enabled(flag, {"userId": f"user-{i}"})]
            result[flag] = {"true": true, "errors": 0, "reasons": {}}
        client.destroy()
    return result


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="kind", required=True)
    f = sub.add_parser("flagd")
    f.add_argument("--file", required=True)
    f.add_argument("--flag", action="append", required=True)
    f.add_argument("--keys", type=int, default=10000)
    u = sub.add_parser("unleash")
    u.add_argument("--url", required=True)
    u.add_argument("--token", required=True)
    u.add_argument("--environment", required=True)
    u.add_argument("--flag", action="append", required=True)
    u.add_argument("--keys", type=int, default=10000)
    args = parser.parse_args()
    result = flagd(args) if args.kind == "flagd" else unleash(args)
    json.dump({"flags": result}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
