"""`autoscaler tune TRACE --pool P`: the cheapest slo setting meeting the pool's SLO."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autoscaler.cli.common import UsageError, add_format, build_settings, print_json
from autoscaler.cli.simulate_cmd import (
    add_jobs_option,
    add_simulation_options,
    load_inputs,
    processes,
    world_settings,
)
from autoscaler.constants import EXIT_FAILED, EXIT_OK
from autoscaler.simulate.tuning import Outcome, policy_lines, searched_knobs, tune


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = verbs.add_parser(
        "tune",
        help="find the cheapest slo setting that meets a pool's SLO on a trace",
        description="Search the slo strategy's knobs and min/max processes of one pool for the "
        "setting with the fewest worker-seconds that meets the pool's SLO on TRACE (coordinate "
        "descent, candidates simulated in parallel on every core), and print the policy lines "
        "to paste. Exit 1 when no setting tried meets the SLO.",
    )
    parser.add_argument("trace", type=Path, help="trace file")
    parser.add_argument("--pool", required=True, help="the pool (policy file stem) to tune")
    add_simulation_options(parser)
    add_jobs_option(parser, "settings simulated in parallel")
    add_format(parser)
    parser.set_defaults(func=run)


def _describe(outcome: Outcome) -> str:
    verdict = "meets the SLO" if outcome.meets_slo else "misses the SLO"
    return (
        f"{outcome.worker_seconds / 3600:.2f} worker-h, "
        f"{outcome.miss_fraction * 100:.2f} % of jobs over the SLO wait ({verdict})"
    )


def run(args: argparse.Namespace) -> int:
    settings = build_settings(args)
    world = world_settings(args, settings)
    trace, policies = load_inputs(args, settings, trace_required=True)
    if args.pool not in policies:
        raise UsageError(f"no pool {args.pool!r} (pools: {', '.join(policies)})")
    policy = policies[args.pool]
    result = tune(
        trace,
        policies,
        args.pool,
        settings=world,
        processes=processes(args),
        progress=(lambda line: print(f"  {line}", file=sys.stderr))
        if args.format == "table"
        else None,
    )
    lines = policy_lines(result, policy)
    if args.format == "json":
        print_json(
            {
                "pool": args.pool,
                "trace": trace.name,
                "evaluated": result.evaluated,
                "knobs_searched": ["min_processes", "max_processes", *searched_knobs()],
                "current": _outcome(result.current),
                "best": _outcome(result.best),
                "policy_lines": lines,
            }
        )
    else:
        saved = 1 - result.best.worker_seconds / max(result.current.worker_seconds, 1e-9)
        print(f"# autoscaler tune: pool {args.pool} on {trace.name} ({result.evaluated} settings)")
        print(f"# now:   {_describe(result.current)}")
        print(f"# tuned: {_describe(result.best)}; {saved * 100:.0f} % fewer worker-seconds")
        print(
            f"# set these in {policies.files.get(args.pool, 'the pool policy file')} "
            "(replacing the same keys where the file has them):"
        )
        print("\n".join(lines))
    return EXIT_OK if result.best.meets_slo else EXIT_FAILED


def _outcome(outcome: Outcome) -> dict[str, object]:
    return {
        "min_processes": outcome.setting.min_processes,
        "max_processes": outcome.setting.max_processes,
        "knobs": dict(outcome.setting.knobs),
        "worker_seconds": round(outcome.worker_seconds, 1),
        "slo_miss_fraction": round(outcome.miss_fraction, 6),
        "meets_slo": outcome.meets_slo,
    }
