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

from autoscaler.observe.observation import Observation
from autoscaler.policy.model import Policy
from autoscaler.simulate.engine import World
from autoscaler.simulate.world import PoolWorld


class OracleController:
    """Chooses counts by look-ahead over the world's future; respects min, max and budget."""

    def __init__(
        self,
        policies: Mapping[str, Policy],
        *,
        usable_memory_mb: float,
        weights: Mapping[str, float] | None = None,
    ) -> None:
        self.policies = policies
        self.weights = dict(weights or {})  # multiplies a pool's gain in _shares
        self.usable_memory_mb = usable_memory_mb
        self.bound = False  # set once the budget could not hold every pool's want
        at_min = sum(p.memory_at_min_mb for p in policies.values())
        self._room_mb = usable_memory_mb - at_min
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
        wanted = self._wants(world, observation.at_s, reinforced=True)
        # Under a budget that binds, the reinforcements the look-ahead counts on may never
        # come (every pool counts on the same free memory): then each pool wants the count
        # that keeps its jobs on time by itself, and _shares splits the budget among those.
        # (Counting on them, all_busy's pools each chose a count too small, and 30-48 % of
        # three pools' jobs were late.)
        alone = self._wants(world, observation.at_s, reinforced=False)
        if self._extra_mb(alone) > self._room_mb + 1e-9:
            self.bound = True
            wanted = alone
        return self._fit_budget(wanted, world, observation.at_s)

    def _wants(self, world: World, now_s: float, *, reinforced: bool) -> dict[str, int]:
        """Each pool's cheapest count; counting on reinforcements at the next tick as far
        as memory is free now, or (`reinforced` false) on none."""
        return {
            name: cheapest_count(
                world.pools[name],
                low=policy.min_processes,
                high=self.ceiling[name],
                fits=self._fits(name, world) if reinforced else 0,
                now_s=now_s,
                interval_s=world.settings.interval_s,
                slo_wait_s=policy.slo.wait_s,
            )
            for name, policy in self.policies.items()
        }

    def _extra_mb(self, counts: Mapping[str, int]) -> float:
        """Memory `counts` take above every pool's minimum."""
        return sum(
            (counts[name] - policy.min_processes) * policy.memory_per_worker_mb
            for name, policy in self.policies.items()
        )

    def _shares(self, wanted: dict[str, int], world: World, now_s: float) -> dict[str, int]:
        """Each pool's share of the budget. When every want fits, the wants. Otherwise,
        from every pool's minimum, one worker at a time to the pool where it saves the
        largest share of that pool's jobs from being late (the look-ahead's misses over
        the pool's jobs in the whole trace, per MB), never beyond a pool's want; a worker
        that saves nothing anywhere goes by priority. A pool's SLO is a share of its own
        jobs, so a late job of a small pool weighs more than one of a busy pool; the old
        rule (by priority alone) let the first pools take every worker while the later
        ones, which a few workers would have kept on time, missed their SLOs."""
        policies = self.policies
        order = sorted(wanted, key=lambda name: (policies[name].priority, name))
        room = self._room_mb
        if self._extra_mb(wanted) <= room + 1e-9:
            return dict(wanted)
        share = {name: policies[name].min_processes for name in order}
        interval = world.settings.interval_s
        weight = {
            name: self.weights.get(name, 1.0) / max(1, sum(world.pools[name].sizes))
            for name in order
        }
        misses: dict[tuple[str, int], int] = {}

        def late(name: str, count: int) -> int:
            key = (name, count)
            if key not in misses:
                misses[key] = look_ahead_misses(
                    world.pools[name],
                    count,
                    later=count,
                    now_s=now_s,
                    interval_s=interval,
                    slo_wait_s=policies[name].slo.wait_s,
                )
            return misses[key]

        while True:
            best: tuple[float, int, str] | None = None
            for rank, name in enumerate(order):
                policy = policies[name]
                if share[name] >= wanted[name] or policy.memory_per_worker_mb > room + 1e-9:
                    continue
                saved = late(name, share[name]) - late(name, share[name] + 1)
                gain = saved * weight[name] / policy.memory_per_worker_mb
                candidate = (gain, -rank, name)
                if best is None or candidate > best:
                    best = candidate
            if best is None:
                return share
            name = best[2]
            share[name] += 1
            room -= policies[name].memory_per_worker_mb

    def _fits(self, name: str, world: World) -> int:
        """How many workers of the pool the memory could hold at the next tick: what neither
        the pools at least as important (as they hold it now) nor the less important ones
        take (their minimum, or their busy workers: stopped, those drain for a while). The
        look-ahead counts on no more reinforcements than this."""
        policy = self.policies[name]
        taken = 0.0
        for other, pool in world.pools.items():
            if other == name:
                taken += len(pool.draining) * pool.memory_per_worker_mb
                continue
            held = (pool.size + len(pool.draining)) * pool.memory_per_worker_mb
            if self.policies[other].priority <= policy.priority:
                taken += held
            else:
                taken += max(
                    self.policies[other].memory_at_min_mb,
                    len(pool.in_flight) * pool.memory_per_worker_mb,  # busy or draining
                )
        return int(max(0.0, self.usable_memory_mb - taken) // policy.memory_per_worker_mb)

    def _fit_budget(self, wanted: dict[str, int], world: World, now_s: float) -> dict[str, int]:
        """Share the budget (`_shares`): every pool keeps its minimum. A pool above its
        share shrinks now; a pool below it grows as far as the memory held right now allows
        (a stopped busy worker keeps its memory until its job ends, so growth may wait),
        the more important pools first."""
        pools, policies = world.pools, self.policies
        order = sorted(wanted, key=lambda name: (policies[name].priority, name))
        share = self._shares(wanted, world, now_s)
        chosen = {name: min(share[name], pools[name].size) for name in order}

        def held(name: str, count: int) -> float:
            pool = pools[name]
            return (count + len(pool.draining) + busy_among_stopped(pool, count, now_s)) * (
                pool.memory_per_worker_mb
            )

        used = sum(held(name, count) for name, count in chosen.items())
        for name in order:
            while chosen[name] < share[name]:
                extra_mb = held(name, chosen[name] + 1) - held(name, chosen[name])
                if used + extra_mb > self.usable_memory_mb:
                    break
                chosen[name] += 1
                used += extra_mb
        return chosen


def busy_among_stopped(pool: PoolWorld, count: int, now_s: float) -> int:
    """How many of the workers that scaling to `count` stops are busy (they will drain)."""
    stop = pool.size - count
    if stop <= 0:
        return 0
    newest = sorted(pool.heap, key=lambda entry: entry[1], reverse=True)[:stop]
    return sum(1 for free_at, slot in newest if free_at > now_s and slot not in pool.serving_from)


def cheapest_count(
    pool: PoolWorld,
    *,
    low: int,
    high: int,
    fits: int,
    now_s: float,
    interval_s: float,
    slo_wait_s: float,
) -> int:
    """The fewest workers in [low, high] whose look-ahead misses no job; `high` when even
    `high` misses some (then clearing the backlog fast is all that can be done).

    The look-ahead reinforces the pool at the next tick up to `high`, and no further than
    `fits` workers' memory, less what the workers stopped now still hold while they finish
    their jobs (so shrinking a busy pool to grow it again a tick later looks as costly as
    it is under a tight budget)."""
    if not any(index < size for index, size in zip(pool.next_start, pool.sizes, strict=True)):
        return low  # nothing left to serve, ever
    high = max(low, high)

    def misses(count: int) -> int:
        later = max(count, min(high, fits - busy_among_stopped(pool, count, now_s)))
        return look_ahead_misses(
            pool, count, later=later, now_s=now_s, interval_s=interval_s, slo_wait_s=slo_wait_s
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
    order = pool.stop_order(now_s)  # as the world stops them: the last ones stay
    kept = order[len(order) - count :] if count < len(order) else order
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
        # The queue the world's worker pops next (PoolWorld._advance_priority), inline: a
        # function shared by both made the oracle 6 % slower (a call per job looked at).
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
