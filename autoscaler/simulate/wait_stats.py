"""Waits and backlog from the jobs' arrival and start times (vectorised, after a run)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
# Per queue: arrival times of all its jobs, start times of those started (in arrival order).
Times = Sequence[Sequence[float]]


def job_waits(arrivals: Times, starts: Times, *, end_s: float) -> tuple[FloatArray, int]:
    """Every job's wait, queue by queue in arrival order, and how many never started (their
    wait runs until `end_s`, so they count as misses)."""
    parts: list[FloatArray] = []
    unserved = 0
    for arrived, started in zip(arrivals, starts, strict=True):
        arrival = np.asarray(arrived, dtype=np.float64)
        start = np.asarray(started, dtype=np.float64)
        count = start.shape[0]
        parts.append(start - arrival[:count])
        if count < arrival.shape[0]:
            unserved += arrival.shape[0] - count
            parts.append(np.maximum(end_s - arrival[count:], 0.0))
    if not parts:
        return np.zeros(0, dtype=np.float64), 0
    return np.concatenate(parts), unserved


def max_backlog(arrivals: Times, starts: Times) -> int:
    """The most jobs ever waiting at once over all the queues (exact: a backlog peaks when a
    job arrives)."""
    if not any(len(a) for a in arrivals):
        return 0
    arrival = np.sort(np.concatenate([np.asarray(a, dtype=np.float64) for a in arrivals]))
    start = np.sort(np.concatenate([np.asarray(s, dtype=np.float64) for s in starts]))
    arrived = np.arange(1, arrival.shape[0] + 1)
    # A job starting at the instant it arrives never waited: count starts up to then.
    started = np.searchsorted(start, arrival, side="right")
    # Several jobs may arrive at one instant: only the last of them shows the peak.
    last_at_instant = np.append(arrival[1:] != arrival[:-1], True)
    return int(max(0, np.max((arrived - started)[last_at_instant])))
