"""Evaluates a flag with its project's own evaluator and prints which targeting keys get `true`.

    evaluate.py flagd   --file PATH --flag KEY [--flag KEY2 ...] --keys N
    evaluate.py unleash --url URL --token CLIENT_TOKEN --environment ENV --flag KEY --keys N
    evaluate.py launchdarkly --file REST_FLAG.json --environment ENV --keys N
    evaluate.py markdown --file COMMENT.md   (CommonMark + tables, as a pull-request comment renders)

flagd: the OpenFeature SDK with the flagd provider's in-process FILE resolver reads the file as
flagd would. Unleash: the official Python SDK (UnleashClient, Unleash's Yggdrasil engine) fetches
/client/features from the server. LaunchDarkly: the official server-side SDK
(launchdarkly-server-sdk) with its file data source (no network, events off) reads the flag that
the REST API v2 holds (GET /api/v2/flags/{project}/{key}, as FakeLaunchDarkly holds it), one
environment's configuration laid out as the SDK receives it. Keys are "user-0" … "user-(N-1)",
given as the OpenFeature targetingKey, as Unleash's userId and as the key of a LaunchDarkly user
context.

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


def sdk_flag(rest, environment):
    """The flag of REST API v2 for one environment, as LaunchDarkly's SDKs receive it: the flag's
    variations as values, the environment's targeting at the top level (the layout of the SDK's
    data, which the relay and the streaming service serve). Nothing is interpreted here."""
    config = rest["environments"][environment]
    rules = []
    for rule in config.get("rules") or []:
        rule = dict(rule)
        if "_id" in rule:
            rule["id"] = rule.pop("_id")
        rules.append(rule)
    flag = {
        "key": rest["key"],
        "version": rest["_version"],
        "on": config["on"],
        "variations": [variation["value"] for variation in rest["variations"]],
        "fallthrough": config.get("fallthrough"),
        "rules": rules,
        "targets": config.get("targets") or [],
        "contextTargets": config.get("contextTargets") or [],
        "prerequisites": config.get("prerequisites") or [],
        "salt": config.get("salt") or "",
        "trackEvents": False,
        "trackEventsFallthrough": False,
        "deleted": False,
    }
    if config.get("offVariation") is not None:
        flag["offVariation"] = config["offVariation"]
    return flag


def launchdarkly(args):
    import os

    from ldclient import Context
    from ldclient.client import LDClient
    from ldclient.config import Config
    from ldclient.integrations import Files

    with open(args.file) as handle:
        rest = json.load(handle)
    key = rest["key"]
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "flags.json")
        with open(path, "w") as handle:
            json.dump({"flags": {key: sdk_flag(rest, args.environment)}, "segments": {}}, handle)
        client = LDClient(
            config=Config(
                sdk_key="rolloutctl-tests",
                update_processor_class=Files.new_data_source(paths=[path]),
                send_events=False,
            )
        )
        if not client.is_initialized():
            raise SystemExit("the LaunchDarkly SDK did not initialise from its file data source")
        true, errors, reasons = [], 0, {}
        for index in range(args.keys):
            detail = client.variation_detail(key, Context.builder(f"user-{index}").build(), False)
            reason = detail.reason.get("kind", "?") if detail.reason else "?"
            reasons[reason] = reasons.get(reason, 0) + 1
            if reason == "ERROR":
                errors += 1
            if detail.value is True:
                true.append(index)
        client.close()
    return {key: {"true": true, "errors": errors, "reasons": reasons}}


def markdown(args):
    """Renders a pull-request comment as CommonMark (markdown-it-py, with GitHub's table extension) and reports
    what a reader would see: the HTML, each table's header and rows, and where the source stops parsing as
    intended (a table row whose cell count differs from its header's)."""
    from markdown_it import MarkdownIt

    with open(args.file, encoding="utf-8") as handle:
        text = handle.read()
    md = MarkdownIt("commonmark").enable("table")
    tokens = md.parse(text)
    tables, current, row = [], None, None
    for token in tokens:
        if token.type == "table_open":
            current = {"header": [], "rows": []}
        elif token.type == "table_close":
            tables.append(current)
            current = None
        elif current is not None and token.type == "tr_open":
            row = []
        elif current is not None and token.type == "tr_close":
            if not current["header"]:
                current["header"] = row
            else:
                current["rows"].append(row)
        elif current is not None and token.type == "inline" and row is not None:
            row.append(token.content)
    html = md.render(text)
    return {"html": html, "tables": tables, "characters": len(text)}


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
    d = sub.add_parser("launchdarkly")
    d.add_argument("--file", required=True)
    d.add_argument("--environment", required=True)
    d.add_argument("--keys", type=int, default=10000)
    m = sub.add_parser("markdown")
    m.add_argument("--file", required=True)
    args = parser.parse_args()
    if args.kind == "markdown":
        json.dump(markdown(args), sys.stdout)
        sys.stdout.write("\n")
        return
    result = {"flagd": flagd, "unleash": unleash, "launchdarkly": launchdarkly}[args.kind](args)
    json.dump({"flags": result}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
