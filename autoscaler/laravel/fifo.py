"""How long the oldest job of a Laravel list has waited, from FIFO accounting (any version).

Laravel before 12.11 (without Horizon) writes no time into a payload, and the head job's id is
new at almost every tick while workers drain a backlog, so remembering when an id was first
seen says "0 s" for jobs that have waited minutes. This counts instead. Each tick gives the
list's length and its tail job; between two ticks the list lost `pops` jobs at the head and
gained `arrivals` at the tail, with `length_now = length_before - pops + arrivals`. Jobs are
kept as cohorts, one per tick: "n jobs arrived between t0 and t1". Pops take jobs from the
oldest cohort first, so the head job is known to belong to one cohort, and its arrival is
taken as the middle of that cohort's interval: the age is within half a tick of the truth
when pops are counted right.

Pops are not read from Redis; they come from what the tick knows:
- the tail job did not change: nothing was pushed behind it, so pops = the list's shrinkage,
  exactly (a list that grew with the same tail got jobs LPUSHed at its head);
- the tail changed: at least one job arrived; pops are the observer's count of jobs taken
  (`pops_hint`: completions in the workers' logs plus the change in reserved jobs), never
  fewer than the shrinkage.
Errors in the hint only move jobs between cohorts of neighbouring ticks, and a list that
empties forgets everything. Released and delayed jobs come back at the tail (Laravel moves
them there when a worker asks for a job) and count as arrivals then. The jobs already queued
when a queue is first seen have no known arrival: their cohort ends at the first tick and its
ages are lower bounds (source `first_seen`) until they are gone.

Across a daemon restart (`export` on stop, `restore` on start): a list whose tail job is the
same as when the daemon stopped lost only pops at its head meanwhile, so its cohorts are kept;
a list whose tail changed got an unknown number of pushes and pops, so it starts over with
`first_seen`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from autoscaler.laravel.queue_sample import WaitSource

MAX_COHORTS = 4096  # per queue: older neighbours are merged beyond this (about an hour at 1 s)
EXPORT_VERSION = 2


@dataclass(slots=True)
class Cohort:
    """`total` jobs that arrived in (start_s, end_s]; `left` of them are still waiting."""

    start_s: float | None  # None: queued before the queue was first seen at end_s
    end_s: float
    total: int
    left: int
    merged: bool = False  # several ticks' cohorts, merged to bound memory

    def head_arrival_s(self) -> float | None:
        """When the first job still waiting of this cohort arrived (None: before end_s).

        One tick's cohort: the middle of its interval, wrong by at most half of it however
        the jobs arrived inside it (a burst right after a tick, or a steady stream). A merged
        cohort spans many ticks: its jobs are taken as spread evenly, and the head's arrival
        interpolated by how many of them have gone."""
        if self.start_s is None:
            return None
        if not self.merged:
            return (self.start_s + self.end_s) / 2.0
        taken = self.total - self.left
        return self.start_s + (self.end_s - self.start_s) * (taken + 0.5) / self.total


@dataclass(slots=True)
class ListState:
    length: int
    tail: str | None
    at_s: float
    cohorts: deque[Cohort] = field(default_factory=deque)
    restored: bool = False  # from a previous daemon: the next tick checks the tail first

    def take(self, count: int) -> None:
        """Remove `count` jobs from the head."""
        while count > 0 and self.cohorts:
            first = self.cohorts[0]
            gone = min(count, first.left)
            first.left -= gone
            count -= gone
            if first.left == 0:
                self.cohorts.popleft()

    def waiting(self) -> int:
        return sum(c.left for c in self.cohorts)


@dataclass(frozen=True, slots=True)
class FifoAge:
    age_s: float | None
    source: WaitSource
    pops: int  # jobs taken from the head since the previous tick (0 on the first)
    arrivals: int  # jobs added since the previous tick (at the tail, or LPUSHed)


class FifoAges:
    """Per-queue cohorts between ticks; one `update` per queue per tick."""

    def __init__(self, *, max_cohorts: int = MAX_COHORTS) -> None:
        self._max_cohorts = max_cohorts
        self._lists: dict[str, ListState] = {}

    def update(
        self,
        queue: str,
        *,
        now_s: float,
        length: int,
        tail: str | None,
        pops_hint: float | None = None,
    ) -> FifoAge:
        """Account one tick of `queue`: its length and tail job now; the oldest job's age."""
        state = self._lists.get(queue)
        if state is not None and state.restored:
            state.restored = False
            if tail != state.tail:  # pushes and pops while no daemon watched: unknown
                state = None
                del self._lists[queue]
        if length <= 0:
            self._lists[queue] = ListState(length=0, tail=None, at_s=now_s)
            return FifoAge(None, "empty", pops=state.length if state else 0, arrivals=0)
        if state is None:
            state = self._lists[queue] = ListState(length=length, tail=tail, at_s=now_s)
            state.cohorts.append(Cohort(None, now_s, length, length))
            return FifoAge(0.0, "first_seen", pops=0, arrivals=0)
        pops, at_head, at_tail = _flows(state, length, tail, pops_hint)
        state.take(pops)
        if at_head:
            state.cohorts.appendleft(Cohort(state.at_s, now_s, at_head, at_head))
        if at_tail:
            state.cohorts.append(Cohort(state.at_s, now_s, at_tail, at_tail))
        _reconcile(state, length, now_s)
        self._merge_oldest(state)
        state.length, state.tail, state.at_s = length, tail, now_s
        return FifoAge(*_oldest(state, now_s), pops=pops, arrivals=at_head + at_tail)

    def forget(self, queue: str) -> None:
        """Drop a queue's accounting (its tick could not be read: the next one starts over)."""
        self._lists.pop(queue, None)

    def cohorts(self, queue: str) -> list[Cohort]:
        """A copy of the queue's cohorts, oldest first (for tests)."""
        state = self._lists.get(queue)
        return [] if state is None else [replace(c) for c in state.cohorts]

    def export(self) -> dict[str, Any]:
        """Every list's accounting as JSON-ready data (for a daemon restart)."""
        return {
            "version": EXPORT_VERSION,
            "queues": {
                queue: {
                    "length": state.length,
                    "tail": state.tail,
                    "at_s": state.at_s,
                    "cohorts": [
                        [c.start_s, c.end_s, c.total, c.left, c.merged] for c in state.cohorts
                    ],
                }
                for queue, state in self._lists.items()
            },
        }

    def restore(self, data: Any) -> int:
        """Take over `export`ed accounting; returns how many queues. Raises ValueError when
        the data is not an export of this version (the caller then starts fresh)."""
        if not isinstance(data, dict) or data.get("version") != EXPORT_VERSION:
            raise ValueError(f"not a version {EXPORT_VERSION} export of queue ages")
        lists: dict[str, ListState] = {}
        try:
            for queue, saved in data["queues"].items():
                state = ListState(
                    length=int(saved["length"]),
                    tail=None if saved["tail"] is None else str(saved["tail"]),
                    at_s=float(saved["at_s"]),
                    restored=True,
                )
                for start, end, total, left, merged in saved["cohorts"]:
                    start_s = None if start is None else float(start)
                    state.cohorts.append(
                        Cohort(start_s, float(end), int(total), int(left), merged=bool(merged))
                    )
                if state.waiting() != state.length or any(
                    c.left <= 0 or c.left > c.total for c in state.cohorts
                ):
                    raise ValueError(f"{queue}: cohorts do not add up to the list's length")
                lists[str(queue)] = state
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed queue ages: {exc!r}") from exc
        self._lists.update(lists)
        return len(lists)

    def _merge_oldest(self, state: ListState) -> None:
        while len(state.cohorts) > self._max_cohorts:
            first = state.cohorts.popleft()
            second = state.cohorts[0]
            state.cohorts[0] = Cohort(
                first.start_s,
                second.end_s,
                first.left + second.total,
                first.left + second.left,
                merged=True,
            )


