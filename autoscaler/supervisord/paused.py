"""Paused pools: `autoscaler pause POOL` / `resume POOL`, kept beside the include file.

A paused pool runs no worker: its slots are stopped gracefully (each finishes its job) and
the daemon keeps it at zero, whatever its policy's min_processes, until it is resumed. The
state is one small JSON file in the include file's state directory, so it survives the
daemon, a reboot and a policy reload, and every reader (daemon, status, scale) sees the same.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from autoscaler.fileio import write_atomic

PAUSED_NAME = "paused.json"


class PausedFileError(Exception):
    """The paused-pools file cannot be read; the message names it and the problem."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Pause:
    pool: str
    since_s: float  # unix time of `autoscaler pause`
    count_before: int  # slots the file held then: what `resume` puts back without a daemon
    reason: str = ""  # the operator's note (`--reason`)


def paused_path(state_dir: Path) -> Path:
    return state_dir / PAUSED_NAME


def read_paused(state_dir: Path) -> dict[str, Pause]:
    """The paused pools (none when the file does not exist)."""
    path = paused_path(state_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise PausedFileError(f"{path}: cannot read: {exc}") from None
    try:
        raw = json.loads(text)
        return {
            pool: Pause(
                pool=pool,
                since_s=float(entry["since_s"]),
                count_before=int(entry["count_before"]),
                reason=str(entry.get("reason", "")),
            )
            for pool, entry in raw["paused"].items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PausedFileError(f"{path}: not a paused-pools file ({exc!r})") from None


def write_paused(state_dir: Path, paused: dict[str, Pause]) -> None:
    """Replace the file atomically (removed when nothing is paused)."""
    path = paused_path(state_dir)
    if not paused:
        path.unlink(missing_ok=True)
        return
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = {
        "paused": {
            pool: {"since_s": p.since_s, "count_before": p.count_before, "reason": p.reason}
            for pool, p in sorted(paused.items())
        }
    }
    write_atomic(path, json.dumps(data, indent=2) + "\n", mode=0o644)
