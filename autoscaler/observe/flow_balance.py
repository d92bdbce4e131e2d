"""Each queue's arrivals by flow balance between ticks (what left plus what the queue grew),
and the per-queue flows `record` and `status` show."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autoscaler.laravel.queue_sample import QueueSample
from autoscaler.observe.estimators import arrivals as flow_arrivals
from autoscaler.observe.estimators import run_time_stats
from autoscaler.observe.observation import WorkSample, WorkSource
from autoscaler.observe.throughput import QueueTally, queued
from autoscaler.policy.model import Policy


@dataclass(slots=True, kw_only=True)
class QueueFlow:
    """One queue between two balance points: what arrived and what ran (for `record`)."""

    queue: str
    pool: str
    interval_s: float  # since the previous balance point (longer after a Redis outage)
    arrivals: float | None  # None: no balance yet (first tick, Redis unavailable)
    completions: float
    failures: float
    run_times_s: list[float]
    source: WorkSource

    @property
    def run_time_mean_s(self) -> float | None:
        return run_time_stats(np.asarray(self.run_times_s, dtype=np.float64))[0]

    @property
    def run_time_p95_s(self) -> float | None:
        return run_time_stats(np.asarray(self.run_times_s, dtype=np.float64))[1]


@dataclass(slots=True)
class _Balance:
    queued: int | None = None  # pending + reserved + due delayed at the last balance point
    at_s: float | None = None
    completions: float = 0.0  # completions counted since then, while Redis was unreadable
    # Jobs that left the queue before their completion was counted (the logs are read before
    # Redis: a job ending in between is in neither); the next completions include them.
    owed: float = 0.0


class FlowBalance:
    """Keeps each queue's last balance point across ticks (and Redis outages)."""

    def __init__(self) -> None:
        self._balances: dict[str, _Balance] = {}

    def balance(
        self,
        pool: str,
        policy: Policy,
        *,
        queues: tuple[QueueSample, ...] | None,
        tallies: dict[str, QueueTally] | None,
        work: WorkSample | None,
        now_s: float,
        flows: dict[str, QueueFlow],
    ) -> float | None:
        """Flow balance per queue; returns the pool's arrivals (None unless every queue's)."""
        by_queue = {q.queue: q for q in queues} if queues is not None else {}
        total: float | None = 0.0
        for name in policy.queues:
            balance = self._balances.setdefault(name, _Balance())
            sample = by_queue.get(name)
            tally = tallies.get(name) if tallies is not None else None
            arrived: float | None = None
            if tally is None:  # the work is unknown: restart the balance from here
                balance.queued = queued(sample) if sample is not None else None
                balance.at_s, balance.completions, balance.owed = now_s, 0.0, 0.0
            elif sample is None:  # Redis unreadable: keep the completions for later
                balance.completions += tally.completions
            elif balance.queued is None or balance.at_s is None:
                balance.queued, balance.at_s, balance.completions = queued(sample), now_s, 0.0
                balance.owed = 0.0
            else:
                done = balance.completions + tally.completions
                credit = min(balance.owed, done)  # already counted by the queue's drop
                after = queued(sample)
                arrived = flow_arrivals(done - credit, balance.queued, after)
                # A drop beyond the completions: owed once, by the next balance only (a job
                # deleted by hand must not shave completions for long).
                balance.owed = max(0.0, balance.queued - after - (done - credit))
                flows[name] = QueueFlow(
                    queue=name,
                    pool=pool,
                    interval_s=now_s - balance.at_s,
                    arrivals=arrived,
                    completions=done,
                    failures=tally.failures,
                    run_times_s=tally.run_times_s,
                    source=work.source if work is not None else "redis",
                )
                balance.queued, balance.at_s, balance.completions = queued(sample), now_s, 0.0
            total = None if total is None or arrived is None else total + arrived
        return total
