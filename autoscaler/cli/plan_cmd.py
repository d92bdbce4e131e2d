"""`autoscaler plan [POOL=N ...] [--static]`: what the next apply would change, touching nothing."""

from __future__ import annotations

import argparse
import sys

from autoscaler.cli.actuation import (
    add_policies_option,
    build_actuator,
    busy_slots,
    changes_table,
    clamp,
    counts_table,
    parse_counts,
)
from autoscaler.cli.common import UsageError, add_format, print_json, unreachable_hint
from autoscaler.constants import EXIT_FAILED, EXIT_OK
from autoscaler.supervisord.include_file import SupervisorFileError
from autoscaler.supervisord.rpc import SupervisorUnavailable


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = verbs.add_parser(
        "plan",
        help="show the file diff and slot changes the next apply would make",
        description="Show what the next apply would change, touching nothing: the diff of "
        "the include file autoscaler owns and the Supervisor calls per slot. Without "
        "arguments, every pool keeps the count the file holds now (so the plan shows drift "
        "to repair and the effect of edited policies); POOL=N pairs set those pools (clamped "
        "to min/max as `scale` does); --static uses every policy's static_processes (the "
        "preview of a first apply, e.g. when migrating from a hand-written file). Exit 0 "
        "with or without changes; 1 when supervisord is unreachable or the new file would be "
        "refused; 2 on bad usage or invalid policies.",
    )
    parser.add_argument("counts", nargs="*", metavar="POOL=N", help="desired slots for a pool")
    parser.add_argument(
        "--static", action="store_true", help="plan every pool at its static_processes"
    )
    add_policies_option(parser)
    add_format(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.static and args.counts:
        raise UsageError("give POOL=N pairs or --static, not both")
    settings, policies, actuator = build_actuator(args)
    requested = parse_counts(args.counts, policies)
    if args.static:
        requested = {pool: policy.static_processes for pool, policy in policies.items()}
    clamped: list[str] = []
    desired: dict[str, int] = {}
    for pool, count in requested.items():
        desired[pool], note = clamp(pool, policies[pool], count)
        if note is not None:
            clamped.append(note)
    try:
        plan = actuator.plan(desired, busy_slots=busy_slots)
    except SupervisorUnavailable as exc:
        hint = unreachable_hint(settings, "supervisor_url")
        print(f"autoscaler: {exc}{hint}", file=sys.stderr)
        return EXIT_FAILED
    except SupervisorFileError as exc:
        print(f"autoscaler: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.format == "json":
        print_json({**plan.to_json(), "clamped": clamped})
        return EXIT_FAILED if plan.problem or plan.refused else EXIT_OK
    for note in clamped:
        print(f"note: {note}")
    print(counts_table(plan.before, plan.after))
    print()
    if plan.file_changed:
        print(plan.diff(), end="")
    else:
        print(f"{plan.path}: unchanged")
    print()
    if plan.changes:
        print(changes_table(plan.changes))
    else:
        print("No slot changes: Supervisor already runs these slots.")
    for note in plan.notes:
        print(f"drift: {note}")
    for pool, reason in plan.refused.items():
        print(f"\npool {pool} would NOT be applied: {reason}", file=sys.stderr)
    if plan.problem is not None:
        print(f"\nThis file would NOT be written: {plan.problem}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_FAILED if plan.refused else EXIT_OK
