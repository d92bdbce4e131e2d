"""`autoscaler pause POOL` (and `resume`, resume_cmd.py): stop consuming a pool's queues (during
an incident) and start again. The state is kept beside the include file (supervisord/paused.py),
so it survives the daemon; a paused pool's workers finish their job and stop (SIGTERM)."""

from __future__ import annotations

import argparse
import sys
import time

from autoscaler.act.reconcile import SlotChange
from autoscaler.cli.actuation import (
    add_policies_option,
    build_actuator,
    changes_table,
    check_pool,
    read_paused_cli,
)
from autoscaler.cli.common import UsageError
from autoscaler.cli.scale_cmd import apply_until
from autoscaler.constants import EXIT_FAILED, EXIT_OK
from autoscaler.supervisord.paused import Pause, write_paused


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pause = verbs.add_parser(
        "pause",
        help="stop a pool's workers gracefully and keep it at zero until resumed",
        description="Pause POOL: its workers finish their current job and stop (SIGTERM), and "
        "nothing (the daemon, `scale`, a restart) starts them again until `autoscaler resume "
        "POOL`. Its queues keep their jobs. The pause is kept in the include file's state "
        "directory and shown by `status`.",
    )
    pause.add_argument("pools", nargs="*", metavar="POOL", help="pool names (policy files' stems)")
    pause.add_argument("--all", action="store_true", help="every pool (a rollback's last step)")
    pause.add_argument("--reason", default="", help="a note shown by status")
    add_wait_and_policies(pause)
    pause.set_defaults(func=run_pause)


def add_wait_and_policies(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait up to SECONDS until the change has settled (stopped workers gone, "
        "started ones RUNNING)",
    )
    add_policies_option(parser)


def run_pause(args: argparse.Namespace) -> int:
    if args.wait < 0:
        raise UsageError("--wait must be >= 0")
    if bool(args.pools) == args.all:
        raise UsageError("name the pools to pause, or --all")
    _settings, policies, actuator = build_actuator(args)
    names = list(policies) if args.all else [check_pool(p, policies) for p in args.pools]
    paused = read_paused_cli(actuator)
    counts = actuator.file_counts()
    for pool in names:
        if pool in paused:
            print(f"{pool}: already paused")
            continue
        before = counts.get(pool, 0)
        paused[pool] = Pause(
            pool=pool, since_s=time.time(), count_before=before, reason=args.reason
        )
        print(f"{pool}: paused (it had {before} slot(s); `autoscaler resume {pool}` to undo)")
    write_paused(actuator.file.state_dir, paused)
    first, last, changes = apply_until(actuator, None, wait_s=args.wait)
    return report_result(", ".join(names), first.error or last.error, changes, last.converged,
                         args.wait)  # fmt: skip


def report_result(
    pool: str, error: str | None, changes: list[SlotChange], converged: bool, wait_s: float
) -> int:
    if changes:
        print(changes_table(changes))
    if error is not None:
        print(f"autoscaler: {pool}: not applied yet: {error}", file=sys.stderr)
        return EXIT_FAILED
    if wait_s > 0 and not converged:
        print(f"autoscaler: {pool}: not settled after {wait_s:g}s", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
