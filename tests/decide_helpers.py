"""Build policies and observations for decide tests, tersely."""

from __future__ import annotations

from typing import Any

from autoscaler.laravel.queue_sample import QueueSample
from autoscaler.observe.observation import Observation, PoolObservation, WorkSample
from autoscaler.policy.model import Policy
from autoscaler.supervisord.slots import WorkerCounts

BASE_POLICY: dict[str, Any] = {
    "queues": ["q"],
    "program": "w",
    "command": "php artisan queue:work redis --queue=q",
    "min_processes": 1,
    "static_processes": 2,
    "max_processes": 20,
    "memory_per_worker_mb": 100,
    "priority": 100,
    "expected_run_time_s": 2.0,
    "slo": {"wait_s": 30.0, "percentile": 95.0},
}


def make_policy(name: str = "q", **overrides: Any) -> Policy:
    data = {**BASE_POLICY, "queues": [name], "program": f"{name}-worker"}
    data["command"] = f"php artisan queue:work redis --queue={name}"
    strategy = overrides.pop("strategy", None)
    data.update(overrides)
    if strategy is not None:
        data["strategy"] = strategy if isinstance(strategy, dict) else {"name": strategy}
    return Policy.model_validate(data)


def pool_obs(
    name: str = "q",
    *,
    pending: int = 0,
    reserved: int = 0,
    delayed_due: int = 0,
    oldest_wait_s: float | None = None,
    running: int = 2,
    starting: int = 0,
    draining: int = 0,
    completions: int | None = 0,
    run_time_mean_s: float | None = None,
    queues_known: bool = True,
    workers_known: bool = True,
) -> PoolObservation:
    queues = (
        (
            QueueSample(
                queue=name,
                pending=pending,
                reserved=reserved,
                delayed=delayed_due,
                delayed_due=delayed_due,
                oldest_wait_s=oldest_wait_s,
                oldest_wait_source="createdAt" if oldest_wait_s is not None else "empty",
            ),
        )
        if queues_known
        else None
    )
    work = (
        None
        if completions is None
        else WorkSample(
            completions=completions,
            failures=0,
            run_time_mean_s=run_time_mean_s,
            run_time_p95_s=run_time_mean_s,
            busy_workers=float(reserved),
            source="logs",
        )
    )
    workers = (
        WorkerCounts(running=running, starting=starting, draining=draining)
        if workers_known
        else None
    )
    return PoolObservation(pool=name, queues=queues, work=work, workers=workers)


def observation(
    *pools: PoolObservation,
    at_s: float = 1000.0,
    interval_s: float = 5.0,
    memory_available_mb: float | None = None,
) -> Observation:
    return Observation(
        at_s=at_s,
        interval_s=interval_s,
        pools={p.pool: p for p in pools},
        memory_available_mb=memory_available_mb,
    )
