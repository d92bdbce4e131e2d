"""Outage bookkeeping for a dependency (Redis, Supervisor): log once per outage, once on
recovery, and retry on a Backoff schedule in between."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from autoscaler.backoff import Backoff


@dataclass(slots=True)
class Outage:
    """Up, or down since when and why."""

    name: str
    clock: Callable[[], float]
    backoff: Backoff = field(init=False)
    initial_s: float = 1.0
    max_s: float = 60.0
    down_since_s: float | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        self.backoff = Backoff(initial_s=self.initial_s, max_s=self.max_s, clock=self.clock)

    @property
    def down(self) -> bool:
        return self.down_since_s is not None

    def should_try(self) -> bool:
        return self.backoff.remaining_s() <= 0

    def failed(self, reason: str) -> bool:
        """Record a failure; True when this starts a new outage (log it then, not every tick)."""
        started = self.down_since_s is None
        if started:
            self.down_since_s = self.clock()
        self.reason = reason
        self.backoff.failed()
        return started

    def recovered(self) -> float | None:
        """Record a success; the outage's length in seconds when one just ended, else None."""
        self.backoff.succeeded()
        if self.down_since_s is None:
            return None
        length = self.clock() - self.down_since_s
        self.down_since_s = None
        self.reason = ""
        return length
