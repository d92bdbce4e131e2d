"""Outage bookkeeping: retry with exponential backoff, log once per outage and once on recovery."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Outage:
    """State of one dependency (Redis, Supervisor): up, or down since when and why."""

    name: str
    base_s: float = 1.0
    cap_s: float = 60.0
    down_since_s: float | None = None
    reason: str = ""
    failures: int = 0
    next_try_s: float = 0.0

    @property
    def down(self) -> bool:
        return self.down_since_s is not None

    def should_try(self, now_s: float) -> bool:
        return not self.down or now_s >= self.next_try_s

    def failed(self, now_s: float, reason: str) -> bool:
        """Record a failure; True when this starts a new outage (log it then, not every tick)."""
        started = self.down_since_s is None
        if started:
            self.down_since_s = now_s
        self.failures += 1
        self.reason = reason
        self.next_try_s = now_s + min(self.cap_s, self.base_s * 2 ** (self.failures - 1))
        return started

    def recovered(self, now_s: float) -> float | None:
        """Record a success; the outage's length in seconds when one just ended, else None."""
        if self.down_since_s is None:
            return None
        length = now_s - self.down_since_s
        self.down_since_s = None
        self.failures = 0
        self.reason = ""
        self.next_try_s = 0.0
        return length
