"""Split each pool's fleet-wide count over the live hosts (pure).

Rules, in order of precedence:
1. A host never gets more than fits its memory (its limit minus what its draining workers
   still hold); a pool whose worker does not fit a host goes elsewhere. Draining workers are
   about to exit, so they hold back only what a host would be given, never what it runs
   (as in decide/budget.py: cutting for them made counts flap while they drained).
2. Move as few workers as possible: start from what each host runs now; shrink a pool on the
   hosts that run the most of it, grow it on those that run the least.
3. Spread for availability: then, while one host runs two or more of a pool than another host
   that has room, move one worker over (this is the only step that moves workers, and it stops
   as soon as every pool is within one worker across the hosts with room).

Pools are placed in priority order (lower number first, as in policies), so under memory
pressure the important pools get the room. What does not fit anywhere is returned as unplaced.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, kw_only=True)
class HostRoom:
    """One live host as the split sees it."""

    host: str
    limit_mb: float  # memory its managed workers may hold (budget, reserve, MemAvailable)
    draining_mb: float = 0.0  # held by its workers that are finishing a job after SIGTERM
    current: Mapping[str, int] = field(default_factory=dict)  # pool -> slots it runs now


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolNeed:
    pool: str
    count: int  # fleet-wide, as decided
    memory_mb: float  # per worker
    priority: int = 100  # lower is placed first


@dataclass(slots=True, kw_only=True)
class Split:
    hosts: dict[str, dict[str, int]]  # host -> pool -> count
    unplaced: dict[str, int]  # pool -> workers that fit no host
    moved: int = 0  # workers moved between hosts for spread


def split(needs: Sequence[PoolNeed], hosts: Sequence[HostRoom]) -> Split:
    order = sorted(needs, key=lambda n: (n.priority, n.pool))
    names = sorted(h.host for h in hosts)
    room = {h.host: h.limit_mb - h.draining_mb for h in hosts}
    place: dict[str, dict[str, int]] = {
        h.host: {n.pool: max(0, int(h.current.get(n.pool, 0))) for n in order} for h in hosts
    }
    for host in names:
        for need in order:
            room[host] -= place[host][need.pool] * need.memory_mb

    # 1. Shrink pools that run more than decided: from the hosts with the most of them.
    for need in order:
        extra = sum(place[h][need.pool] for h in names) - need.count
        while extra > 0:
            host = max(names, key=lambda h: (place[h][need.pool], -room[h], h))
            place[host][need.pool] -= 1
            room[host] += need.memory_mb
            extra -= 1
    # 2. A host over its memory gives back workers of its least important pools (over it
    # without its draining workers: their memory is about to be freed).
    draining = {h.host: h.draining_mb for h in hosts}
    for host in names:
        for need in reversed(order):
            while room[host] + draining[host] < -1e-9 and place[host][need.pool] > 0:
                place[host][need.pool] -= 1
                room[host] += need.memory_mb
    # 3. Grow, then 4. spread; spreading can free room on a full host for a pool that found
    # none, so grow again while a spread moved workers and something is still unplaced.
    unplaced = _grow(order, names, place, room)
    moved = _spread(order, names, place, room)
    last = moved
    while unplaced and last:
        unplaced = _grow(order, names, place, room)
        last = _spread(order, names, place, room)
        moved += last
    return Split(hosts=place, unplaced=unplaced, moved=moved)


def _grow(
    order: list[PoolNeed],
    names: list[str],
    place: dict[str, dict[str, int]],
    room: dict[str, float],
) -> dict[str, int]:
    """Pools that run fewer than decided grow on the hosts with the fewest of them that have
    room (ties: the most free memory); returns what fits nowhere."""
    unplaced: dict[str, int] = {}
    for need in order:
        missing = need.count - sum(place[h][need.pool] for h in names)
        while missing > 0:
            fits = [h for h in names if room[h] + 1e-9 >= need.memory_mb]
            if not fits:
                unplaced[need.pool] = missing
                break
            host = min(fits, key=lambda h: (place[h][need.pool], -room[h], h))
            place[host][need.pool] += 1
            room[host] -= need.memory_mb
            missing -= 1
    return unplaced


def _spread(
    order: list[PoolNeed],
    names: list[str],
    place: dict[str, dict[str, int]],
    room: dict[str, float],
) -> int:
    """Move one worker at a time from the fullest host to the emptiest with room, while they
    differ by two or more; returns how many moved."""
    moved = 0
    for need in order:
        while True:
            source = max(names, key=lambda h: (place[h][need.pool], h), default=None)
            fits = [h for h in names if h != source and room[h] + 1e-9 >= need.memory_mb]
            if source is None or not fits:
                break
            target = min(fits, key=lambda h: (place[h][need.pool], -room[h], h))
            if place[source][need.pool] - place[target][need.pool] < 2:
                break
            place[source][need.pool] -= 1
            room[source] += need.memory_mb
            place[target][need.pool] += 1
            room[target] -= need.memory_mb
            moved += 1
    return moved
