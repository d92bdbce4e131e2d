"""Write traces in the project's format (docs/design.md, "Trace format"), atomically.

A header comment says where the rows came from; `.gz` files are written with a zero mtime
so that the same rows always give the same bytes (regenerated traces diff cleanly).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from autoscaler.fileio import write_atomic_bytes
from autoscaler.trace import JOB_COLUMNS, RATE_COLUMNS, RATE_OPTIONAL


def number(value: float) -> str:
    """A short decimal: at most 3 decimals, no trailing zeros (`2`, `0.5`, `12.345`)."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def comment_block(lines: Iterable[str]) -> str:
    return "".join(f"# {line}".rstrip() + "\n" for line in lines)


def job_trace_text(
    comments: Iterable[str],
    *,
    arrival_s: npt.NDArray[np.float64],
    queues: Sequence[str],
    queue_index: npt.NDArray[np.int64],
    service_s: npt.NDArray[np.float64],
) -> str:
    """Rows sorted by arrival (stable), one per job."""
    order = np.argsort(arrival_s, kind="stable")
    rows = [
        f"{number(a)},{queues[q]},{number(s)}\n"
        for a, q, s in zip(
            arrival_s[order].tolist(),
            queue_index[order].tolist(),
            service_s[order].tolist(),
            strict=True,
        )
    ]
    return comment_block(comments) + ",".join(JOB_COLUMNS) + "\n" + "".join(rows)


def rate_trace_text(
    comments: Iterable[str],
    *,
    time_s: npt.NDArray[np.float64],
    queues: Sequence[str],
    queue_index: npt.NDArray[np.int64],
    arrivals: npt.NDArray[np.int64],
    service_s: npt.NDArray[np.float64] | None,
) -> str:
    """Rows sorted by time then queue; buckets with no arrivals are left out (allowed)."""
    keep = arrivals > 0
    time_s, queue_index, arrivals = time_s[keep], queue_index[keep], arrivals[keep]
    service = service_s[keep] if service_s is not None else None
    order = np.lexsort((queue_index, time_s))
    columns = [*RATE_COLUMNS, RATE_OPTIONAL] if service is not None else list(RATE_COLUMNS)
    out = [comment_block(comments), ",".join(columns), "\n"]
    times, names, counts = (
        time_s[order].tolist(),
        queue_index[order].tolist(),
        arrivals[order].tolist(),
    )
    if service is None:
        out += [
            f"{number(t)},{queues[q]},{n}\n" for t, q, n in zip(times, names, counts, strict=True)
        ]
    else:
        out += [
            f"{number(t)},{queues[q]},{n},{number(s)}\n"
            for t, q, n, s in zip(times, names, counts, service[order].tolist(), strict=True)
        ]
    return "".join(out)


def write_trace(path: Path, text: str) -> None:
    """Write the text atomically; gzipped (reproducibly) when the name ends in .gz."""
    data = text.encode("utf-8")
    if path.suffix == ".gz":
        data = gzip.compress(data, compresslevel=9, mtime=0)
    write_atomic_bytes(path, data)
