"""A trace's jobs as arrays: the Trace type, and building it from parsed columns.

Kept apart from the parsing (trace.py): this part only turns columns into each queue's jobs in
arrival order, spreading a rate trace's jobs over their buckets.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
TraceKind = Literal["job", "rate"]


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueJobs:
    """One queue's jobs in arrival order (ties keep the file's order)."""

    arrival_s: FloatArray
    service_s: FloatArray

    def __len__(self) -> int:
        return int(self.arrival_s.shape[0])


@dataclass(frozen=True, slots=True, kw_only=True)
class Trace:
    """Every job of a trace, by Laravel queue name (only queues that appear)."""

    name: str  # what the report calls it: the path as given
    kind: TraceKind
    duration_s: float  # last arrival (job trace) or end of the last bucket (rate trace)
    queues: Mapping[str, QueueJobs]
    bucket_s: float | None = None  # rate traces only

    @property
    def jobs(self) -> int:
        return sum(len(q) for q in self.queues.values())


def job_trace(
    *,
    name: str,
    arrival_s: FloatArray,
    service_s: FloatArray,
    names: list[str],
    index: npt.NDArray[np.intp],
) -> Trace:
    """A job trace from its columns; `index[i]` is row i's queue in `names`."""
    queues: dict[str, QueueJobs] = {}
    for queue, rows in zip(names, rows_by_queue(index, len(names)), strict=True):
        a, s = arrival_s[rows], service_s[rows]
        order = np.argsort(a, kind="stable")
        queues[queue] = QueueJobs(
            arrival_s=np.ascontiguousarray(a[order], dtype=np.float64),
            service_s=np.ascontiguousarray(s[order], dtype=np.float64),
        )
    return Trace(name=name, kind="job", duration_s=float(arrival_s.max()), queues=queues)


def bucket_width_s(times: FloatArray) -> float:
    """The smallest step between two distinct times (1 s when there is only one time)."""
    steps = np.diff(times)
    if not bool(np.all(steps >= 0)):  # rows not in time order: sort (slower)
        steps = np.diff(np.unique(times))
    positive = steps[steps > 0]
    return float(positive.min()) if positive.shape[0] else 1.0


def rows_by_queue(index: npt.NDArray[np.intp], count: int) -> list[npt.NDArray[np.intp]]:
    """Each queue's row numbers, in file order: one stable sort of the queue numbers (a
    linear-time radix sort while they fit in a byte) instead of a full scan per queue."""
    small = index.astype(np.uint8) if count <= 256 else index
    order = np.argsort(small, kind="stable")
    edges = np.concatenate(([0], np.cumsum(np.bincount(index, minlength=count))))
    return [order[start:end] for start, end in itertools.pairwise(edges.tolist())]


def rate_trace(
    *,
    name: str,
    time_s: FloatArray,
    arrivals: npt.NDArray[np.int64],
    service_s: FloatArray | None,
    names: list[str],
    index: npt.NDArray[np.intp],
    bucket_s: float,
    default_service_s: Mapping[str, float],
) -> Trace | None:
    """A rate trace from its columns; None when a queue has two rows for one time."""
    queues: dict[str, QueueJobs] = {}
    for queue, rows in zip(names, rows_by_queue(index, len(names)), strict=True):
        t, n = time_s[rows], arrivals[rows]
        service = service_s[rows] if service_s is not None else None
        steps = np.diff(t)
        if not bool(np.all(steps >= 0)):
            order = np.argsort(t, kind="stable")
            t, n = t[order], n[order]
            service = None if service is None else service[order]
            steps = np.diff(t)
        if bool(np.any(steps == 0)):
            return None
        queues[queue] = spread_buckets(
            times_s=t,
            counts=n,
            bucket_s=bucket_s,
            service_s=service,
            default_service_s=default_service_s[queue],
        )
    duration = float(time_s.max()) + bucket_s
    return Trace(name=name, kind="rate", duration_s=duration, queues=queues, bucket_s=bucket_s)


def spread_buckets(
    *,
    times_s: FloatArray,
    counts: npt.NDArray[np.int64],
    bucket_s: float,
    service_s: FloatArray | None,
    default_service_s: float,
) -> QueueJobs:
    """Jobs of sorted buckets: `counts[i]` jobs evenly over [times_s[i], times_s[i] + bucket_s),
    each at the middle of its share, each running the bucket's mean run time."""
    total = int(counts.sum())
    keep = counts > 0
    t, n = times_s[keep], counts[keep]
    first = np.repeat(np.cumsum(n) - n, n)  # index of each job's bucket's first job
    position = np.arange(total, dtype=np.float64) - first
    step = np.repeat(bucket_s / n, n)
    arrival = np.repeat(t, n) + (position + 0.5) * step
    if service_s is None:
        service = np.full(total, default_service_s, dtype=np.float64)
    else:
        service = np.repeat(service_s[keep], n).astype(np.float64)
    return QueueJobs(arrival_s=arrival, service_s=service)
