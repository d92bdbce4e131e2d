"""A steady tick schedule: ticks at start + k x interval, whatever each tick took.

A slow tick does not shift the ones after it (drift compensation); when a tick overruns whole
intervals, the missed ticks are skipped rather than run back to back.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class Ticker:
    def __init__(
        self,
        *,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.interval_s = interval_s
        self._clock = clock
        self._start = clock()
        self._index = 0
        self.skipped = 0  # ticks dropped because a tick overran

    def next_delay_s(self) -> float:
        """Seconds to sleep until the next tick is due (advances the schedule)."""
        self._index += 1
        now = self._clock()
        due = self._start + self._index * self.interval_s
        if now > due:
            late_by = math.floor((now - due) / self.interval_s)
            if late_by > 0:
                self.skipped += late_by
                self._index += late_by
                due = self._start + self._index * self.interval_s
            # still behind the current due time: run now
            return max(0.0, due - now)
        return due - now
