"""Which worker of a pool to recycle: pure, from the slots' measured memory and age.

A worker past `[lifecycle] max_rss_mb` goes first (the largest), then one past `max_age_s`
(the oldest). Only RUNNING workers are candidates: one starting has not leaked yet, one
stopping is on its way out. The daemon asks for the replacement (act/retire.py does it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from autoscaler.observe.process_memory import SlotUsage
from autoscaler.policy.lifecycle import Lifecycle


@dataclass(frozen=True, slots=True, kw_only=True)
class RecycleChoice:
    slot: str
    pid: int
    reason: str


def recycle_candidate(
    slots: Iterable[SlotUsage], pool: str, lifecycle: Lifecycle
) -> RecycleChoice | None:
    running = [u for u in slots if u.pool == pool and u.state == "RUNNING"]
    checks: tuple[tuple[float | None, Callable[[SlotUsage], float | None], str], ...] = (
        (lifecycle.max_rss_mb, lambda u: u.rss_mb, "RSS {:.0f} MB > max_rss_mb {:g}"),
        (lifecycle.max_age_s, lambda u: u.age_s, "age {:.0f}s > max_age_s {:g}"),
    )
    for limit, measure, reason in checks:
        if limit is None:
            continue
        over = [(value, u.slot, u) for u in running if (value := measure(u)) is not None]
        over = [entry for entry in over if entry[0] > limit]
        if over:
            value, _slot, worst = max(over, key=lambda entry: (entry[0], entry[1]))
            return RecycleChoice(slot=worst.slot, pid=worst.pid, reason=reason.format(value, limit))
    return None
