"""Write traces in the project's format (docs/design.md, "Trace format"), atomically.

A header comment says where the rows came from; `.gz` files are written with a zero mtime
so that the same rows always give the same bytes (regenerated traces diff cleanly).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from autoscaler.fileio import write_atomic_bytes
from autoscaler.traces.loader import JOB_COLUMNS, RATE_COLUMNS, RATE_OPTIONAL

FloatArray = npt.NDArray[np.float64]
JobPart = tuple[str, FloatArray, FloatArray]  # a queue, its jobs' arrival_s and service_s


def number(value: float) -> str:
    """A short decimal: at most 3 decimals, no trailing zeros (`2`, `0.5`, `12.345`)."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def comment_block(lines: Iterable[str]) -> str:
    return "".join(f"# {line}".rstrip() + "\n" for line in lines)


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRows:
    """A job trace to write: one row per job."""

    comments: list[str]
    queues: list[str]  # names; each row holds an index into them
    arrival_s: npt.NDArray[np.float64]
    queue_index: npt.NDArray[np.int64]
    service_s: npt.NDArray[np.float64]

    def text(self) -> str:
        """Rows sorted by arrival (stable), one per job."""
        order = np.argsort(self.arrival_s, kind="stable")
        rows = [
            f"{number(a)},{self.queues[q]},{number(s)}\n"
            for a, q, s in zip(
                self.arrival_s[order].tolist(),
                self.queue_index[order].tolist(),
                self.service_s[order].tolist(),
                strict=True,
            )
        ]
        return comment_block(self.comments) + ",".join(JOB_COLUMNS) + "\n" + "".join(rows)


def job_rows(comments: list[str], parts: Iterable[JobPart]) -> JobRows:
    """A job trace from (queue, arrival_s, service_s) parts; a queue may have several."""
    queues: list[str] = []
    arrivals: list[FloatArray] = []
    services: list[FloatArray] = []
    indexes: list[npt.NDArray[np.int64]] = []
    for queue, arrival_s, service_s in parts:
        if queue not in queues:
            queues.append(queue)
        arrivals.append(arrival_s)
        services.append(service_s)
        indexes.append(np.full(arrival_s.shape[0], queues.index(queue), dtype=np.int64))
    return JobRows(
        comments=comments,
        queues=queues,
        arrival_s=np.concatenate(arrivals) if arrivals else np.zeros(0),
        queue_index=np.concatenate(indexes) if indexes else np.zeros(0, dtype=np.int64),
        service_s=np.concatenate(services) if services else np.zeros(0),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RateRows:
    """A rate trace to write: one row per queue per bucket with arrivals."""

    comments: list[str]
    queues: list[str]
    time_s: npt.NDArray[np.float64]
    queue_index: npt.NDArray[np.int64]
    arrivals: npt.NDArray[np.int64]
    service_s: npt.NDArray[np.float64] | None = None
    bucket_s: float = 1.0

    def text(self) -> str:
        """Rows sorted by time then queue; buckets without arrivals are left out (the trace
        format allows it: the bucket is the smallest step between two times)."""
        keep = self.arrivals > 0
        time_s, index, counts = self.time_s[keep], self.queue_index[keep], self.arrivals[keep]
        order = np.lexsort((index, time_s))
        times, names, numbers = (
            time_s[order].tolist(),
            index[order].tolist(),
            counts[order].tolist(),
        )
        queues = self.queues
        if self.service_s is None:
            header = ",".join(RATE_COLUMNS)
            rows = [
                f"{number(t)},{queues[q]},{n}\n"
                for t, q, n in zip(times, names, numbers, strict=True)
            ]
        else:
            header = ",".join((*RATE_COLUMNS, RATE_OPTIONAL))
            service = self.service_s[keep][order].tolist()
            rows = [
                f"{number(t)},{queues[q]},{n},{number(s)}\n"
                for t, q, n, s in zip(times, names, numbers, service, strict=True)
            ]
        declared = comment_block(self.comments) + f"# bucket_s: {number(self.bucket_s)}\n"
        return declared + header + "\n" + "".join(rows)


def write_trace(path: Path, text: str) -> None:
    """Write the text atomically; gzipped (reproducibly) when the name ends in .gz."""
    data = text.encode("utf-8")
    if path.suffix == ".gz":
        data = gzip.compress(data, compresslevel=9, mtime=0)
    write_atomic_bytes(path, data)
