"""What `autoscaler status` shows: an Observation (and decide's plan) as rows.

`pool_rows` follows the Status contract of docs/design.md: one object per pool with at least
pool, queues, pending, reserved, delayed, oldest_wait_s, workers, desired (counts summed over
the pool's queues, the largest oldest wait; null where unknown). `table_rows` is the same
per queue, for people.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from autoscaler.decide.plan import Plan
from autoscaler.laravel.queue_sample import QueueSample
from autoscaler.observe.flow_balance import QueueFlow
from autoscaler.observe.observation import Observation, PoolObservation
from autoscaler.policy.model import Policy
from autoscaler.table import render_table

UNKNOWN = "unknown"
TABLE_HEADERS = (
    "pool",
    "queue",
    "pending",
    "reserved",
    "delayed",
    "due",
    "oldest wait s",
    "wait from",
    "done/min",
    "mean run s",
    "workers",
    "desired",
    "memory MB",
    "max MB",
)


def throughput_per_min(pool: PoolObservation, interval_s: float) -> float | None:
    if pool.work is None or interval_s <= 0:
        return None
    return pool.work.completions * 60.0 / interval_s


def pool_rows(
    observation: Observation,
    policies: Mapping[str, Policy],
    plan: Plan | None,
    flows: Mapping[str, QueueFlow] | None = None,
) -> list[dict[str, Any]]:
    """One JSON object per pool (the Status contract, plus detail); `flows` (the Observer's,
    per queue) add each queue's own throughput and run times."""
    flows = flows or {}
    rows = []
    for pool, policy in policies.items():
        obs = observation.pools.get(pool)
        if obs is None:
            continue
        decision = plan.decisions.get(pool) if plan is not None else None
        work, workers = obs.work, obs.workers
        oldest = _oldest(obs.queues)
        rows.append(
            {
                "pool": pool,
                "queues": list(policy.queues),
                "pending": obs.pending,
                "reserved": obs.reserved,
                "delayed": obs.delayed,
                "delayed_due": obs.delayed_due,
                "oldest_wait_s": _round(obs.oldest_wait_s),
                "oldest_wait_source": oldest.oldest_wait_source if oldest else None,
                "workers": workers.running if workers is not None else None,
                "workers_starting": workers.starting if workers is not None else None,
                "workers_draining": workers.draining if workers is not None else None,
                "workers_failed": workers.failed if workers is not None else None,
                "workers_unmanaged": workers.unmanaged if workers is not None else None,
                # resident memory (worker + children) of the RUNNING workers, MB
                "memory_mb": _round(obs.memory.total_mb) if obs.memory is not None else None,
                "memory_mb_max": _round(obs.memory.max_mb) if obs.memory is not None else None,
                "desired": decision.desired if decision is not None else None,
                "desired_held": decision.held if decision is not None else None,
                "desired_reason": decision.reason if decision is not None else None,
                "paused": pool in observation.paused,
                "window_s": _round(observation.interval_s),
                "completions": work.completions if work is not None else None,
                "failures": work.failures if work is not None else None,
                "throughput_per_min": _round(throughput_per_min(obs, observation.interval_s)),
                "run_time_mean_s": _round(work.run_time_mean_s) if work is not None else None,
                "run_time_p95_s": _round(work.run_time_p95_s) if work is not None else None,
                "busy_workers": work.busy_workers if work is not None else None,
                "arrivals": _round(work.arrivals) if work is not None else None,
                "work_source": work.source if work is not None else None,
                "per_queue": [_queue_object(q, flows.get(q.queue)) for q in obs.queues or ()],
            }
        )
    return rows


def table_rows(
    observation: Observation,
    policies: Mapping[str, Policy],
    plan: Plan | None,
    flows: Mapping[str, QueueFlow] | None = None,
) -> list[list[object]]:
    """Rows under TABLE_HEADERS: one per queue; a pool of several queues adds an `(all)` row
    carrying the pool's totals and its throughput, workers and desired count (its queues'
    rows show their own throughput and run time from `flows`)."""
    flows = flows or {}
    rows: list[list[object]] = []
    for pool, policy in policies.items():
        obs = observation.pools.get(pool)
        if obs is None:
            continue
        decision = plan.decisions.get(pool) if plan is not None else None
        pool_cells: list[object] = [
            _one_decimal(throughput_per_min(obs, observation.interval_s)),
            _three_digits(obs.work.run_time_mean_s) if obs.work is not None else None,
            _workers_cell(obs),
            _desired_cell(decision.desired if decision is not None else None,
                          paused=pool in observation.paused),
            _one_decimal(obs.memory.total_mb) if obs.memory is not None else None,
            _one_decimal(obs.memory.max_mb) if obs.memory is not None else None,
        ]  # fmt: skip
        samples: list[QueueSample | None] = (
            list(obs.queues) if obs.queues is not None else [None] * len(policy.queues)
        )
        several = len(policy.queues) > 1
        for name, sample in zip(policy.queues, samples, strict=True):
            cells = _queue_cells(sample)
            own = [*_flow_cells(flows.get(name)), None, None, None, None] if several else pool_cells
            rows.append([pool, name, *cells, *own])
        if several:
            oldest = _oldest(obs.queues)
            totals: list[object] = (
                [
                    obs.pending,
                    obs.reserved,
                    obs.delayed,
                    obs.delayed_due,
                    _one_decimal(obs.oldest_wait_s),
                    oldest.oldest_wait_source if oldest else "empty",
                ]
                if obs.queues is not None
                else [UNKNOWN] * 6
            )
            rows.append([pool, "(all)", *totals, *pool_cells])
    return rows


