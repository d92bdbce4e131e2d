"""The oracle: the cost reference. It knows every future arrival and run time.

At each tick, for each pool, it picks the fewest workers (at least min_processes) such that,
looking ahead, no job waits longer than the SLO wait; when even the pool's maximum cannot
manage that, it runs the maximum to clear the backlog as fast as it can. The look-ahead runs
the pool's own FIFO dispatch from its exact current state: the chosen count until the next
tick, then the maximum (workers added at the next tick take jobs after the start-up delay),
until the queue is empty again after those reinforcements (at most twice the SLO wait later).
Waiting to add workers until the look-ahead says they are needed, and removing them as soon
as it says they are not, is how it spends as few worker-seconds as the world's rules allow;
docs/simulator.md explains why this is a fair cost reference. It lives outside decide and
never goes through it.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left
from collections.abc import Mapping

from autoscaler.observation import Observation
from autoscaler.policy import Policy
from autoscaler.simulation import World
from autoscaler.world import PoolWorld


class OracleController:
    """Chooses counts by look-ahead over the world's future; respects min, max and budget."""

    def __init__(self, policies: Mapping[str, Policy], *, usable_memory_mb: float) -> None:
        self.policies = policies
        self.usable_memory_mb = usable_memory_mb
        at_min = sum(p.memory_at_min_mb for p in policies.values())
        # The most workers a pool could get: its max, and what the budget leaves it when
        # every other pool sits at its minimum.
        self.ceiling = {
            pool: max(
                p.min_processes,
                min(
                    p.max_processes,
                    p.min_processes
                    + int(max(0.0, usable_memory_mb - at_min) // p.memory_per_worker_mb),
                ),
            )
            for pool, p in policies.items()
        }

    def choose(self, observation: Observation, world: World) -> Mapping[str, int]:
        now = observation.at_s
        settings = world.settings
        wanted = {
            name: cheapest_count(
                world.pools[name],
                low=policy.min_processes,
                high=self.ceiling[name],
                now_s=now,
                interval_s=settings.interval_s,
                slo_wait_s=policy.slo.wait_s,
            )
            for name, policy in self.policies.items()
        }
        return self._fit_budget(wanted, world, now)

    def _fit_budget(self, wanted: dict[str, int], world: World, now_s: float) -> dict[str, int]:
        """Shrinking never needs memory; growth is granted by priority while memory lasts.
        A busy worker that is stopped keeps its memory until its job ends, so it counts."""
        pools = world.pools
        chosen = {name: min(count, pools[name].size) for name, count in wanted.items()}

        def held(name: str, count: int) -> float:
            pool = pools[name]
            return (count + len(pool.draining) + busy_among_stopped(pool, count, now_s)) * (
                pool.memory_per_worker_mb
            )

        used = sum(held(name, count) for name, count in chosen.items())
        order = sorted(chosen, key=lambda name: (self.policies[name].priority, name))
        for name in reversed(order):  # over budget before growing: cut the least important
            while used > self.usable_memory_mb and chosen[name] > self.policies[name].min_processes:
                before = held(name, chosen[name])
                chosen[name] -= 1
                used += held(name, chosen[name]) - before
        for name in order:
            while chosen[name] < wanted[name]:
                extra = held(name, chosen[name] + 1) - held(name, chosen[name])
                if used + extra > self.usable_memory_mb:
                    break
                chosen[name] += 1
                used += extra
        return chosen


def busy_among_stopped(pool: PoolWorld, count: int, now_s: float) -> int:
    """How many of the workers that scaling to `count` stops are busy (they will drain)."""
    stop = pool.size - count
    if stop <= 0:
        return 0
    newest = sorted(pool.heap, key=lambda entry: entry[1], reverse=True)[:stop]
    return sum(1 for free_at, slot in newest if free_at > now_s and slot not in pool.serving_from)


def cheapest_count(
    pool: PoolWorld, *, low: int, high: int, now_s: float, interval_s: float, slo_wait_s: float
) -> int:
    """The fewest workers in [low, high] whose look-ahead misses no job; `high` when even
    `high` misses some (then clearing the backlog fast is all that can be done)."""
    if not any(index < size for index, size in zip(pool.next_start, pool.sizes, strict=True)):
        return low  # nothing left to serve, ever

    def misses(count: int) -> int:
        return look_ahead_misses(
            pool, count, later=high, now_s=now_s, interval_s=interval_s, slo_wait_s=slo_wait_s
        )

    if low >= high or misses(low) == 0:
        return low
    if misses(high) > 0:
        return high
    lo, hi = low, high  # misses(lo) > 0, misses(hi) == 0
    while hi - lo > 1:
        middle = (lo + hi) // 2
        if misses(middle) == 0:
            hi = middle
        else:
            lo = middle
    return hi


def look_ahead_misses(
    pool: PoolWorld, count: int, *, later: int, now_s: float, interval_s: float, slo_wait_s: float
) -> int:
    """Jobs that would wait longer than `slo_wait_s` with `count` workers until the next tick
    and `later` from then on, dispatched exactly as the world dispatches them."""
    startup = pool.startup_s
    kept = sorted(pool.heap, key=lambda entry: entry[1])[:count]  # the oldest slots stay
    free = [free_at for free_at, _ in kept]
    free += [now_s + startup] * (count - len(kept))
    reinforced = now_s + interval_s + startup
    free += [reinforced] * max(0, later - count)
    if not free:
        return _waiting_past(pool, list(pool.next_start), math.inf, slo_wait_s)
    heapq.heapify(free)
    horizon = reinforced + 2.0 * slo_wait_s
    arrival, service, sizes = pool.arrival, pool.service, pool.sizes
    next_start = list(pool.next_start)
    queues = range(len(next_start))
    misses = 0
    while True:
        free_at = free[0]
        pick = later_pick = -1
        earliest = math.inf
        for queue in queues:
            index = next_start[queue]
            if index < sizes[queue]:
                arrives = arrival[queue][index]
                if arrives <= free_at:
                    pick = queue
                    break
                if arrives < earliest:
                    earliest, later_pick = arrives, queue
        if pick < 0:
            if later_pick < 0 or free_at >= reinforced:
                break  # nothing waits once the reinforcements are in: the tick's effect is over
            free_at, pick = earliest, later_pick
        if free_at >= horizon:
            break
        index = next_start[pick]
        if free_at - arrival[pick][index] > slo_wait_s:
            misses += 1
        next_start[pick] = index + 1
        heapq.heapreplace(free, free_at + service[pick][index])
    return misses + _waiting_past(pool, next_start, min(free[0], horizon), slo_wait_s)


def _waiting_past(pool: PoolWorld, next_start: list[int], at_s: float, slo_wait_s: float) -> int:
    """Jobs not started by `at_s` that have waited longer than the SLO by then."""
    if math.isinf(at_s):
        return sum(size - index for index, size in zip(next_start, pool.sizes, strict=True))
    late = 0
    for queue, index in enumerate(next_start):
        cutoff = bisect_left(pool.arrival[queue], at_s - slo_wait_s)
        late += max(0, cutoff - index)
    return late
