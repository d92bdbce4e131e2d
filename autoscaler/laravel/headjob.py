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

Any payload, however broken, costs that queue at most its age for the tick, never the tick,
and `problem` says why (the daemon logs it when it appears):
- a head that is no JSON object (not UTF-8, not JSON, nested too deep for the parser, a list)
  is no job a Laravel worker can take: the queue's age is unknown for the tick (`unusable`);
- a head larger than MAX_PAYLOAD_BYTES is not parsed (decoding megabytes every tick is not
  worth a timestamp), and a createdAt/pushedAt that is no time (0, before 2001, nan, 1e400) is
  ignored: FIFO accounting gives those ages.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from autoscaler.laravel.queue_sample import WaitSource

# Laravel payloads are a few KB; a larger head is not parsed every tick (32 MB took ~0.3 s).
MAX_PAYLOAD_BYTES = 1_000_000
_STAMPS: tuple[WaitSource, ...] = ("createdAt", "pushedAt")  # payload fields, best first
# A stamp before 2001-09-09 (unix 1e9) is no job's: 0 or 1 would show a wait of 1.8e9 s.
MIN_STAMP_S = 1_000_000_000.0


@dataclass(frozen=True, slots=True)
class PayloadAge:
    """The head job's wait from its own timestamp; age None when the payload gives none."""

    age_s: float | None = None
    source: WaitSource | None = None
    problem: str | None = None  # why the payload could not give its age
    unusable: bool = False  # the head is no job: the queue's age is unknown this tick


def payload_age(head: bytes | str, now_s: float) -> PayloadAge:
    """The head job's wait in seconds (never negative) from `createdAt`/`pushedAt`."""
    if len(head) > MAX_PAYLOAD_BYTES:
        return PayloadAge(
            problem=f"payload of {len(head)} bytes, more than {MAX_PAYLOAD_BYTES} (not parsed)"
        )
    payload, problem = _decode(head)
    if payload is None:
        return PayloadAge(problem=problem, unusable=True)
    attempts = _number(payload.get("attempts")) or 0.0
    if attempts > 0:
        return PayloadAge()
    delay = _number(payload.get("delay")) or 0.0
    delay = delay if 0.0 < delay < math.inf else 0.0
    for source in _STAMPS:
        stamp = _number(payload.get(source))
        if stamp is None:
            continue
        if MIN_STAMP_S <= stamp < math.inf:
            return PayloadAge(max(0.0, now_s - stamp - delay), source)
        return PayloadAge(problem=f"{source}={str(payload.get(source))[:40]} is not a time")
    return PayloadAge()


def _decode(head: bytes | str) -> tuple[dict[str, Any] | None, str | None]:
    """The payload's JSON object, or None and why not."""
    try:
        value = json.loads(head)
    except UnicodeDecodeError:
        return None, "payload is not UTF-8"
    except ValueError as exc:
        return None, f"payload is not JSON ({exc})"
    except RecursionError:
        return None, "payload nested too deep to parse"
    if not isinstance(value, dict):
        return None, f"payload is a JSON {type(value).__name__}, not an object"
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
