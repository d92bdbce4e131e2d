"""How long the job at the head of a queue has waited, from its payload when it says.

Two payload sources (docs/observing.md gives operators their precision); every other queue's
age comes from FIFO accounting (autoscaler/laravel/fifo.py):

- `createdAt` (Laravel 12.11+): unix seconds when the job was created, plus its `delay`
  (seconds until it was due); the age is off by up to one second, and by the clock difference
  between the host that pushed the job and this one.
- `pushedAt` (Laravel Horizon): a microtime string set on push and on `later()`, plus `delay`
  when the payload has it; as exact as the two clocks.

A retried job (attempts > 0: released after an exception, or an expired reservation) keeps
its original createdAt/pushedAt, which would count its earlier runs and its backoff as
waiting, so its age comes from FIFO accounting (it re-entered the list at the tail).

A head that is not a JSON object is no job a Laravel worker can take: its queue's age is
unknown for the tick, with the reason. A payload over MAX_PARSE_BYTES is not parsed (a
timestamp is not worth decoding megabytes every tick); FIFO accounting gives its age.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from autoscaler.laravel.queue_sample import WaitSource

MAX_PARSE_BYTES = 1 << 20  # heads larger than this are not decoded
_STAMPS: tuple[WaitSource, ...] = ("createdAt", "pushedAt")  # payload fields, best first
# A stamp before 2001-09-09 (unix 1e9) is no job's: 0 or 1 would show a wait of 1.8e9 s.
MIN_STAMP_S = 1_000_000_000.0


@dataclass(frozen=True, slots=True)
class PayloadAge:
    """The head job's wait from its own timestamp; age None when the payload has none."""

    age_s: float | None = None
    source: WaitSource | None = None
    problem: str | None = None  # the head is not a job: the queue's age is unknown


def payload_age(head: bytes | str, now_s: float) -> PayloadAge:
    """The head job's wait in seconds (never negative) from `createdAt`/`pushedAt`."""
    if len(head) > MAX_PARSE_BYTES:
        return PayloadAge()
    payload = _decode(head)
    if payload is None:
        return PayloadAge(problem=f"head job is not a JSON object: {_preview(head)}")
    attempts = _number(payload.get("attempts")) or 0.0
    if attempts > 0:
        return PayloadAge()
    delay = _number(payload.get("delay")) or 0.0
    delay = delay if 0.0 < delay < math.inf else 0.0
    for source in _STAMPS:
        stamp = _number(payload.get(source))
        if stamp is not None and MIN_STAMP_S <= stamp < math.inf:
            return PayloadAge(max(0.0, now_s - stamp - delay), source)
    return PayloadAge()  # none, or one that is no time (0, nan, 1e400): FIFO accounting


def _decode(head: bytes | str) -> dict[str, Any] | None:
    try:
        value = json.loads(head)
    except (ValueError, RecursionError):  # not JSON (or bytes not UTF-8), or nested too deep
        return None
    return value if isinstance(value, dict) else None


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


def _preview(head: bytes | str) -> str:
    text = head.decode("utf-8", "replace") if isinstance(head, bytes) else head
    return repr(text[:40] + ("..." if len(text) > 40 else ""))
