"""`autoscaler restart [POOL ...] [--all] [--wait S]`: a rolling, surge-first restart for deploys.

Every worker of the named pools is replaced one at a time per pool: a new slot starts, and the
old worker is stopped (it finishes its job) only once the new one is RUNNING, so a pool never
has fewer RUNNING workers than when the restart began. Works beside a running daemon: both apply
through the apply lock and the same replacement state (act/retire.py).

Exit 0 once every old worker is gone; 1 if a new worker fails to start (the old ones are kept,
the reason is printed), if supervisord cannot be reached, or if --wait runs out; 2 for an
unknown pool. Ctrl-C (or SIGTERM) cancels: the step in progress is finished or undone at once,
so no extra slot is left behind.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType

from autoscaler.act import restart
from autoscaler.act.actuator import Actuator
from autoscaler.act.apply_report import ApplyReport
from autoscaler.act.retire_state import load
from autoscaler.cli.actuation import add_policies_option, build_actuator, busy_slots, check_pool
from autoscaler.cli.common import UsageError
from autoscaler.constants import EXIT_FAILED, EXIT_OK
from autoscaler.supervisord.include_file import SupervisorFileError
from autoscaler.supervisord.rpc import SupervisorUnavailable

POLL_S = 0.5
UNREACHABLE_FOR_S = 10.0  # supervisord gone midway: give up after this long
EXIT_INTERRUPTED = 130


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = verbs.add_parser(
        "restart",
        help="replace every worker of pools, surge-first (deploys)",
        description="Rolling restart for deploys: every worker of the named pools is replaced "
        "by a new one, one at a time per pool; the old one is stopped (it finishes its job) "
        "only once its replacement is RUNNING, so a pool never has fewer running workers than "
        "when the restart began. Works while `autoscaler run` runs. Exit 0 when every old "
        "worker is gone, 1 when a new worker fails to start (the old ones are kept) or "
        "supervisord cannot be reached, 2 for an unknown pool. Ctrl-C cancels cleanly.",
    )
    parser.add_argument("pools", nargs="*", metavar="POOL", help="pools to restart")
    parser.add_argument("--all", action="store_true", help="restart every pool")
    parser.add_argument(
        "--wait",
        type=float,
        default=None,
        metavar="S",
        help="give up after S seconds (exit 1; the daemon's ticks, or the next apply, carry "
        "the restart on); default: wait until done",
    )
    add_policies_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.wait is not None and args.wait <= 0:
        raise UsageError("--wait must be > 0")
    if bool(args.pools) == bool(args.all):
        raise UsageError("name the pools to restart, or --all")
    _settings, policies, actuator = build_actuator(args)
    pools = list(policies) if args.all else [check_pool(p, policies) for p in args.pools]
    pools = list(dict.fromkeys(pools))
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _restart(actuator, pools, args.wait)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _restart(actuator: Actuator, pools: list[str], wait_s: float | None) -> int:
    try:
        restart.begin(actuator, pools)
    except (SupervisorUnavailable, SupervisorFileError, restart.RestartRefused) as exc:
        print(f"autoscaler: restart not started: {exc}", file=sys.stderr)
        return EXIT_FAILED
    records = load(actuator.replacer.path).restarts
    totals = {p: len(r.old) for p, r in records.items() if p in pools}
    for pool in pools:
        print(
            f"{pool}: restarting {totals.get(pool, 0)} worker(s), one at a time, surge-first",
            flush=True,
        )
    try:
        return _follow(actuator, pools, totals, wait_s)
    except KeyboardInterrupt:
        restart.forget(actuator, pools, cancel=True)
        report = actuator.apply(None, busy_slots=busy_slots)
        _print_events(actuator)
        print(
            "autoscaler: restart interrupted: the step in progress was finished or undone"
            + (f" ({report.error})" if report.error else "")
            + "; workers not reached yet keep running",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED


def _follow(
    actuator: Actuator, pools: list[str], totals: dict[str, int], wait_s: float | None
) -> int:
    deadline = None if wait_s is None else time.monotonic() + wait_s
    unreachable_since: float | None = None
    shown: dict[str, restart.PoolProgress] = {}
    while True:
        report = actuator.apply(None, busy_slots=busy_slots)
        _print_events(actuator)
        if report.error is not None and not report.skipped:
            unreachable_since = _check_error(report, unreachable_since)
            if unreachable_since is None:
                return EXIT_FAILED
        elif report.ok:
            unreachable_since = None
        rows = restart.progress(actuator, pools, totals)
        for row in rows:
            if shown.get(row.pool) != row:
                _print_progress(row, report)
                shown[row.pool] = row
        if all(row.done or row.failed for row in rows):
            failed = [row for row in rows if row.failed]
            if failed:
                restart.forget(actuator, [row.pool for row in failed], cancel=False)
                for row in failed:
                    print(f"autoscaler: {row.pool}: restart failed: {row.failed}", file=sys.stderr)
                return EXIT_FAILED
            return EXIT_OK
        if deadline is not None and time.monotonic() >= deadline:
            print(
                f"autoscaler: not done after {wait_s:g}s; the restart goes on with the daemon's "
                "ticks (or the next `autoscaler restart`/`scale`)",
                file=sys.stderr,
            )
            return EXIT_FAILED
        if (
            unreachable_since is not None
            and time.monotonic() - unreachable_since > UNREACHABLE_FOR_S
        ):
            print(f"autoscaler: {report.error}", file=sys.stderr)
            return EXIT_FAILED
        time.sleep(POLL_S)


def _check_error(report: ApplyReport, since: float | None) -> float | None:
    """An unreachable supervisord is waited for (a while); any other error ends the run."""
    if report.unreachable:
        return since if since is not None else time.monotonic()
    print(f"autoscaler: restart stopped: {report.error}", file=sys.stderr)
    return None


def _print_events(actuator: Actuator) -> None:
    for event in actuator.replacer.events:
        print(event, flush=True)
    actuator.replacer.events = []


def _print_progress(row: restart.PoolProgress, report: ApplyReport) -> None:
    counts = report.counts.get(row.pool)
    running = f", {counts.running} running" if counts is not None else ""
    if row.done:
        print(f"{row.pool}: done, {row.total} old worker(s) replaced and gone{running}", flush=True)
    elif row.failed is None:
        step = f"; now {row.step}" if row.step else ""
        print(
            f"{row.pool}: {row.replaced}/{row.total} replaced, {row.remaining} old still "
            f"running{step}{running}",
            flush=True,
        )
