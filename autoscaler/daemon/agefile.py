"""The lists' FIFO accounting of job ages, kept across a daemon restart in the state directory.

Saved when the daemon stops (not every tick: no disk write per second), read when it starts.
A missing, unreadable or malformed file only means the ages start over (`first_seen`); it
never stops the daemon. What survives is described in autoscaler/laravel/fifo.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from loguru import logger

from autoscaler.fileio import write_atomic
from autoscaler.laravel.fifo import FifoAges

AGES_FILE = "queue_ages.json"


def save_ages(ages: FifoAges, state_dir: Path) -> None:
    path = state_dir / AGES_FILE
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(ages.export(), separators=(",", ":")), mode=0o600)
    except OSError as exc:
        logger.warning("queue ages not saved to {}: {}", path, exc)


def restore_ages(ages: FifoAges, state_dir: Path) -> None:
    path = state_dir / AGES_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return
    except OSError as exc:
        logger.warning("queue ages not read from {}: {}; they start over", path, exc)
        return
    try:
        count = ages.restore(json.loads(text))
    except ValueError as exc:
        logger.warning("queue ages in {} not used: {}; they start over", path, exc)
        return
    logger.info("queue ages: {} queue(s) taken over from {}", count, path)
