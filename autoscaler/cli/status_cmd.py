"""`autoscaler status`: every pool's queues, throughput, workers and desired count.

`--discover` instead scans Redis for Laravel's queues and prefixes (SCAN, never KEYS).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import redis

from autoscaler.cli import fleet_status
from autoscaler.cli.common import (
    UsageError,
    add_format,
    build_settings,
    load_cli_policies,
    print_json,
    unreachable_hint,
)
from autoscaler.cli.replacing_view import (
    pool_replacement,
    read_replacements,
    replacement_notes,
    waiting_notes,
)
from autoscaler.cli.status_view import (
    SLOT_HEADERS,
    notes,
    pool_rows,
    screen,
    slot_rows,
    slot_table_rows,
)
from autoscaler.constants import EXIT_FAILED, EXIT_OK
from autoscaler.daemon.published import Published, active_daemon_pid, read_published
from autoscaler.decide.core import decide
from autoscaler.decide.plan import ControllerState, MemoryBudget, Plan, PoolDecision
from autoscaler.laravel.discovery import Discovery, discover
from autoscaler.laravel.sampler import connect_redis, describe_redis_error
from autoscaler.observe.observation import Observation
from autoscaler.observe.observer import Observer
from autoscaler.policy.loader import PolicySet
from autoscaler.policy.model import Policy
from autoscaler.settings import Settings
from autoscaler.supervisord.include_file import default_state_dir
from autoscaler.table import render_table

CLEAR_SCREEN = "\x1b[H\x1b[2J"
DEFAULT_WINDOW_S = 5.0


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = verbs.add_parser(
        "status",
        help="queues, throughput, workers and desired count per pool",
        description="Sample every pool's queues (Redis), workers (Supervisor) and the "
        "workers' logs, and show what decide would want now. Throughput and run times are "
        "measured over a window (two samples). Exit 1 when Redis cannot be read.",
    )
    parser.add_argument(
        "--policies", type=Path, default=None, help="policy directory (default from settings)"
    )
    parser.add_argument(
        "--window",
        type=float,
        default=DEFAULT_WINDOW_S,
        metavar="S",
        help=f"seconds between the two samples (default {DEFAULT_WINDOW_S:g}; 0: one sample, "
        "no throughput)",
    )
    parser.add_argument(
        "--watch", action="store_true", help="refresh in place every --interval seconds"
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=None,
        metavar="S",
        help="seconds between refreshes with --watch (default AUTOSCALER_INTERVAL_S)",
    )
    parser.add_argument(
        "--count", type=int, default=None, metavar="N", help="with --watch: stop after N"
    )
    parser.add_argument(
        "--discover",
        action="store_true",
        help="find queues and key prefixes with SCAN; report queues without a policy and "
        "policies whose queue has no key",
    )
    parser.add_argument(
        "--fleet",
        nargs="?",
        const="",
        default=None,
        metavar="NAME",
        help="show the fleet instead (default NAME: AUTOSCALER_FLEET): leader, epoch, and per "
        "host whether it beats, its budget, and each pool's workers/assigned (docs/fleet.md)",
    )
    parser.add_argument(
        "--slots",
        action="store_true",
        help="list every worker slot: PID, state, resident memory (with children), CPU, age "
        "and whether it has a job in flight",
    )
    add_format(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = build_settings(args)
    if args.fleet is not None:
        return fleet_status.show(settings, args.fleet, args.format)
    policies = load_cli_policies(args.policies, settings)
    if args.window < 0 or (args.interval is not None and args.interval <= 0):
        raise UsageError("--window must be >= 0 and --interval > 0")
    if args.discover:
        return _discover(settings, policies, args.format)
    observer = Observer.from_settings(settings, policies)
    try:
        if args.watch:
            return _watch(observer, settings, policies, args)
        observation = observer.observe()
        if args.window > 0:
            time.sleep(args.window)
            observation = observer.observe()
        _show(observation, observer, settings, policies, args.format, slots=args.slots)
        return EXIT_FAILED if observation.redis_error else EXIT_OK
    finally:
        observer.close()


def _watch(
    observer: Observer, settings: Settings, policies: PolicySet, args: argparse.Namespace
) -> int:
    interval = args.interval or settings.interval_s
    tty = sys.stdout.isatty()
    observer.observe()
    shown = 0
    code = EXIT_OK
    try:
        while args.count is None or shown < args.count:
            time.sleep(interval)
            observation = observer.observe()
            if tty and args.format == "table":
                sys.stdout.write(CLEAR_SCREEN)
            _show(
                observation,
                observer,
                settings,
                policies,
                args.format,
                compact=True,
                slots=args.slots,
            )
            sys.stdout.flush()
            code = EXIT_FAILED if observation.redis_error else EXIT_OK
            shown += 1
    except KeyboardInterrupt:
        pass
    return code


def _show(
    observation: Observation,
    observer: Observer,
    settings: Settings,
    policies: Mapping[str, Policy],
    output: str,
    *,
    compact: bool = False,
    slots: bool = False,
) -> None:
    if slots:
        _show_slots(observation, output, compact=compact)
        return
    plan, source_note, published = shown_plan(observation, policies, settings)
    replacements = read_replacements(_state_dir(settings))
    # replacements held back for memory room: in the daemon's memory, published with its
    # decision (shown only while that is fresh)
    waiting = {
        pool: why
        for pool, why in (published.waiting_for_room if published is not None else {}).items()
        if pool in policies
    }
    if output == "json":
        rows = pool_rows(observation, policies, plan, observer.flows)
        for row in rows:
            row["desired_source"] = "daemon" if source_note.startswith("desired:") else "status"
            row.update(pool_replacement(replacements, row["pool"], observation))
            row["waiting_for_room"] = waiting.get(row["pool"])
        if compact:
            print(json.dumps(rows, separators=(",", ":")))
        else:
            print_json(rows)
        for line in _notes(observation, observer, settings):
            if "unknown" in line:
                print(f"autoscaler: {line}", file=sys.stderr)
        if replacements.problem is not None:
            print(f"autoscaler: replacements in progress {replacements.problem}", file=sys.stderr)
        return
    print(
        screen(
            observation,
            policies,
            plan,
            observer.flows,
            prefix=settings.redis_prefix,
            note_lines=[
                *_notes(observation, observer, settings),
                source_note,
                *replacement_notes(replacements, policies, observation),
                *waiting_notes(waiting),
            ],
        )
    )


def _notes(observation: Observation, observer: Observer, settings: Settings) -> list[str]:
    """status_view's notes, with the likely cause when a service is unreachable at its
    default address and no settings file was found."""
    lines = notes(observation, observer.log_problems)
    if observation.redis_error:
        lines[0] += unreachable_hint(settings, "redis_url")
    if observation.supervisor_error:
        lines[1 if observation.redis_error else 0] += unreachable_hint(settings, "supervisor_url")
    if observer.paused_problem:
        lines.append(observer.paused_problem)
    if observer.unmanaged:
        found = "; ".join(
            f"{pool}: {len(others)} ({', '.join(sorted({f'{p.group}:*' for p in others}))})"
            for pool, others in sorted(observer.unmanaged.items())
        )
        lines.append(
            f"unmanaged workers (other Supervisor programs consuming the queues; decide counts "
            f"them as capacity): {found}"
        )
    return lines


def shown_plan(
    observation: Observation, policies: Mapping[str, Policy], settings: Settings
) -> tuple[Plan, str, Published | None]:
    """The active daemon's last decision when it is fresh, else decide's answer from this
    one sample; a note saying which it is; and the daemon's publication when fresh."""
    state_dir = _state_dir(settings)
    pid = active_daemon_pid(state_dir)
    published = read_published(state_dir) if pid is not None else None
    if published is not None and published.fresh(observation.at_s):
        stamp = time.strftime("%H:%M:%S", time.localtime(published.at_s))
        decisions = {
            pool: PoolDecision(
                pool=pool, strategy=d.strategy, current=d.current, desired=d.desired,
                reason=d.reason, held=d.held,
            )
            for pool, d in published.pools.items()
            if pool in policies
        }  # fmt: skip
        plan = Plan(
            at_s=published.at_s, decisions=decisions, memory_limit_mb=0.0, memory_planned_mb=0.0
        )
        dry = " (dry run: not applied)" if published.dry_run else ""
        return plan, f"desired: the daemon's decision at {stamp} (pid {pid}){dry}", published
    if pid is None:
        why = "no daemon is active"
    elif published is None:
        why = f"the daemon (pid {pid}) has published no decision yet"
    else:
        age_s = observation.at_s - published.at_s
        why = f"the daemon's (pid {pid}) last decision is {age_s:.0f}s old"
    note = (
        f"desired recomputed by status from this sample ({why}); the daemon's own count may "
        "differ: it remembers earlier ticks"
    )
    return desired_plan(observation, policies, settings), note, None


