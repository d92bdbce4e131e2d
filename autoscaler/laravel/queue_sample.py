"""One Laravel queue at one instant: the numbers the sampler reads from Redis.

The simulator's world model builds the same type, so decide cannot tell the two apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Where a queue's oldest wait came from (docs/observing.md explains the precision of each).
WaitSource = Literal["createdAt", "pushedAt", "fifo", "first_seen", "empty", "unknown"]


@dataclass(slots=True, kw_only=True)
class QueueSample:
    """One Laravel queue at one instant."""

    queue: str
    pending: int  # LLEN queues:X
    reserved: int  # ZCARD queues:X:reserved (jobs in flight)
    delayed: int  # ZCARD queues:X:delayed
    delayed_due: int  # delayed jobs already due: the next pop moves them to the list
    oldest_wait_s: float | None  # age of the oldest waiting job; None when empty or unknown
    oldest_wait_source: WaitSource
    age_problem: str | None = None  # why the age is unknown (e.g. a head that is no job)
