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

Any payload, however broken (not UTF-8, not JSON, nested too deep for the parser, larger than
MAX_PAYLOAD_BYTES, a createdAt of 0), costs that queue its precise age and nothing else: the
age comes from `first_seen` and `problems` says why, for the tick's log.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from typing import Any

from autoscaler.laravel.queue_sample import WaitSource

REMEMBERED_PER_QUEUE = 64  # head ids remembered per queue (a queue's head changes by pops)
# Laravel payloads are a few KB; a larger head is not parsed every tick (32 MB took ~0.3 s).
MAX_PAYLOAD_BYTES = 1_000_000
_STAMPS: tuple[WaitSource, ...] = ("createdAt", "pushedAt")  # payload fields, best first
# A stamp before 2001-09-09 (unix 1e9) is no job's: 0 or 1 would show a wait of 1.8e9 s.
MIN_STAMP_S = 1_000_000_000.0


class HeadJobAges:
    """Ages of head jobs; remembers when ids were first seen, a bounded number per queue."""

    def __init__(self, *, remembered_per_queue: int = REMEMBERED_PER_QUEUE) -> None:
        self._limit = remembered_per_queue
        self._first_seen: dict[str, OrderedDict[str, float]] = {}
        self.problems: dict[str, str] = {}  # queue -> why its head's payload was not usable

    def age(
        self, queue: str, head: bytes | str | None, now_s: float
    ) -> tuple[float | None, WaitSource]:
        """The head job's wait in seconds (never negative) and where it came from."""
        self.problems.pop(queue, None)
        if head is None:
            self._first_seen.pop(queue, None)  # an empty queue: nothing to remember
            return None, "empty"
        payload, problem = _decode(head)
        attempts = _number(payload.get("attempts")) or 0.0
        if attempts <= 0:
            delay = max(0.0, _number(payload.get("delay")) or 0.0)
            for source in _STAMPS:
                stamp = _number(payload.get(source))
                if stamp is None:
                    continue
                if stamp >= MIN_STAMP_S and math.isfinite(stamp):
                    return max(0.0, now_s - stamp - delay), source
                problem = f"{source}={str(payload.get(source))[:40]} is not a time"
                break
        if problem is not None:
            self.problems[queue] = f"head job: {problem}; its age counts from when it was seen"
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


def _decode(head: bytes | str) -> tuple[dict[str, Any], str | None]:
    """The payload's JSON object, or {} and why not."""
    if len(head) > MAX_PAYLOAD_BYTES:
        return {}, f"payload of {len(head)} bytes, more than {MAX_PAYLOAD_BYTES} (not parsed)"
    try:
        value = json.loads(head)
    except UnicodeDecodeError:
        return {}, "payload is not UTF-8"
    except ValueError as exc:
        return {}, f"payload is not JSON ({exc})"
    except RecursionError:
        return {}, "payload nested too deep to parse"
    if not isinstance(value, dict):
        return {}, f"payload is a JSON {type(value).__name__}, not an object"
    return value, None


def _number(value: object) -> float | None:
    """A JSON number or numeric string (Horizon's pushedAt is `"1700000000.1234"`)."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            return float(value.replace(",", "."))
    except (ValueError, OverflowError):  # "abc", or an int of 400 digits
        return None
    return None


def _identity(payload: dict[str, Any], head: bytes | str, attempts: float) -> str:
    """The job's id and attempt (a retry is a new wait), else its uuid, else its bytes."""
    job_id = payload.get("id") or payload.get("uuid")
    if job_id is None:
        raw = head if isinstance(head, bytes) else head.encode()
        return f"#{hash(raw)}"
    return f"{job_id}/{attempts:g}"  # not int(): attempts may be inf or nan
