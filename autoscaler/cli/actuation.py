"""What `plan` and `scale` share: policies and an Actuator from the settings, POOL=N counts
clamped to the policy, busy slots from the workers' logs, and printing slot changes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

from loguru import logger

from autoscaler.act.actuator import Actuator
from autoscaler.act.reconcile import SlotChange
from autoscaler.cli.common import UsageError, build_settings, load_cli_policies
from autoscaler.observe import logtail
from autoscaler.policy.loader import PolicySet
from autoscaler.policy.model import Policy
from autoscaler.settings import Settings
from autoscaler.supervisord.paused import Pause, PausedFileError, read_paused
from autoscaler.supervisord.rpc import ProcessInfo
from autoscaler.table import render_table


def add_policies_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policies",
        type=Path,
        default=None,
        metavar="DIR",
        help="policy directory (default: AUTOSCALER_POLICIES_DIR)",
    )


def build_actuator(args: argparse.Namespace) -> tuple[Settings, PolicySet, Actuator]:
    """Settings, the policies (any problem is a usage error) and an Actuator; CLI log lines
    go to stderr at WARNING and above (the verbs print what changed themselves)."""
    settings = build_settings(args)
    logger.remove()
    logger.add(_to_stderr, level="WARNING", format="{level}: {message}")
    policies = load_cli_policies(args.policies, settings)
    return settings, policies, Actuator.from_settings(settings, policies)


def read_paused_cli(actuator: Actuator) -> dict[str, Pause]:
    """The paused pools beside the actuator's include file; an unreadable file is a usage
    error that names it."""
    try:
        return read_paused(actuator.file.state_dir)
    except PausedFileError as exc:
        raise UsageError(str(exc)) from None


def _to_stderr(line: object) -> None:
    """sys.stderr looked up per line: whatever stderr is when the line is written."""
    sys.stderr.write(str(line))


def clamp(pool: str, policy: Policy, count: int) -> tuple[int, str | None]:
    """`count` within the policy's min/max, and a sentence when it had to be moved."""
    if count < policy.min_processes:
        return policy.min_processes, (
            f"{pool}: {count} is below min_processes; clamped to {policy.min_processes}"
        )
    if count > policy.max_processes:
        return policy.max_processes, (
            f"{pool}: {count} is above max_processes; clamped to {policy.max_processes}"
        )
    return count, None


def parse_counts(pairs: Iterable[str], policies: Mapping[str, Policy]) -> dict[str, int]:
    """`POOL=N` words -> {pool: N}; unknown pools and bad numbers are usage errors."""
    counts: dict[str, int] = {}
    for pair in pairs:
        pool, sep, raw = pair.partition("=")
        if not sep or not raw.strip().lstrip("-").isdigit():
            raise UsageError(f"{pair!r}: expected POOL=N, e.g. mail=3")
        counts[check_pool(pool, policies)] = int(raw)
    return counts


def check_pool(pool: str, policies: Mapping[str, Policy]) -> str:
    if pool not in policies:
        known = ", ".join(policies) or "none"
        raise UsageError(f"no pool {pool!r} (pools: {known})")
    return pool


def busy_slots(processes: Iterable[ProcessInfo]) -> set[str]:
    """Slots whose log tail shows a job in hand (worklog via logtail), so a scale-down stops
    them last. A log that cannot be read counts as idle. Handed to the actuator as is, it
    runs on the processes the apply reads."""
    live = [p for p in processes if p.group == p.name and p.statename in ("RUNNING", "STARTING")]
    return logtail.busy_slots(live)


def changes_table(changes: Collection[SlotChange]) -> str:
    rows = [(c.pool or "-", c.slot, c.action, c.reason) for c in changes]
    return render_table(("pool", "slot", "action", "reason"), rows)


def counts_table(before: Mapping[str, int], after: Mapping[str, int]) -> str:
    rows = []
    for pool, count in after.items():
        delta = count - before.get(pool, 0)
        rows.append((pool, before.get(pool, 0), count, f"{delta:+d}" if delta else "="))
    return render_table(("pool", "slots now", "after", "change"), rows)
