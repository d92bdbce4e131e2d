"""Worker exits, read from supervisord's own log (`readLog`): the one place that records every
exit with its status, however quickly the process was restarted.

supervisord writes `2026-01-01 12:00:00,123 WARN exited: mail-worker_00 (exit status 12; not
expected)` for each exit it did not ask for (supervisor/process.py `finish`); `not expected`
means a status outside the program's `exitcodes` (0 by default): Laravel's worker exits 12
past `--memory`, 1 on a fatal error, 0 after `--max-jobs` / `--max-time` (expected). A process
list sampled every few seconds would miss most of a crash loop: it restarts in a second.

Each read takes the log's last TAIL_BYTES and keeps the lines newer than the last one seen; a
burst of more than that between two reads is counted in part (a lower bound, said so).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from autoscaler.policy.model import Policy
from autoscaler.supervisord.slots import parse_slot

TAIL_BYTES = 32768
_EXITED = re.compile(
    r"^(?P<stamp>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3}) \S+ exited: (?P<name>\S+) "
    r"\((?P<how>[^;()]*); (?P<expected>not expected|expected)\)\s*$"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerExit:
    stamp: str  # supervisord's own time of the line (sortable as text)
    name: str  # the process name (a slot's name: its group has the same)
    how: str  # `exit status 12`, `terminated by SIGKILL`
    expected: bool


def parse_exits(text: str) -> list[WorkerExit]:
    """Every `exited:` line of a piece of supervisord's log, oldest first."""
    found = []
    for line in text.splitlines():
        match = _EXITED.match(line)
        if match is not None:
            found.append(
                WorkerExit(
                    stamp=match.group("stamp"),
                    name=match.group("name"),
                    how=match.group("how"),
                    expected=match.group("expected") == "expected",
                )
            )
    return found


class ExitReader:
    """The exits logged since the previous call (the first call only marks where to start)."""

    def __init__(self) -> None:
        self._last: str | None = None  # stamp of the newest line seen
        self._at_last: set[WorkerExit] = set()  # the lines with that stamp, already counted

    def new_exits(self, tail: str) -> list[WorkerExit]:
        exits = parse_exits(tail)
        first = self._last is None
        last = self._last or ""
        fresh = [e for e in exits if e.stamp > last or (e.stamp == last and e not in self._at_last)]
        if exits:
            newest = exits[-1].stamp
            if newest != self._last:
                self._last, self._at_last = newest, set()
            self._at_last.update(e for e in exits if e.stamp == newest)
        elif first:
            self._last = ""
        return [] if first else fresh


def crashes_by_pool(
    exits: list[WorkerExit], policies: Mapping[str, Policy]
) -> dict[str, list[WorkerExit]]:
    """The unexpected exits of the pools' own slots, per pool."""
    programs = {policy.program: pool for pool, policy in policies.items()}
    found: dict[str, list[WorkerExit]] = {}
    for event in exits:
        slot = parse_slot(event.name)
        if event.expected or slot is None or slot.program not in programs:
            continue
        found.setdefault(programs[slot.program], []).append(event)
    return found
