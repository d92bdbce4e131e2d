"""The active daemon's last decision, published in the include file's state directory so that
`autoscaler status` shows what the daemon decided (with its memory of earlier ticks: the
scale-down window, the smoothed rates) instead of recomputing it from one sample.

Written atomically after every tick by the active daemon only (a standby holds no lock and
publishes nothing); read by `status`, which trusts it while a daemon holds `daemon.lock` and
the decision is fresh (at most a few intervals old). With it, the replacements the daemon holds
back for memory room this tick (kept in its memory only, unlike those in progress, which
`replacing.json` holds).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from autoscaler.daemon.lock import LOCK_NAME
from autoscaler.decide.plan import Plan
from autoscaler.fileio import write_atomic

DECISIONS_NAME = "decisions.json"
FRESH_INTERVALS = 3.0  # a decision older than this many intervals (and FRESH_MIN_S) is stale
FRESH_MIN_S = 15.0


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishedDecision:
    strategy: str
    current: int | None
    desired: int
    reason: str
    held: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Published:
    at_s: float  # the tick's observation time (unix)
    pid: int
    interval_s: float
    dry_run: bool
    pools: dict[str, PublishedDecision]
    # pool -> a replacement (recycle, configuration change) waiting for memory room, and why
    waiting_for_room: dict[str, str] = field(default_factory=dict)

    def fresh(self, now_s: float) -> bool:
        return now_s - self.at_s <= max(FRESH_INTERVALS * self.interval_s, FRESH_MIN_S)


def publish(
    state_dir: Path,
    plan: Plan,
    *,
    interval_s: float,
    dry_run: bool,
    waiting_for_room: Mapping[str, str] | None = None,
) -> None:
    decisions = {
        pool: PublishedDecision(
            strategy=d.strategy, current=d.current, desired=d.desired, reason=d.reason,
            held=d.held,
        )
        for pool, d in plan.decisions.items()
    }  # fmt: skip
    published = Published(
        at_s=plan.at_s,
        pid=os.getpid(),
        interval_s=interval_s,
        dry_run=dry_run,
        pools=decisions,
        waiting_for_room=dict(waiting_for_room or {}),
    )
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(state_dir / DECISIONS_NAME, json.dumps(asdict(published)) + "\n")


def read_published(state_dir: Path) -> Published | None:
    """The last published decision (None: none, or unreadable: status then recomputes)."""
    try:
        raw = json.loads((state_dir / DECISIONS_NAME).read_text(encoding="utf-8"))
        pools = {name: PublishedDecision(**entry) for name, entry in raw.pop("pools").items()}
        return Published(pools=pools, **raw)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def active_daemon_pid(state_dir: Path) -> int | None:
    """The pid of the daemon holding `daemon.lock` now, None when no daemon holds it."""
    path = state_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 32).decode(errors="replace").strip()
            return int(text) if text.isdigit() else 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