def screen(
    observation: Observation,
    policies: Mapping[str, Policy],
    plan: Plan | None,
    flows: Mapping[str, QueueFlow] | None,
    *,
    prefix: str,
    note_lines: Sequence[str],
) -> str:
    """The text `status` (and each refresh of `status --watch`) prints: a title line, the
    table and the notes under it (docs/generate.py draws the docs' status screen with it)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(observation.at_s))
    lines = [
        f"autoscaler status at {stamp} (prefix {prefix})",
        render_table(TABLE_HEADERS, table_rows(observation, policies, plan, flows)),
        *(f"  {line}" for line in note_lines),
    ]
    return "\n".join(lines)


SLOT_HEADERS = ("pool", "slot", "pid", "state", "rss MB", "cpu %", "age s", "job in flight")


def slot_rows(observation: Observation) -> list[dict[str, Any]]:
    """`status --slots --format json`: every live worker slot's process."""
    return [
        {
            "pool": u.pool,
            "slot": u.slot,
            "pid": u.pid,
            "state": u.state,
            "rss_mb": _round(u.rss_mb),
            "cpu_percent": _round(u.cpu_percent),
            "age_s": _round(u.age_s),
            "children": u.children,
            "in_flight": u.in_flight,
        }
        for u in sorted(observation.slots, key=lambda u: (u.pool, u.slot))
    ]


def slot_table_rows(observation: Observation) -> list[list[object]]:
    """`status --slots`: the same as rows under SLOT_HEADERS."""
    return [
        [
            row["pool"],
            row["slot"],
            row["pid"],
            row["state"],
            _one_decimal(row["rss_mb"]),
            _one_decimal(row["cpu_percent"]),
            None if row["age_s"] is None else round(row["age_s"]),
            {True: "yes", False: "no", None: UNKNOWN}[row["in_flight"]],
        ]
        for row in slot_rows(observation)
    ]


def notes(observation: Observation, log_problems: Mapping[str, str]) -> list[str]:
    """Lines under the table: what is unknown or estimated, and why."""
    lines = []
    if observation.redis_error:
        lines.append(f"queues unknown: {observation.redis_error}")
    if observation.supervisor_error:
        lines.append(f"workers unknown: {observation.supervisor_error}")
    if observation.interval_s <= 0:
        lines.append("done/min and run times need a window: use --window S (or --watch)")
    else:
        lines.append(f"done/min and run times over the last {observation.interval_s:.1f} s")
    if observation.paused:
        names = sorted(observation.paused)
        lines.append(
            f"paused (workers stopped, queues kept): {', '.join(names)}; "
            f"`autoscaler resume {names[0]}` to resume"
        )
    estimated: dict[str, list[str]] = {}
    for pool, obs in observation.pools.items():
        if obs.work is not None and obs.work.source == "redis":
            estimated.setdefault(log_problems.get(pool, "logs unreadable"), []).append(pool)
    for why, pools in estimated.items():
        lines.append(f"done/min estimated from Redis for {', '.join(pools)}: {why}")
    for obs in observation.pools.values():
        for queue in obs.queues or ():
            if queue.age_problem is not None:
                lines.append(f"oldest wait of {queue.queue} unknown: {queue.age_problem}")
    return lines


def _workers_cell(obs: PoolObservation) -> object:
    workers = obs.workers
    if workers is None:
        return UNKNOWN
    if workers.unmanaged:
        return f"{workers.running} +{workers.unmanaged} unmanaged"
    return workers.running


def _desired_cell(desired: int | None, *, paused: bool) -> object:
    return f"{desired or 0} paused" if paused else desired


def _queue_cells(sample: QueueSample | None) -> list[object]:
    if sample is None:
        return [UNKNOWN] * 6
    return [
        sample.pending,
        sample.reserved,
        sample.delayed,
        sample.delayed_due,
        _one_decimal(sample.oldest_wait_s),
        sample.oldest_wait_source,
    ]


def _flow_cells(flow: QueueFlow | None) -> list[object]:
    """done/min and mean run time of one queue of a pool with several."""
    if flow is None or flow.interval_s <= 0:
        return [None, None]
    return [
        _one_decimal(flow.completions * 60.0 / flow.interval_s),
        _three_digits(flow.run_time_mean_s),
    ]


def _queue_object(sample: QueueSample, flow: QueueFlow | None) -> dict[str, Any]:
    rate = flow.completions * 60.0 / flow.interval_s if flow and flow.interval_s > 0 else None
    return {
        "queue": sample.queue,
        "pending": sample.pending,
        "reserved": sample.reserved,
        "delayed": sample.delayed,
        "delayed_due": sample.delayed_due,
        "oldest_wait_s": _round(sample.oldest_wait_s),
        "oldest_wait_source": sample.oldest_wait_source,
        "age_problem": sample.age_problem,
        "completions": _round(flow.completions) if flow is not None else None,
        "failures": _round(flow.failures) if flow is not None else None,
        "throughput_per_min": _round(rate),
        "run_time_mean_s": _round(flow.run_time_mean_s) if flow is not None else None,
        "run_time_p95_s": _round(flow.run_time_p95_s) if flow is not None else None,
    }


def _oldest(queues: tuple[QueueSample, ...] | None) -> QueueSample | None:
    known = [q for q in queues or () if q.oldest_wait_s is not None]
    return max(known, key=lambda q: q.oldest_wait_s or 0.0) if known else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _one_decimal(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _three_digits(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.3g}")