def _flows(
    state: ListState, length: int, tail: str | None, pops_hint: float | None
) -> tuple[int, int, int]:
    """(pops, arrivals at the head, arrivals at the tail) since the previous tick."""
    shrink = max(0, state.length - length)
    hint = max(0, round(pops_hint)) if pops_hint is not None else 0
    if tail == state.tail:
        if length <= state.length:
            return shrink, 0, 0  # exact: nothing was pushed behind the same tail
        pops = min(hint, state.length)  # grew with the same tail: LPUSHed at the head
        return pops, length - state.length + pops, 0
    pops = min(max(shrink, hint, state.length - length + 1), state.length)
    return pops, 0, length - state.length + pops


def _reconcile(state: ListState, length: int, now_s: float) -> None:
    """Make the cohorts hold exactly `length` jobs (a wrong hint is corrected here)."""
    extra = state.waiting() - length
    if extra > 0:
        state.take(extra)
    elif extra < 0:
        state.cohorts.append(Cohort(state.at_s, now_s, -extra, -extra))


def _oldest(state: ListState, now_s: float) -> tuple[float | None, WaitSource]:
    """The oldest waiting job's age: the earliest head arrival over the cohorts (an LPUSHed
    cohort sits before older ones)."""
    if not state.cohorts:
        return None, "empty"
    arrivals = [c.head_arrival_s() for c in state.cohorts]
    if any(a is None for a in arrivals):
        first_seen = min(c.end_s for c in state.cohorts if c.start_s is None)
        return max(0.0, now_s - first_seen), "first_seen"
    return max(0.0, now_s - min(a for a in arrivals if a is not None)), "fifo"
