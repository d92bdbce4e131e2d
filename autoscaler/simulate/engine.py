"""Run one strategy over one trace: tick the world, observe, decide, apply; keep the results.

Every strategy but the oracle goes through `autoscaler.decide.core.decide`, the function the
daemon calls, fed the Observation the world builds at each tick. The oracle (oracle.py) is
the simulator's own cost reference and chooses counts by looking at the future.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from autoscaler.decide.core import decide
from autoscaler.decide.plan import ControllerState, MemoryBudget
from autoscaler.observe.observation import Observation, PoolObservation
from autoscaler.policy.model import Policy
from autoscaler.simulate.obs_builders import observation
from autoscaler.simulate.wait_stats import job_waits, max_backlog
from autoscaler.simulate.world import PoolWorld
from autoscaler.traces.loader import Trace

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Jobs not started this long after the trace's end are counted as unserved (and missed).
DRAIN_LIMIT_S = 6 * 3600.0


@dataclass(frozen=True, slots=True, kw_only=True)
class WorldSettings:
    """How the simulated world behaves and how often the controller acts."""

    interval_s: float = 5.0  # seconds between two decisions (AUTOSCALER_INTERVAL_S)
    startup_s: float = 0.26  # seconds from adding a worker until it takes jobs
    memory_budget_mb: float = 4608.0
    memory_reserve_mb: float = 0.0
    drain_limit_s: float = DRAIN_LIMIT_S

    @property
    def budget(self) -> MemoryBudget:
        return MemoryBudget(budget_mb=self.memory_budget_mb, reserve_mb=self.memory_reserve_mb)

    @property
    def usable_memory_mb(self) -> float:
        return max(0.0, self.memory_budget_mb - self.memory_reserve_mb)


class World:
    """Every pool of the policies, fed the trace's jobs of the queues it consumes."""

    def __init__(
        self, trace: Trace, policies: Mapping[str, Policy], *, settings: WorldSettings
    ) -> None:
        self.settings = settings
        self.pools: dict[str, PoolWorld] = {
            pool: PoolWorld(
                name=pool,
                queues=policy.queues,
                jobs=[trace.queues.get(queue) for queue in policy.queues],
                workers=policy.static_processes,
                startup_s=settings.startup_s,
                startsecs_s=float(policy.supervisor.startsecs),
                memory_per_worker_mb=policy.memory_per_worker_mb,
            )
            for pool, policy in policies.items()
        }
        self._applied: dict[str, int] = {}

    def observe(self, now_s: float) -> Observation:
        """Move every pool to `now_s` and return what the sampler would see there."""
        interval = self.settings.interval_s
        seen: dict[str, PoolObservation] = {}
        for name, pool in self.pools.items():
            seen[name] = pool.look(now_s)
        # The daemon's first observation covers no interval yet.
        first = now_s == 0.0
        return observation(now_s, 0.0 if first else interval, seen)

    def apply(self, counts: Mapping[str, int], now_s: float) -> bool:
        """Scale every pool to its count; True when any worker was added or stopped."""
        if counts == self._applied:
            return False  # the same counts as last tick: every pool already has them
        changed = False
        for name, pool in self.pools.items():
            wanted = counts.get(name, len(pool.heap))
            if wanted != len(pool.heap):
                pool.scale_to(wanted, now_s)
                changed = True
        self._applied = dict(counts)
        return changed

    def memory_mb(self) -> float:
        return sum(pool.memory_mb() for pool in self.pools.values())

    def done(self) -> bool:
        return all(pool.done() for pool in self.pools.values())


class Controller(Protocol):
    """Chooses every pool's worker count at a tick."""

    def choose(self, observation: Observation, world: World) -> Mapping[str, int]: ...


class DecideController:
    """The production decision path: `decide` with the policies' strategy, state kept
    between ticks exactly as the daemon keeps it."""

    def __init__(self, policies: Mapping[str, Policy], budget: MemoryBudget) -> None:
        self.policies = policies
        self.budget = budget
        self.state = ControllerState()

    def choose(self, observation: Observation, world: World) -> Mapping[str, int]:
        del world  # decide sees the observation only
        plan, self.state = decide(
            observation, self.policies, self.state, now_s=observation.at_s, budget=self.budget
        )
        return plan.counts()


@dataclass(slots=True, kw_only=True)
class PoolResult:
    jobs: int
    waits_s: FloatArray  # every job's wait (unserved ones: until the end)
    unserved: int
    worker_seconds: float
    scale_events: int
    max_backlog: int
    reversals: int = 0  # A -> B -> A within world.REVERSAL_WINDOW_S
    slo_wait_s: float
    slo_percentile: float
    peak_memory_mb: float = 0.0  # the pool's own peak (running, starting and draining workers)


