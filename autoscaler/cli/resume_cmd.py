"""`autoscaler resume POOL`: undo `autoscaler pause POOL` (pause_cmd.py)."""

from __future__ import annotations

import argparse

from autoscaler.cli.actuation import build_actuator, check_pool, clamp, read_paused_cli
from autoscaler.cli.common import UsageError
from autoscaler.cli.pause_cmd import add_wait_and_policies, report_result
from autoscaler.cli.scale_cmd import apply_until
from autoscaler.constants import EXIT_OK
from autoscaler.supervisord.paused import write_paused


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    resume = verbs.add_parser(
        "resume",
        help="undo `autoscaler pause POOL`",
        description="Resume POOL: it gets back the slots it had when paused (within its "
        "policy's bounds) now; a running daemon then decides its count as usual.",
    )
    resume.add_argument("pool", help="pool name (a policy file's stem)")
    add_wait_and_policies(resume)
    resume.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.wait < 0:
        raise UsageError("--wait must be >= 0")
    _settings, policies, actuator = build_actuator(args)
    pool = check_pool(args.pool, policies)
    paused = read_paused_cli(actuator)
    entry = paused.pop(pool, None)
    if entry is None:
        print(f"{pool}: not paused")
        return EXIT_OK
    count, note = clamp(pool, policies[pool], entry.count_before)
    write_paused(actuator.file.state_dir, paused)
    print(f"{pool}: resumed with {count} slot(s)" + (f" ({note})" if note else ""))
    first, last, changes = apply_until(actuator, {pool: count}, wait_s=args.wait, pool=pool)
    return report_result(pool, first.error or last.error, changes, last.converged, args.wait)
