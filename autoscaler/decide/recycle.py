"""Which worker of a pool to recycle: pure, from the slots' measured memory and age.

A worker past `[lifecycle] max_rss_mb` goes first (the largest), then one past `max_age_s`
(the oldest). Only RUNNING workers are candidates: one starting has not leaked yet, one
stopping is on its way out. The daemon asks for the replacement (act/retire.py does it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from autoscaler.observe.process_memory import SlotUsage
from autoscaler.policy.model import Lifecycle


@dataclass(frozen=True, slots=True, kw_only=True)
class RecycleChoice:
    slot: str
    pid: int
    reason: str


def recycle_candidate(
    slots: Iterable[SlotUsage], pool: str, lifecycle: Lifecycle
) -> RecycleChoice | None:
    running = [u for u in slots if u.pool == pool and u.state == "RUNNING"]
    limit_mb = lifecycle.max_rss_mb
    if limit_mb is not None:
        over = [u for u in running if u.rss_mb is not None and u.rss_mb > limit_mb]
        if over:
            worst = max(over, key=lambda u: (u.rss_mb or 0.0, u.slot))
            return RecycleChoice(
                slot=worst.slot,
                pid=worst.pid,
                reason=f"RSS {worst.rss_mb or 0.0:.0f} MB > max_rss_mb {limit_mb:g}",
            )
    max_age_s = lifecycle.max_age_s
    if max_age_s is not None:
        old = [u for u in running if u.age_s is not None and u.age_s > max_age_s]
        if old:
            oldest = max(old, key=lambda u: (u.age_s or 0.0, u.slot))
            return RecycleChoice(
                slot=oldest.slot,
                pid=oldest.pid,
                reason=f"age {oldest.age_s or 0.0:.0f}s > max_age_s {max_age_s:g}",
            )
    return None
