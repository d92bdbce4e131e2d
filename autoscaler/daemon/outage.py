"""Outage bookkeeping for a dependency (Redis, Supervisor): log once per outage and once on
recovery. The retry schedule is the Observer's (autoscaler/observe/retry.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class Outage:
    """Up, or down since when and why."""

    name: str
    clock: Callable[[], float]
    down_since_s: float | None = None
    reason: str = ""

    @property
    def down(self) -> bool:
        return self.down_since_s is not None

    def failed(self, reason: str) -> bool:
        """Record a failure; True when this starts a new outage (log it then, not every tick)."""
        started = self.down_since_s is None
        if started:
            self.down_since_s = self.clock()
        self.reason = reason
        return started

    def recovered(self) -> float | None:
        """Record a success; the outage's length in seconds when one just ended, else None."""
        if self.down_since_s is None:
            return None
        length = self.clock() - self.down_since_s
        self.down_since_s = None
        self.reason = ""
        return length
