"""A host's heartbeat: who it is, its memory, and what it runs of each pool.

Written every tick (a HASH field for status, plus a key with a TTL of a few ticks for
liveness); the leader sums the live ones into the fleet's observation (combine.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from autoscaler.decide.plan import MemoryBudget
from autoscaler.observe.observation import Observation, WorkSample
from autoscaler.supervisord.slots import WorkerCounts


@dataclass(slots=True, kw_only=True)
class PoolReport:
    workers: WorkerCounts | None  # None: the host's supervisord could not be read
    work: WorkSample | None
    assigned: int | None = None  # the count of the assignment the host applies


@dataclass(slots=True, kw_only=True)
class Heartbeat:
    host: str
    at_s: float
    interval_s: float
    memory_budget_mb: float
    memory_reserve_mb: float
    memory_available_mb: float | None  # MemAvailable
    epoch_seen: int  # the newest leader epoch this host has seen
    pools: dict[str, PoolReport] = field(default_factory=dict)

    def limit_mb(self, memory_by_pool: dict[str, float]) -> float:
        """What this host's managed workers may hold: decide's own rule per host."""
        in_use = sum(
            (r.workers.running + r.workers.starting + r.workers.draining)
            * memory_by_pool.get(pool, 0.0)
            for pool, r in self.pools.items()
            if r.workers is not None
        )
        budget = MemoryBudget(budget_mb=self.memory_budget_mb, reserve_mb=self.memory_reserve_mb)
        return budget.limit_mb(available_mb=self.memory_available_mb, managed_in_use_mb=in_use)

    def to_json(self) -> str:
        return json.dumps(
            {
                "host": self.host,
                "at_s": self.at_s,
                "interval_s": self.interval_s,
                "memory_budget_mb": self.memory_budget_mb,
                "memory_reserve_mb": self.memory_reserve_mb,
                "memory_available_mb": self.memory_available_mb,
                "epoch_seen": self.epoch_seen,
                "pools": {
                    pool: {
                        "workers": _counts_dict(r.workers),
                        "work": _work_dict(r.work),
                        "assigned": r.assigned,
                    }
                    for pool, r in self.pools.items()
                },
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Heartbeat:
        data = json.loads(text)
        return cls(
            host=str(data["host"]),
            at_s=float(data["at_s"]),
            interval_s=float(data["interval_s"]),
            memory_budget_mb=float(data["memory_budget_mb"]),
            memory_reserve_mb=float(data.get("memory_reserve_mb", 0.0)),
            memory_available_mb=_opt_float(data.get("memory_available_mb")),
            epoch_seen=int(data.get("epoch_seen", 0)),
            pools={
                pool: PoolReport(
                    workers=None if p.get("workers") is None else WorkerCounts(**p["workers"]),
                    work=None if p.get("work") is None else WorkSample(**p["work"]),
                    assigned=p.get("assigned"),
                )
                for pool, p in data.get("pools", {}).items()
            },
        )


def heartbeat_of(
    observation: Observation,
    *,
    host: str,
    budget: MemoryBudget,
    epoch_seen: int,
    assigned: dict[str, int] | None,
) -> Heartbeat:
    return Heartbeat(
        host=host,
        at_s=observation.at_s,
        interval_s=observation.interval_s,
        memory_budget_mb=budget.budget_mb,
        memory_reserve_mb=budget.reserve_mb,
        memory_available_mb=observation.memory_available_mb,
        epoch_seen=epoch_seen,
        pools={
            pool: PoolReport(
                workers=obs.workers,
                work=obs.work,
                assigned=None if assigned is None else assigned.get(pool),
            )
            for pool, obs in observation.pools.items()
        },
    )


def _counts_dict(counts: WorkerCounts | None) -> dict[str, int] | None:
    if counts is None:
        return None
    return {
        "running": counts.running,
        "starting": counts.starting,
        "draining": counts.draining,
        "failed": counts.failed,
        "crashing": counts.crashing,
    }


def _work_dict(work: WorkSample | None) -> dict[str, Any] | None:
    if work is None:
        return None
    return {
        "completions": work.completions,
        "failures": work.failures,
        "run_time_mean_s": work.run_time_mean_s,
        "run_time_p95_s": work.run_time_p95_s,
        "busy_workers": work.busy_workers,
        "source": work.source,
        "arrivals": work.arrivals,
    }


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
