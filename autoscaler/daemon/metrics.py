"""Optional Prometheus endpoint (prometheus-client), bound to localhost unless told otherwise.

prometheus-client is used rather than our own exposition code: it is the reference
implementation of the text format and well kept. A registry of our own (not the global one)
keeps two daemons in one process (the tests) from colliding.

What a tick could not see is NaN, not the last value and not 0: during a Redis outage a pool's
pending and oldest wait are unknown, and an alert rule must not read them as "all clear".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from autoscaler.decide.plan import Plan
from autoscaler.laravel.queue_sample import QueueSample
from autoscaler.observe.observation import Observation


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.pending = self._pool_gauge(
            "autoscaler_pending_jobs", "Jobs waiting (pending + due delayed)"
        )
        self.oldest_wait = self._pool_gauge(
            "autoscaler_oldest_wait_seconds", "Age of the oldest waiting job"
        )
        self.queue_pending = self._queue_gauge(
            "autoscaler_queue_pending_jobs", "Jobs waiting in one queue (pending + due delayed)"
        )
        self.queue_reserved = self._queue_gauge(
            "autoscaler_queue_reserved_jobs", "Jobs of one queue in a worker's hands"
        )
        self.queue_oldest_wait = self._queue_gauge(
            "autoscaler_queue_oldest_wait_seconds", "Age of one queue's oldest waiting job"
        )
        self._pool_queues: dict[str, tuple[str, ...]] = {}  # last seen, for NaN when unknown
        self.workers = self._pool_gauge("autoscaler_workers", "Worker slots running or starting")
        self.draining = self._pool_gauge(
            "autoscaler_workers_draining", "Worker slots finishing a job before exit"
        )
        self.memory = self._pool_gauge(
            "autoscaler_workers_memory_mb",
            "Resident memory of the RUNNING workers (each with its children), summed, MB",
        )
        self.memory_max = self._pool_gauge(
            "autoscaler_worker_memory_max_mb", "Resident memory of the largest RUNNING worker, MB"
        )
        self.recycles = Counter(
            "autoscaler_worker_recycles", "Workers replaced surge-first (recycled or restarted)",
            ["pool", "reason"], registry=self.registry,
        )  # fmt: skip
        self.desired = self._pool_gauge(
            "autoscaler_desired_workers", "Worker count decided this tick"
        )
        self.decisions = Counter(
            "autoscaler_scale_decisions", "Decisions that changed a pool's count",
            ["pool", "direction"], registry=self.registry,
        )  # fmt: skip
        self.worker_exits = Counter(
            "autoscaler_worker_exits", "Worker slot exits supervisord did not expect (a crash "
            "loop: --memory exits 12)", ["pool"], registry=self.registry,
        )  # fmt: skip
        self.errors = Counter(
            "autoscaler_errors", "Failed ticks by source", ["source"], registry=self.registry
        )
        self.tick_duration = Histogram(
            "autoscaler_tick_duration_seconds", "Time one tick took (observe, decide, act)",
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )  # fmt: skip
        self.memory_planned = Gauge(
            "autoscaler_memory_planned_mb", "Memory of the planned workers incl. draining",
            registry=self.registry,
        )  # fmt: skip
        self.memory_limit = Gauge(
            "autoscaler_memory_limit_mb", "Memory the workers may use", registry=self.registry
        )
        self._server: Any = None

    def _pool_gauge(self, name: str, documentation: str) -> Gauge:
        return Gauge(name, documentation, ["pool"], registry=self.registry)

    def _queue_gauge(self, name: str, documentation: str) -> Gauge:
        return Gauge(name, documentation, ["pool", "queue"], registry=self.registry)

    def serve(self, *, host: str, port: int) -> None:
        self._server, _thread = start_http_server(port, addr=host, registry=self.registry)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def record(self, observation: Observation, plan: Plan, previous: Mapping[str, int]) -> None:
        for pool, obs in observation.pools.items():
            waiting, age = obs.waiting, obs.oldest_wait_s
            if waiting is None:  # Redis not read: unknown
                self.pending.labels(pool).set(math.nan)
                self.oldest_wait.labels(pool).set(math.nan)
            else:
                self.pending.labels(pool).set(waiting)
                self.oldest_wait.labels(pool).set(age if age is not None else 0.0)  # 0: empty
            self._record_queues(pool, obs.queues)
            workers = obs.workers
            self.workers.labels(pool).set(math.nan if workers is None else workers.current)
            self.draining.labels(pool).set(math.nan if workers is None else workers.draining)
            memory = obs.memory
            self.memory.labels(pool).set(math.nan if memory is None else memory.total_mb)
            self.memory_max.labels(pool).set(math.nan if memory is None else memory.max_mb)
        for pool, decision in plan.decisions.items():
            self.desired.labels(pool).set(decision.desired)
            before = previous.get(pool)
            if before is not None and before != decision.desired:
                direction = "up" if decision.desired > before else "down"
                self.decisions.labels(pool, direction).inc()
        self.memory_planned.set(plan.memory_planned_mb)
        self.memory_limit.set(plan.memory_limit_mb)

    def _record_queues(self, pool: str, queues: tuple[QueueSample, ...] | None) -> None:
        if queues is None:
            for queue in self._pool_queues.get(pool, ()):
                for gauge in (self.queue_pending, self.queue_reserved, self.queue_oldest_wait):
                    gauge.labels(pool, queue).set(math.nan)
            return
        self._pool_queues[pool] = tuple(q.queue for q in queues)
        for q in queues:
            self.queue_pending.labels(pool, q.queue).set(q.pending + q.delayed_due)
            self.queue_reserved.labels(pool, q.queue).set(q.reserved)
            age = q.oldest_wait_s
            self.queue_oldest_wait.labels(pool, q.queue).set(age if age is not None else 0.0)
