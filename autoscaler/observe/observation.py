"""What one tick observed: the numbers the sampler (or the simulated world) hands to decide.

These are plain numbers, never decisions. The same types come from Redis and Supervisor in
the daemon and from the world model in the simulator, so decide cannot tell them apart.

The classes are slotted dataclasses without `frozen`: the simulator builds several per pool
per tick, and frozen dataclasses cost twice as much to create. Treat them as immutable;
decide never mutates its inputs (a test checks it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from autoscaler.laravel.queue_sample import QueueSample
from autoscaler.observe.process_memory import SlotUsage
from autoscaler.supervisord.slots import WorkerCounts

# Where completions and run times came from: the workers' log lines, or Redis flow balance.
WorkSource = Literal["logs", "redis"]


@dataclass(slots=True, kw_only=True)
class WorkSample:
    """What a pool's workers did since the previous tick."""

    completions: int  # jobs finished (successful or failed)
    failures: int
    run_time_mean_s: float | None  # None when nothing finished
    run_time_p95_s: float | None
    busy_workers: float | None  # workers with a job in hand now; None when unknown
    source: WorkSource
    # Jobs that arrived during the interval by flow balance (completions + change in pending,
    # reserved and due delayed); None when unknown (first tick, Redis unavailable).
    arrivals: float | None = None


@dataclass(slots=True, kw_only=True)
class PoolMemory:
    """A pool's workers' resident memory (worker + children) as measured this tick, in MB."""

    total_mb: float  # summed over its RUNNING workers
    max_mb: float  # its largest RUNNING worker
    live_mb: float  # every process it holds: running, starting and draining
    measured: int  # RUNNING workers measured
    # The largest worker over the policy's window ([memory] window_s) and the ticks that
    # window holds: what the `measured` memory size plans with once enough is measured.
    high_water_mb: float | None = None
    samples: int = 0


@dataclass(slots=True, kw_only=True)
class PoolObservation:
    """One pool: its queues (Redis), its work (logs or Redis) and its workers (Supervisor).

    A part is None when its source was unavailable; decide holds the pool's count then.
    """

    pool: str
    queues: tuple[QueueSample, ...] | None
    work: WorkSample | None
    workers: WorkerCounts | None
    memory: PoolMemory | None = None  # None: not measured (supervisord down, the simulator)

    @property
    def pending(self) -> int | None:
        return None if self.queues is None else sum(q.pending for q in self.queues)

    @property
    def reserved(self) -> int | None:
        return None if self.queues is None else sum(q.reserved for q in self.queues)

    @property
    def delayed(self) -> int | None:
        return None if self.queues is None else sum(q.delayed for q in self.queues)

    @property
    def delayed_due(self) -> int | None:
        return None if self.queues is None else sum(q.delayed_due for q in self.queues)

    @property
    def waiting(self) -> int | None:
        """Jobs a free worker could take now: pending plus due delayed."""
        if self.queues is None:
            return None
        return sum(q.pending + q.delayed_due for q in self.queues)

    @property
    def oldest_wait_s(self) -> float | None:
        """The largest head-job age over the pool's queues (None if none is known)."""
        if self.queues is None:
            return None
        ages = [q.oldest_wait_s for q in self.queues if q.oldest_wait_s is not None]
        return max(ages) if ages else None


@dataclass(slots=True, kw_only=True)
class Observation:
    """Everything one tick saw, for every pool."""

    at_s: float  # unix time of the sample (trace time in the simulator)
    interval_s: float  # seconds the work counts cover
    pools: Mapping[str, PoolObservation]
    redis_error: str | None = None  # why Redis could not be read, if it could not
    supervisor_error: str | None = None
    memory_available_mb: float | None = None  # MemAvailable; None when not measured
    slots: tuple[SlotUsage, ...] = ()  # each live worker's process (status --slots, recycling)
    # Pools an operator paused (`autoscaler pause`): decide keeps them at zero workers.
    paused: frozenset[str] = frozenset()
