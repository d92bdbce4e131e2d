"""What a surge-first replacement remembers between applies, kept in the state directory.

The daemon's ticks and `autoscaler restart` replace workers through the same applies (they take
turns through the apply lock), so the replacements in progress live in a file both read under
that lock, not in either process: a restarted daemon, or a daemon beside an interrupted
`autoscaler restart`, carries on from where the other stopped. Read and written only while the
apply lock is held; written atomically.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from autoscaler.fileio import write_atomic

STATE_NAME = "replacing.json"
# recycle: a leaking or old worker; restart: `autoscaler restart`; config: a policy edit changed
# the slot's section (act/outdated.py).
Origin = Literal["recycle", "restart", "config"]


@dataclass(slots=True, kw_only=True)
class Retirement:
    """One old worker being replaced: a new slot first, the old one stopped once it runs."""

    pool: str
    slot: str  # the old worker's slot
    pid: int  # its PID when chosen: a slot running another PID since is not the old worker
    reason: str
    origin: Origin
    since_s: float  # unix time
    replacement: str | None = None  # the slot added for it (None: not added yet)
    members_before: int | None = None  # the pool's slots in the file when the surge began
    cancel: bool = False  # `restart` interrupted: finish or undo this step, start no other
    wanted: str | None = None  # config: the digest of the configuration it moves to


@dataclass(slots=True, kw_only=True)
class Restart:
    """`autoscaler restart` of one pool: its old workers, replaced one at a time."""

    pool: str
    old: dict[str, int]  # slot -> PID of the workers still to replace
    running_at_start: int
    owner_pid: int  # the `autoscaler restart` process (gone: the daemon finishes the job)
    started_s: float
    replaced: int = 0
    failed: str | None = None  # a new worker did not start: the rest is left alone


@dataclass(slots=True, kw_only=True)
class ConfigFailure:
    """A pool whose new configuration did not start: its old workers keep the old one, and
    no other replacement to that configuration starts before a retry delay (or a new edit)."""

    pool: str
    wanted: str  # the digest of the configuration that did not start
    why: str
    at_s: float  # unix time


@dataclass(slots=True, kw_only=True)
class ReplaceState:
    retiring: dict[str, Retirement] = field(default_factory=dict)  # pool -> its one replacement
    restarts: dict[str, Restart] = field(default_factory=dict)  # pool -> restart
    config_failed: dict[str, ConfigFailure] = field(default_factory=dict)  # pool -> failure

    @property
    def empty(self) -> bool:
        return not self.retiring and not self.restarts and not self.config_failed


class ReplaceStateError(Exception):
    """The state file cannot be read; the message names it."""


def load(path: Path) -> ReplaceState:
    return loads(path, read_text(path))


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReplaceStateError(f"{path}: cannot read: {exc}") from None


def loads(path: Path, text: str | None) -> ReplaceState:
    if text is None:
        return ReplaceState()
    try:
        raw: dict[str, Any] = json.loads(text)
        return ReplaceState(
            retiring={p: Retirement(**r) for p, r in raw.get("retiring", {}).items()},
            restarts={p: Restart(**r) for p, r in raw.get("restarts", {}).items()},
            config_failed={p: ConfigFailure(**r) for p, r in raw.get("config_failed", {}).items()},
        )
    except (ValueError, TypeError, AttributeError) as exc:
        # A damaged file must not stop every apply: report it, and start from nothing (the
        # worst outcome is an extra slot the next apply sees as a plain scale-up).
        raise ReplaceStateError(f"{path}: not a replacement state ({exc})") from None


def dumps(state: ReplaceState) -> str:
    data = {
        "retiring": {p: asdict(r) for p, r in sorted(state.retiring.items())},
        "restarts": {p: asdict(r) for p, r in sorted(state.restarts.items())},
    }
    if state.config_failed:  # absent otherwise: files of earlier versions stay the same
        data["config_failed"] = {p: asdict(r) for p, r in sorted(state.config_failed.items())}
    return json.dumps(data, indent=1) + "\n"


def save(path: Path, state: ReplaceState, *, unchanged_from: str | None = None) -> None:
    """Write the state (remove the file when nothing is in progress); no write when its text
    is `unchanged_from` (a converged apply writes nothing)."""
    if state.empty:
        if unchanged_from is not None:
            path.unlink(missing_ok=True)
        return
    text = dumps(state)
    if text != unchanged_from:
        write_atomic(path, text, mode=0o600)


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists (an `autoscaler restart` still running)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
