"""`autoscaler scale POOL N`: set a pool's worker count by hand (the `kubectl scale` of
autoscaler). A running daemon decides the count again on its next tick, as the HPA does after
a `kubectl scale`: for a lasting change, edit the policy."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping

from autoscaler.act.actuator import Actuator
from autoscaler.act.apply_report import ApplyReport, change_json
from autoscaler.act.reconcile import SlotChange
from autoscaler.cli.actuation import (
    add_policies_option,
    build_actuator,
    busy_slots,
    changes_table,
    check_pool,
    clamp,
    read_paused_cli,
)
from autoscaler.cli.common import UsageError, add_format, print_json, unreachable_hint
from autoscaler.constants import EXIT_FAILED, EXIT_OK
from autoscaler.policy.model import Policy

RETRY_FOR_S = 10.0  # keep retrying an unreachable supervisord this long (with backoff)
POLL_S = 1.0

DAEMON_NOTE = (
    "If `autoscaler run` manages this pool, its next tick decides the count again and may undo "
    "this; for a lasting change edit min/max/static_processes in the policy (or set its "
    "strategy to static)."
)


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = verbs.add_parser(
        "scale",
        help="set a pool's worker count by hand",
        description="Set POOL to N worker slots now, clamped to the policy's min_processes and "
        "max_processes (it says so when it clamps), and print what changed. Other pools keep "
        "the count the file holds. Workers that stay keep running; removed ones get SIGTERM "
        "and finish their job (idle ones are chosen first). " + DAEMON_NOTE,
    )
    parser.add_argument("pool", help="pool name (a policy file's stem)")
    parser.add_argument(
        "count", metavar="N", help="worker slots wanted, or `static`: the policy's static_processes"
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait up to SECONDS until new slots are RUNNING and removed ones have finished "
        "their job and are gone (default: return after the change is made)",
    )
    add_policies_option(parser)
    add_format(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.wait < 0:
        raise UsageError("--wait must be >= 0")
    settings, policies, actuator = build_actuator(args)
    pool = check_pool(args.pool, policies)
    if pool in read_paused_cli(actuator):
        raise UsageError(f"pool {pool} is paused: `autoscaler resume {pool}` first")
    requested = _count(args.count, policies[pool].static_processes)
    count, clamp_note = clamp(pool, policies[pool], requested)
    desired = {pool: count}
    first, report, changes = apply_until(actuator, desired, wait_s=args.wait, pool=pool)
    settled = report.ok and (args.wait == 0 or report.converged)
    over_mb = over_budget_mb(report, policies, settings.usable_memory_mb)
    if first.unreachable and first.error is not None:
        first.error += unreachable_hint(settings, "supervisor_url")
    if args.format == "json":
        print_json(
            {
                **report.to_json(),  # the last apply: counts, draining, problems, error
                "pool": pool,
                "requested": requested,
                "count": count,
                "clamped": clamp_note,
                "before": first.before.get(pool),  # this pool's slots before the first apply
                "after": count,
                "changes": [change_json(c) for c in changes],
                "settled": settled,
                "over_budget_mb": over_mb,
            }
        )
    else:
        _print(
            pool,
            count,
            clamp_note=clamp_note,
            first=first,
            last=report,
            changes=changes,
            wait_s=args.wait,
        )
        if over_mb > 0:
            print(
                f"note: the managed workers now hold {over_mb:.0f} MB more than the memory "
                f"budget ({settings.usable_memory_mb:.0f} MB: memory_budget_mb less "
                "memory_reserve_mb) at their declared sizes; a running daemon brings them back "
                "within it on its next tick, and nothing else does"
            )
    return EXIT_OK if settled else EXIT_FAILED


def over_budget_mb(report: ApplyReport, policies: Mapping[str, Policy], usable_mb: float) -> float:
    """How far the live managed workers (starting, running, draining) are over the budget,
    at their declared sizes; 0 when within it. `scale` is an operator's override: it warns
    and does not refuse (an incident may need the workers)."""
    held = 0.0
    for pool, counts in report.counts.items():
        policy = policies.get(pool)
        if policy is not None:
            held += (counts.running + counts.starting + counts.draining) * (
                policy.memory_per_worker_mb
            )
    return max(0.0, held - usable_mb)


def _count(text: str, static: int) -> int:
    if text == "static":
        return static
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"N: expected a number or `static`, not {text!r}") from None


def apply_until(
    actuator: Actuator,
    desired: dict[str, int] | None,
    *,
    wait_s: float,
    pool: str | None = None,
) -> tuple[ApplyReport, ApplyReport, list[SlotChange]]:
    """Apply `desired` (retrying an unreachable supervisord for RETRY_FOR_S), then with
    `wait_s` keep applying until it has converged. (first report, last report, changes).
    `pool`: the command's own pool, whose refusal is its error."""
    deadline = time.monotonic() + RETRY_FOR_S
    report = actuator.apply(desired, busy_slots=busy_slots)
    # Only an unreachable supervisord is worth waiting for: a refused file or reread would be
    # refused again, and each try would make the refused text briefly live.
    while report.unreachable and time.monotonic() < deadline:
        time.sleep(min(report.retry_in_s or POLL_S, max(0.0, deadline - time.monotonic())))
        report = actuator.apply(desired, busy_slots=busy_slots)
    if report.error is None and pool in report.refused:
        # Other pools may have been applied; for this command, its own pool failing is the error.
        report.error = f"{pool} not applied: {report.refused[pool]}"
    first = report
    changes = list(report.changes)
    if report.ok and wait_s > 0:
        until = time.monotonic() + wait_s
        while not report.converged and time.monotonic() < until:
            time.sleep(POLL_S)
            report = actuator.apply(desired, busy_slots=busy_slots)
            changes += report.changes
            if report.error is not None and report.retry_in_s:
                time.sleep(min(report.retry_in_s, max(0.0, until - time.monotonic())))
    return first, report, changes


def _print(
    pool: str,
    count: int,
    *,
    clamp_note: str | None,
    first: ApplyReport,
    last: ApplyReport,
    changes: list[SlotChange],
    wait_s: float,
) -> None:
    if clamp_note is not None:
        print(f"note: {clamp_note}")
    if first.error is not None:
        print(f"autoscaler: scale failed: {first.error}", file=sys.stderr)
        return
    before = first.before.get(pool, 0)
    moved = f"{before} -> {count} slot(s)" if before != count else f"{count} slot(s), unchanged"
    print(f"{pool}: {moved}")
    if changes:
        print(changes_table(changes))
    tally = last.counts.get(pool)
    if tally is not None:
        print(
            f"{pool} now: {tally.running} running, {tally.starting} starting, "
            f"{tally.draining} draining (finishing their job), {tally.failed} failed"
        )
    for problem in last.problems:
        print(f"problem: {problem}", file=sys.stderr)
    if last.error is not None:
        print(f"autoscaler: {last.error}", file=sys.stderr)
    elif wait_s > 0 and not last.converged:
        print(f"autoscaler: not settled after {wait_s:g}s", file=sys.stderr)
    elif last.draining:
        print(
            f"{len(last.draining)} slot(s) finish their job and are removed by the next apply "
            "(the daemon's next tick, or `autoscaler scale` again, or --wait)"
        )
    if before != count:
        print(f"note: {DAEMON_NOTE}")
