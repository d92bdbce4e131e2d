"""Exponential retry delays after failures (supervisord down, a refused reread, FATAL slots)."""

from __future__ import annotations

from collections.abc import Callable


class Backoff:
    """After each failure wait longer: initial, x2 each time, capped; reset on success."""

    def __init__(self, *, initial_s: float, max_s: float, clock: Callable[[], float]) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self._clock = clock
        self.failures = 0
        self._retry_at: float | None = None

    def remaining_s(self) -> float:
        """Seconds until the next attempt is due (0: now)."""
        if self._retry_at is None:
            return 0.0
        return max(0.0, self._retry_at - self._clock())

    def failed(self) -> float:
        """Record a failure; returns the delay before the next attempt."""
        delay = min(self.max_s, self.initial_s * 2.0**self.failures)
        self.failures += 1
        self._retry_at = self._clock() + delay
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self._retry_at = None
