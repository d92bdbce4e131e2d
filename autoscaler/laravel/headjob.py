"""How long the job at the head of a queue has waited, from its payload or from memory.

Three sources, best first (docs/observing.md gives operators their precision):

- `createdAt` (Laravel 12.11+): unix seconds when the job was created, plus its `delay`
  (seconds until it was due); the age is off by up to one second, and by the clock difference
  between the host that pushed the job and this one.
- `pushedAt` (Laravel Horizon): a microtime string set on push and on `later()`, plus `delay`
  when the payload has it; as exact as the two clocks.
- `first_seen`: nothing in the payload says when it was queued, so the age counts from the
  first tick that saw this job at the head; a lower bound, short by however long the job
  waited behind others before that (and by up to one tick).

A retried job (attempts > 0: released after an exception, or an expired reservation) keeps
its original createdAt/pushedAt, which would count its earlier runs and its backoff as
waiting, so its age comes from `first_seen`.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from autoscaler.laravel.queue_sample import WaitSource

REMEMBERED_PER_QUEUE = 64  # head ids remembered per queue (a queue's head changes by pops)


class HeadJobAges:
    """Ages of head jobs; remembers when ids were first seen, a bounded number per queue."""

    def __init__(self, *, remembered_per_queue: int = REMEMBERED_PER_QUEUE) -> None:
        self._limit = remembered_per_queue
        self._first_seen: dict[str, OrderedDict[str, float]] = {}

    def age(
        self, queue: str, head: bytes | str | None, now_s: float
    ) -> tuple[float | None, WaitSource]:
        """The head job's wait in seconds (never negative) and where it came from."""
        if head is None:
            self._first_seen.pop(queue, None)  # an empty queue: nothing to remember
            return None, "empty"
        payload = _decode(head)
        attempts = _number(payload.get("attempts")) or 0.0
        if attempts <= 0:
            delay = max(0.0, _number(payload.get("delay")) or 0.0)
            created = _number(payload.get("createdAt"))
            if created is not None:
                return max(0.0, now_s - created - delay), "createdAt"
            pushed = _number(payload.get("pushedAt"))
            if pushed is not None:
                return max(0.0, now_s - pushed - delay), "pushedAt"
        key = _identity(payload, head, attempts)
        seen = self._first_seen.setdefault(queue, OrderedDict())
        first = seen.get(key)
        if first is None:
            seen[key] = first = now_s
            while len(seen) > self._limit:
                seen.popitem(last=False)
        else:
            seen.move_to_end(key)
        return max(0.0, now_s - first), "first_seen"

    def remembered(self) -> int:
        """How many ids are remembered over all queues (for tests and metrics)."""
        return sum(len(ids) for ids in self._first_seen.values())


def _decode(head: bytes | str) -> dict[str, Any]:
    try:
        value = json.loads(head)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _number(value: object) -> float | None:
    """A JSON number or numeric string (Horizon's pushedAt is `"1700000000.1234"`)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.replace(",", "."))
        except ValueError:
            return None
    return None


def _identity(payload: dict[str, Any], head: bytes | str, attempts: float) -> str:
    """The job's id and attempt (a retry is a new wait), else its uuid, else its bytes."""
    job_id = payload.get("id") or payload.get("uuid")
    if job_id is None:
        raw = head if isinstance(head, bytes) else head.encode()
        return f"#{hash(raw)}"
    return f"{job_id}/{int(attempts)}"
