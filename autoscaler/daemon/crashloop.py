"""Workers that keep exiting: unexpected exits per pool over the last minute, for a log line,
an alert and the `autoscaler_worker_exits_total` metric.

A Laravel worker past `--memory` exits with status 12 and Supervisor restarts it at once: a
pool can lose its work to a restart loop while every slot looks RUNNING whenever it is
sampled. The exits come from supervisord's log (supervisord/exits.py).
"""

from __future__ import annotations

from collections import deque

CRASH_WINDOW_S = 60.0
CRASH_ALERT_PER_WINDOW = 5  # unexpected exits of one pool within the window that alert


class CrashWatch:
    """Per pool, the times of its recent unexpected exits."""

    def __init__(
        self, *, window_s: float = CRASH_WINDOW_S, threshold: int = CRASH_ALERT_PER_WINDOW
    ) -> None:
        self.window_s = window_s
        self.threshold = threshold
        self._times: dict[str, deque[float]] = {}
        self._looping: set[str] = set()

    def pools(self) -> list[str]:
        """Pools with exits in the window, or marked looping (to notice the end of a loop)."""
        return [pool for pool, times in self._times.items() if times] + sorted(self._looping)

    def add(self, pool: str, exits: int, now_s: float) -> int:
        """Record `exits` at `now_s`; the pool's exits within the window."""
        times = self._times.setdefault(pool, deque())
        times.extend([now_s] * exits)
        while times and times[0] <= now_s - self.window_s:
            times.popleft()
        return len(times)

    def crossed(self, pool: str, recent: int) -> bool | None:
        """True when the pool starts looping (recent exits reach the threshold), False when it
        stops, None when nothing changed."""
        looping = recent >= self.threshold
        if looping == (pool in self._looping):
            return None
        if looping:
            self._looping.add(pool)
        else:
            self._looping.discard(pool)
        return looping
