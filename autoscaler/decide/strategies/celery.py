"""Strategy `celery`: Celery's worker autoscaler, `celery worker --autoscale=max,min`
(celery/worker/autoscale.py, class Autoscaler).

Celery's rule, run every second and on every task message:

- qty = the requests the worker has reserved (state.reserved_requests): the tasks it runs
  plus the ones it prefetched and holds; here, the pool's jobs in flight plus the jobs
  waiting (a Laravel worker does not prefetch, so the waiting jobs stand for what Celery's
  prefetch would have pulled);
- up: when min(qty, max) > processes, grow to it at once and remember the time;
- down: when max(qty, min) < processes, shrink to it, but only if a scale-up happened and
  it was more than `keepalive` (AUTOSCALE_KEEPALIVE, 30 s) ago. Celery never shrinks before
  its first scale-up; its pool starts at min (components.Pool), so the first tick here
  treats the running count as that start: it may shrink to max(qty, min) at once.

The scale-down is not undone by a later shrink: `_last_scale_up` moves only on growth, so
after the keepalive every lower qty shrinks at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from autoscaler.decide.strategies.base import PoolTick


class CeleryMemory(NamedTuple):
    last_scale_up_s: float | None  # Autoscaler._last_scale_up (None: never grown)


def celery_scale(
    *,
    processes: int,
    qty: int,
    max_concurrency: int,
    min_concurrency: int,
    now_s: float,
    last_scale_up_s: float | None,
    keepalive_s: float,
) -> tuple[int, float | None]:
    """Autoscaler._maybe_scale: (new process count, new _last_scale_up)."""
    grow_to = min(qty, max_concurrency)
    if grow_to > processes:
        return grow_to, now_s
    shrink_to = max(qty, min_concurrency)
    if shrink_to < processes and (
        last_scale_up_s is not None and now_s - last_scale_up_s > keepalive_s
    ):
        return shrink_to, last_scale_up_s
    return processes, last_scale_up_s


def run(
    ticks: list[PoolTick], now_s: float, interval_s: float, shared: Mapping[str, Any]
) -> dict[str, Any]:
    for tick in ticks:
        const = tick.const
        qty = tick.waiting + tick.reserved
        memory = tick.memory
        # a first tick is the worker's start (at min): every scale-down is allowed now
        last_up = memory.last_scale_up_s if isinstance(memory, CeleryMemory) else float("-inf")
        count, last_up = celery_scale(
            processes=tick.previous,
            qty=qty,
            max_concurrency=const.max_processes,
            min_concurrency=const.min_processes,
            now_s=now_s,
            last_scale_up_s=last_up,
            keepalive_s=tick.policy.strategy.celery.keepalive_s,
        )
        tick.memory = CeleryMemory(last_scale_up_s=last_up)
        tick.wanted = count
        tick.reason = (
            f"celery: {qty} reserved, autoscale={const.max_processes},{const.min_processes}"
        )
        if count != tick.previous:
            tick.reason += f"; {tick.previous} -> {count}"
        else:
            tick.reason += f"; hold {count}"
    return {}
