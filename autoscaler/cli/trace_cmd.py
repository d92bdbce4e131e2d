"""`autoscaler trace show|generate|import`: inspect, synthesise and convert backlog traces."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from autoscaler.bundled import seed_policies_dir
from autoscaler.cli.common import UsageError, add_format, build_settings, print_json
from autoscaler.cli.simulate_cmd import load_policy_dir
from autoscaler.constants import EXIT_OK
from autoscaler.policy.loader import PolicySet
from autoscaler.policy.model import Policy
from autoscaler.table import render_table
from autoscaler.traces.convert import (
    DEFAULT_IMPORT_SEED,
    TraceImportError,
    import_azure_llm,
    import_nasa_http,
    import_swf,
)
from autoscaler.traces.convert_access_log import (
    DEFAULT_ACCESS_CLASSES,
    ClassTarget,
    import_access_log,
)
from autoscaler.traces.convert_azure_functions import TriggerTarget, import_azure_functions
from autoscaler.traces.loader import Trace, TraceError, load_trace, parse_trace
from autoscaler.traces.scenarios import DEFAULT_SEED, SCENARIOS, generate
from autoscaler.traces.writer import JobRows, RateRows, write_trace

NASA_SHARES = {
    "card_query": 0.4,
    "wechat-message": 0.3,
    "mail": 0.15,
    "default": 0.12,
    "high": 0.03,
}
SWF_GROUPS = {1: "forecast_crawler", 2: "bill_processing"}
AZURE_FUNCTION_TRIGGERS = {
    "http": TriggerTarget("card_query", 0.08),
    "timer": TriggerTarget("mail", 0.08),
    "queue": TriggerTarget("default", 0.04),
}


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = verbs.add_parser(
        "trace",
        help="show, generate or import backlog traces",
        description="Inspect a trace (show), write a synthetic scenario (generate) or convert "
        "a public workload trace into the project's format (import).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    show = actions.add_parser("show", help="summarise a trace per queue")
    show.add_argument("trace", type=Path)
    show.add_argument(
        "--policies",
        type=Path,
        metavar="DIR",
        help="policies whose queues the trace uses and whose static / max are shown "
        "(default: AUTOSCALER_POLICIES_DIR when it exists, else the seed policies shipped "
        "with autoscaler)",
    )
    add_format(show)
    show.set_defaults(func=run_show)

    gen = actions.add_parser(
        "generate",
        help="write a synthetic scenario",
        description="Scenarios: "
        + " ".join(f"{name}: {s.description}" for name, s in SCENARIOS.items()),
    )
    gen.add_argument("name", choices=sorted(SCENARIOS))
    gen.add_argument("--out", type=Path, required=True, help="trace file (.csv or .csv.gz)")
    gen.add_argument("--seed", type=int, default=DEFAULT_SEED)
    _add_policies(gen)
    gen.set_defaults(func=run_generate)

    imp = actions.add_parser("import", help="convert a public trace")
    kinds = imp.add_subparsers(dest="kind", metavar="KIND", required=True)

    nasa = kinds.add_parser(
        "nasa-http", help="NASA HTTP per-second counts (.tbz2 or text) -> rate trace"
    )
    nasa.add_argument("raw", type=Path)
    nasa.add_argument("--day", type=int, default=12, help="first day (0-based; default 12)")
    nasa.add_argument("--days", type=int, default=1)
    nasa.add_argument(
        "--share",
        action="append",
        metavar="QUEUE=FRACTION",
        help="share of requests for a queue, repeatable (default: "
        + ", ".join(f"{q}={v:g}" for q, v in NASA_SHARES.items())
        + ")",
    )
    nasa.add_argument("--seed", type=int, default=DEFAULT_IMPORT_SEED)
    _add_out_and_policies(nasa)
    nasa.set_defaults(func=run_import)

    azure = kinds.add_parser(
        "azure-llm", help="Azure LLM inference CSVs -> job trace (tokens make run times)"
    )
    azure.add_argument(
        "sources",
        nargs="+",
        metavar="RAW=QUEUE[:SHARE]",
        help="a CSV file, the queue its requests go to, and the share kept (default 1)",
    )
    azure.add_argument("--seed", type=int, default=DEFAULT_IMPORT_SEED)
    _add_out_and_policies(azure)
    azure.set_defaults(func=run_import)

    swf = kinds.add_parser("swf", help="Standard Workload Format (.swf[.gz]) -> job trace")
    swf.add_argument("raw", type=Path)
    swf.add_argument(
        "--group",
        action="append",
        metavar="N=QUEUE",
        help="SWF group number -> queue, repeatable (default: 1=forecast_crawler, "
        "2=bill_processing)",
    )
    swf.add_argument("--from-day", type=float, default=17.0)
    swf.add_argument("--days", type=float, default=20.0)
    swf.add_argument("--compress", type=float, default=20.0, help="time divided by this")
    _add_out_and_policies(swf)
    swf.set_defaults(func=run_import)

    _register_azure_functions(kinds)
    _register_access_log(kinds)


def _register_azure_functions(kinds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    functions = kinds.add_parser(
        "azure-functions",
        help="Azure Functions 2019 per-minute invocations + durations CSVs -> job trace",
    )
    functions.add_argument("invocations", type=Path, help="invocations_per_function CSV")
    functions.add_argument("durations", type=Path, help="function_durations_percentiles CSV")
    functions.add_argument(
        "--trigger",
        action="append",
        metavar="TRIGGER=QUEUE[:SHARE]",
        help="a trigger kind's queue and the share of its invocations kept, repeatable; other "
        "triggers are dropped (default: "
        + ", ".join(f"{k}={t.queue}:{t.share:g}" for k, t in AZURE_FUNCTION_TRIGGERS.items())
        + ")",
    )
    functions.add_argument(
        "--source", default="", help="where the files came from (for the header)"
    )
    functions.add_argument("--seed", type=int, default=DEFAULT_IMPORT_SEED)
    _add_out_and_policies(functions)
    functions.set_defaults(func=run_import)


def _register_access_log(kinds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    access = kinds.add_parser(
        "access-log",
        help="web access log (Common Log Format, or the World Cup 98 CSV) -> job trace",
    )
    access.add_argument("raw", type=Path, help="log file: plain, .gz, .bz2 or a .tar.bz2 of one")
    access.add_argument(
        "--class",
        dest="classes",
        action="append",
        metavar="CLASS=QUEUE[:SHARE]",
        help="a request class (page, image, other) to a queue, with the share kept, "
        "repeatable; classes not given are dropped (default: "
        + ", ".join(f"{k}={t.queue}:{t.share:g}" for k, t in DEFAULT_ACCESS_CLASSES.items())
        + ")",
    )
    access.add_argument(
        "--compress", type=float, default=1.0, help="time divided by this (default 1)"
    )
    access.add_argument(
        "--source", default="", help="where the log came from and its licence (for the header)"
    )
    access.add_argument("--seed", type=int, default=DEFAULT_IMPORT_SEED)
    _add_out_and_policies(access)
    access.set_defaults(func=run_import)


def _add_policies(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policies",
        type=Path,
        metavar="DIR",
        help="policies whose queues the trace uses (default: the seed policies shipped with "
        "autoscaler)",
    )


def _add_out_and_policies(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="trace file (.csv or .csv.gz)")
    _add_policies(parser)


def _policies(args: argparse.Namespace) -> PolicySet:
    return load_policy_dir(args.policies or seed_policies_dir())


def _policies_dir(args: argparse.Namespace) -> Path:
    """--policies, else AUTOSCALER_POLICIES_DIR when it exists (the operator's own bounds, as
    `simulate` does), else the seed policies shipped with autoscaler (said on stderr)."""
    if args.policies is not None:
        return Path(args.policies)
    configured = build_settings(args).policies_dir
    if configured.is_dir():
        return configured
    print(
        f"autoscaler: no {configured}/ here: using the seed policies shipped with autoscaler "
        "(pass --policies DIR for yours)",
        file=sys.stderr,
    )
    return seed_policies_dir()


def _pairs(values: list[str] | None, flag: str) -> list[tuple[str, str]]:
    pairs = []
    for value in values or []:
        key, sep, rest = value.partition("=")
        if not sep or not key or not rest:
            raise UsageError(f"{flag} {value!r}: expected KEY=VALUE")
        pairs.append((key, rest))
    return pairs


def _float(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not a number") from None


def _write(rows: JobRows | RateRows, out: Path, policies: PolicySet) -> None:
    text = rows.text()
    try:  # never write a trace that simulate would reject
        trace = parse_trace(text, policies, name=str(out))
    except TraceError as exc:
        raise UsageError(f"the converted trace would be invalid: {exc}") from exc
    if not out.parent.is_dir():
        raise UsageError(f"{out.parent}: not a directory")
    write_trace(out, text)
    print(f"{out}: {trace.jobs} jobs over {trace.duration_s / 3600:.2f} h", file=sys.stderr)


def run_generate(args: argparse.Namespace) -> int:
    policies = _policies(args)
    _write(generate(args.name, seed=args.seed), args.out, policies)
    return EXIT_OK


def run_import(args: argparse.Namespace) -> int:
    policies = _policies(args)
    rows: JobRows | RateRows
    try:
        if args.kind == "nasa-http":
            shares = (
                {q: _float(v, f"--share {q}") for q, v in _pairs(args.share, "--share")}
                if args.share
                else NASA_SHARES
            )
            rows = import_nasa_http(
                args.raw,
                shares=shares,
                policies=policies,
                first_day=args.day,
                days=args.days,
                seed=args.seed,
            )
        elif args.kind == "azure-llm":
            rows = import_azure_llm(_azure_sources(args.sources), policies=policies, seed=args.seed)
        elif args.kind == "azure-functions":
            triggers = (
                {
                    k: TriggerTarget(*_queue_share(v, k))
                    for k, v in _pairs(args.trigger, "--trigger")
                }
                if args.trigger
                else AZURE_FUNCTION_TRIGGERS
            )
            rows = import_azure_functions(
                args.invocations,
                args.durations,
                triggers=triggers,
                policies=policies,
                seed=args.seed,
                source=args.source,
            )
        elif args.kind == "access-log":
            classes = (
                {k: ClassTarget(*_queue_share(v, k)) for k, v in _pairs(args.classes, "--class")}
                if args.classes
                else DEFAULT_ACCESS_CLASSES
            )
            rows = import_access_log(
                args.raw,
                classes=classes,
                policies=policies,
                seed=args.seed,
                compress=args.compress,
                source=args.source,
            )
        else:
            groups = (
                {int(_float(n, "--group")): q for n, q in _pairs(args.group, "--group")}
                if args.group
                else SWF_GROUPS
            )
            rows = import_swf(
                args.raw,
                groups=groups,
                policies=policies,
                first_day=args.from_day,
                days=args.days,
                compress=args.compress,
            )
    except TraceImportError as exc:
        raise UsageError(str(exc)) from exc
    _write(rows, args.out, policies)
    return EXIT_OK


def _queue_share(value: str, key: str) -> tuple[str, float]:
    """`QUEUE[:SHARE]` (share 1 when absent)."""
    queue, _, share = value.partition(":")
    return queue, _float(share, f"{key} share") if share else 1.0


def _azure_sources(values: list[str]) -> list[tuple[Path, str, float]]:
    sources = []
    for raw, target in _pairs(values, "azure-llm"):
        queue, _, share = target.partition(":")
        sources.append((Path(raw), queue, _float(share, f"{raw} share") if share else 1.0))
    return sources


def run_show(args: argparse.Namespace) -> int:
    directory = _policies_dir(args)
    policies = load_policy_dir(directory)
    try:
        trace = load_trace(args.trace, policies)
    except TraceError as exc:
        raise UsageError(str(exc)) from exc
    rows = summary_rows(trace, policies)
    if args.format == "json":
        print_json(
            {
                "trace": trace.name,
                "kind": trace.kind,
                "duration_s": trace.duration_s,
                "bucket_s": trace.bucket_s,
                "policies": str(directory),
                "queues": rows,
            }
        )
        return EXIT_OK
    bucket = f", {trace.bucket_s:g} s buckets" if trace.bucket_s else ""
    print(
        f"{trace.name}: {trace.kind} trace, {trace.duration_s / 3600:.2f} h{bucket}, "
        f"{trace.jobs} jobs; static / max from {directory}"
    )
    print(
        render_table(
            (
                "queue",
                "pool",
                "jobs",
                "mean run s",
                "busy workers (mean)",
                "busy workers (peak minute)",
                "static / max",
            ),
            [
                (
                    r["queue"],
                    r["pool"],
                    r["jobs"],
                    r["mean_run_time_s"],
                    r["mean_busy_workers"],
                    r["peak_minute_busy_workers"],
                    f"{r['static_processes']} / {r['max_processes']}",
                )
                for r in rows
            ],
        )
    )
    return EXIT_OK


def summary_rows(trace: Trace, policies: Mapping[str, Policy]) -> list[dict[str, Any]]:
    """Per queue: jobs, mean run time, the work in busy workers on average and in the
    busiest minute (the count a pool would need to just keep up)."""
    owner = {q: pool for pool, p in policies.items() for q in p.queues}
    rows = []
    duration = max(trace.duration_s, 1.0)
    for queue, jobs in trace.queues.items():
        work = float(jobs.service_s.sum())
        minutes = np.bincount((jobs.arrival_s // 60).astype(np.int64), weights=jobs.service_s)
        policy = policies[owner[queue]]
        rows.append(
            {
                "queue": queue,
                "pool": owner[queue],
                "jobs": len(jobs),
                "mean_run_time_s": round(work / len(jobs), 2) if len(jobs) else None,
                "mean_busy_workers": round(work / duration, 2),
                "peak_minute_busy_workers": round(float(minutes.max()) / 60, 2)
                if minutes.size
                else 0.0,
                "static_processes": policy.static_processes,
                "max_processes": policy.max_processes,
            }
        )
    return rows