def _state_dir(settings: Settings) -> Path:
    return settings.state_dir or default_state_dir(settings.include_file)


def _show_slots(observation: Observation, output: str, *, compact: bool) -> None:
    if output == "json":
        rows = slot_rows(observation)
        print(json.dumps(rows, separators=(",", ":")) if compact else json.dumps(rows, indent=2))
        return
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(observation.at_s))
    print(f"autoscaler worker slots at {stamp}")
    print(render_table(SLOT_HEADERS, slot_table_rows(observation)))
    if observation.supervisor_error:
        print(f"  workers unknown: {observation.supervisor_error}")
    else:
        print("  rss: the worker's resident memory plus its children's; cpu: since the last sample")


def desired_plan(
    observation: Observation, policies: Mapping[str, Policy], settings: Settings
) -> Plan:
    """What decide would want now, from a fresh controller state (no memory of past ticks)."""
    budget = MemoryBudget(
        budget_mb=settings.memory_budget_mb, reserve_mb=settings.memory_reserve_mb
    )
    plan, _state = decide(
        observation, policies, ControllerState(), now_s=observation.at_s, budget=budget
    )
    return plan


def _discover(settings: Settings, policies: PolicySet, output: str) -> int:
    client = connect_redis(settings.redis_url, timeout_s=settings.redis_timeout_s)
    try:
        found = discover(client, prefix=settings.redis_prefix, policies=policies)
    except (redis.RedisError, OSError) as exc:
        print(f"autoscaler: {describe_redis_error(exc)}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        client.close()
    suggested = found.suggested_prefix
    if output == "json":
        print_json(_discovery_json(found))
    else:
        _print_discovery(found)
    return EXIT_FAILED if suggested is not None else EXIT_OK


def _discovery_json(found: Discovery) -> dict[str, object]:
    return {
        "prefix": found.prefix,
        "prefixes": found.prefixes,
        "suggested_prefix": found.suggested_prefix,
        "scanned_keys": found.scanned_keys,
        "queues": [
            {"prefix": q.prefix, "queue": q.queue, "keys": sorted(q.keys), "pool": q.pool}
            for q in found.queues
        ],
        "unmanaged_queues": [q.queue for q in found.unmanaged],
        "policies_without_keys": [{"pool": p, "queue": q} for p, q in found.missing],
    }


def _print_discovery(found: Discovery) -> None:
    print(f"scanned {found.scanned_keys} key(s) matching *queues:* (SCAN)")
    rows = [
        [
            q.prefix,
            q.queue,
            ",".join(sorted(q.keys)),
            q.pool or ("(no policy)" if q.prefix == found.prefix else "(other prefix)"),
        ]
        for q in found.queues
    ]
    if rows:
        print(render_table(("prefix", "queue", "keys", "pool"), rows))
    else:
        print("no Laravel queue key found (all queues empty, or another Redis database?)")
    if found.unmanaged:
        names = ", ".join(q.queue for q in found.unmanaged)
        print(f"queues with no policy (not scaled by autoscaler): {names}")
    if found.missing:
        names = ", ".join(f"{q} (pool {p})" for p, q in found.missing)
        print(
            f"policies whose queue has no key under {found.prefix!r} "
            f"(empty now, never used, or another prefix): {names}"
        )
    suggested = found.suggested_prefix
    if suggested is not None:
        print(
            f"the configured prefix {found.prefix!r} looks wrong: {suggested!r} holds more of "
            f"the policies' queues; set AUTOSCALER_REDIS_PREFIX={suggested}"
        )