@dataclass(slots=True, kw_only=True)
class Series:
    """Per tick and pool, for pictures: waiting jobs, workers, oldest wait (NaN: none)."""

    times_s: FloatArray
    backlog: dict[str, IntArray] = field(default_factory=dict)
    workers: dict[str, IntArray] = field(default_factory=dict)
    oldest_wait_s: dict[str, FloatArray] = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class SimulationResult:
    strategy: str
    trace: str
    duration_s: float  # the trace's
    end_s: float  # when the last job finished (or the drain limit)
    pools: dict[str, PoolResult]
    peak_memory_mb: float
    memory_budget_mb: float
    series: Series
    # The most jobs waiting at once over all pools together (not the sum of the pools' peaks).
    max_backlog: int = 0


def simulate(
    trace: Trace,
    policies: Mapping[str, Policy],
    controller: Controller,
    *,
    strategy: str,
    settings: WorldSettings,
    keep_series: bool = True,
) -> SimulationResult:
    """Tick from 0 until the trace is over and every job has finished."""
    world = World(trace, policies, settings=settings)
    names = list(world.pools)
    interval = settings.interval_s
    limit = trace.duration_s + settings.drain_limit_s
    times: list[float] = []
    backlog: dict[str, list[int]] = {name: [] for name in names}
    workers: dict[str, list[int]] = {name: [] for name in names}
    oldest: dict[str, list[float]] = {name: [] for name in names}
    peak = 0.0
    pool_peaks = dict.fromkeys(names, 0.0)
    tick = 0
    while True:
        now = tick * interval  # multiplied, not summed: no drift over a million ticks
        observation = world.observe(now)
        # Memory only grows when workers are added (draining ones only leave): measure then.
        if world.apply(controller.choose(observation, world), now) or tick == 0:
            peak = max(peak, world.memory_mb())
            for name, pool in world.pools.items():
                pool_peaks[name] = max(pool_peaks[name], pool.memory_mb())
        if keep_series:
            times.append(now)
            for name in names:
                seen = observation.pools[name]
                backlog[name].append(seen.waiting or 0)
                workers[name].append(world.pools[name].size)
                wait = seen.oldest_wait_s
                oldest[name].append(wait if wait is not None else float("nan"))
        if now >= trace.duration_s:
            for pool in world.pools.values():
                if pool.cost_end_s == math.inf and pool.done():
                    # Its cost ends with its own last job, whatever other pools still do.
                    pool.cost_end_s = max(trace.duration_s, pool.last_finish_s)
            if world.done() or now >= limit:
                break
        tick += 1
    last_finish = max((pool.last_finish_s for pool in world.pools.values()), default=0.0)
    end = min(max(trace.duration_s, last_finish), max(now, trace.duration_s))
    results: dict[str, PoolResult] = {}
    for name, pool in world.pools.items():
        # A pool's cost ends when its own last job does, not when another pool's does.
        pool_end = min(max(trace.duration_s, pool.last_finish_s), end)
        pool.finish(pool_end)
        waits, unserved = job_waits(pool.arrival, pool.starts, end_s=pool_end)
        policy = policies[name]
        results[name] = PoolResult(
            jobs=int(waits.shape[0]),
            waits_s=waits,
            unserved=unserved,
            worker_seconds=pool.worker_seconds,
            scale_events=pool.scale_events,
            reversals=pool.reversals,
            max_backlog=max_backlog(pool.arrival, pool.starts),
            slo_wait_s=policy.slo.wait_s,
            slo_percentile=policy.slo.percentile,
            peak_memory_mb=pool_peaks[name],
        )
    every_queue = list(world.pools.values())
    total_backlog = max_backlog(
        [queue for pool in every_queue for queue in pool.arrival],
        [queue for pool in every_queue for queue in pool.starts],
    )
    series = Series(
        times_s=np.asarray(times, dtype=np.float64),
        backlog={n: np.asarray(v, dtype=np.int64) for n, v in backlog.items()},
        workers={n: np.asarray(v, dtype=np.int64) for n, v in workers.items()},
        oldest_wait_s={n: np.asarray(v, dtype=np.float64) for n, v in oldest.items()},
    )
    return SimulationResult(
        strategy=strategy,
        trace=trace.name,
        duration_s=trace.duration_s,
        end_s=end,
        pools=results,
        peak_memory_mb=peak,
        memory_budget_mb=settings.usable_memory_mb,
        series=series,
        max_backlog=total_backlog,
    )
