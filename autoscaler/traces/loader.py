"""Load a backlog trace (docs/design.md, "Trace format") into per-queue job arrays.

Two shapes, told apart by the header: a job trace (`arrival_s,queue,service_s`, one row per
job) and a rate trace (`time_s,queue,arrivals[,service_s]`, one row per queue per bucket).
Either may be gzipped, have `#` comment lines and extra columns. A rate trace's jobs are
spread evenly over their bucket. The bucket is what a `# bucket_s: N` comment above the header
declares, else the smallest step between two of the trace's times; either way, rows with no
arrivals may be left out.

Traces can be millions of rows, so the rows are parsed by numpy in one pass. Only when that
pass finds something wrong are the rows read again one by one, to name the first bad line.
"""

from __future__ import annotations

import gzip
import io
import re
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from autoscaler.policy.model import Policy
from autoscaler.traces.jobs import (
    QueueJobs,
    Trace,
    TraceKind,
    bucket_width_s,
    job_trace,
    rate_trace,
    spread_buckets,
)

__all__ = [
    "QueueJobs",
    "Trace",
    "TraceError",
    "TraceKind",
    "bucket_width_s",
    "expected_run_times",
    "load_trace",
    "parse_trace",
    "spread_buckets",
]


JOB_COLUMNS = ("arrival_s", "queue", "service_s")
RATE_COLUMNS = ("time_s", "queue", "arrivals")
RATE_OPTIONAL = "service_s"
# A rate trace may declare its bucket in a comment above the header (`# bucket_s: 60`); then
# buckets with no arrivals can be left out freely. Without it, the bucket is inferred.
BUCKET_COMMENT = re.compile(r"^#\s*bucket_s\s*[:=]\s*(\S+)\s*$")
# A trace's times are seconds from its start. One later than this is almost surely a Unix
# timestamp; the simulator would tick through all of it (hours of run time for nothing).
MAX_TIME_S = 366 * 86400.0
_NAME_BYTES = 32  # queue names this long or longer take the (slower) wide read


class TraceError(Exception):
    """A trace could not be read; the message names the file, the line and the problem."""

    def __init__(self, path: str, problem: str, *, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem


@dataclass(frozen=True, slots=True)
class _Header:
    kind: TraceKind
    line: int  # 1-based line number of the header
    columns: dict[str, int]  # needed column -> index in the row
    width: int  # fields in the header
    bucket: tuple[float, int] | None  # a `# bucket_s: N` comment above it, and its line


def _bucket(raw: str, name: str, line: int) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (np.isfinite(value) and value > 0):
        raise TraceError(name, f"bucket_s must be a positive number, found {raw!r}", line=line)
    return value


@dataclass(frozen=True, slots=True)
class _Source:
    """Where the rows come from: a file (plain or .gz) or text (tests)."""

    path: Path | None = None
    text: str | None = None

    def open(self) -> IO[str]:
        if self.text is not None:
            return io.StringIO(self.text)
        assert self.path is not None
        if self.path.suffix == ".gz":
            return gzip.open(self.path, "rt", encoding="utf-8", newline="")
        return self.path.open(encoding="utf-8", newline="")

    def for_numpy(self) -> str | IO[str]:
        # numpy reads a named file (and unzips .gz) about 40 % faster than a Python handle.
        return str(self.path) if self.path is not None else self.open()


def load_trace(path: Path, policies: Mapping[str, Policy], *, name: str | None = None) -> Trace:
    """Read `path` (CSV, gzipped when it ends in .gz); every queue must be consumed by one of
    `policies`. Raises TraceError naming the file and line of the first problem."""
    shown = name or str(path)
    try:
        return _parse(_Source(path=path), policies, shown)
    except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile) as exc:
        raise TraceError(shown, f"cannot read: {exc}") from exc


def parse_trace(text: str, policies: Mapping[str, Policy], *, name: str) -> Trace:
    """Parse trace text, as `load_trace` parses a file."""
    return _parse(_Source(text=text), policies, name)


def _parse(source: _Source, policies: Mapping[str, Policy], name: str) -> Trace:
    header = _find_header(source, name)
    expected = expected_run_times(policies)
    parsed = _fast_parse(source, header, expected)
    if parsed is None:
        _explain_first_problem(source, header, expected, name)
        raise TraceError(name, "could not be parsed (no single bad line was found)")
    rows, names, index = parsed
    if rows.shape[0] == 0:
        raise TraceError(name, "has a header but no rows", line=header.line)
    if header.kind == "job":
        return _job_trace(rows, names, index, name)
    trace = _rate_trace(rows, names, index=index, header=header, expected=expected, name=name)
    if trace is None:  # two rows for one queue and bucket
        _explain_first_problem(source, header, expected, name)
        raise TraceError(name, "has two rows for one queue and time_s")
    return trace


def _fast_parse(
    source: _Source, header: _Header, expected: Mapping[str, float]
) -> tuple[npt.NDArray[np.void], list[str], npt.NDArray[np.intp]] | None:
    """Rows, distinct queue names and each row's name index; None if anything is wrong."""
    rows = _fast_rows(source, header)
    if rows is None or not _numbers_valid(rows, header):
        return None
    split = _split_queues(rows, limit=len(expected))
    if split is None or not set(split[0]) <= expected.keys():
        return None
    return rows, split[0], split[1]


def _lines(source: _Source) -> Iterator[tuple[int, str]]:
    with source.open() as handle:
        for number, line in enumerate(handle, start=1):
            yield number, line.rstrip("\r\n")


def _find_header(source: _Source, name: str) -> _Header:
    bucket: tuple[float, int] | None = None
    for number, line in _lines(source):
        stripped = line.strip()
        if stripped.startswith("#"):
            declared = BUCKET_COMMENT.match(stripped)
            if declared is not None:
                bucket = (_bucket(declared.group(1), name, number), number)
            continue
        if not stripped:
            continue
        fields = [f.strip() for f in stripped.split(",")]
        for kind, needed in (("job", JOB_COLUMNS), ("rate", RATE_COLUMNS)):
            if all(column in fields for column in needed):
                wanted = list(needed)
                if kind == "rate" and RATE_OPTIONAL in fields:
                    wanted.append(RATE_OPTIONAL)
                columns = {column: fields.index(column) for column in wanted}
                return _Header(kind, number, columns, len(fields), bucket)  # type: ignore[arg-type]
        raise TraceError(
            name,
            f"the header must name the columns `{','.join(JOB_COLUMNS)}` (a job trace) or "
            f"`{','.join(RATE_COLUMNS)}[,{RATE_OPTIONAL}]` (a rate trace); found `{stripped}`",
            line=number,
        )
    raise TraceError(name, "is empty: no header line and no rows")


def _dtype(header: _Header, name_bytes: int) -> np.dtype[np.void]:
    fields = [
        (column, f"S{name_bytes}" if column == "queue" else "f8")
        for column in sorted(header.columns, key=header.columns.__getitem__)
    ]
    return np.dtype(fields)


def _fast_rows(source: _Source, header: _Header) -> npt.NDArray[np.void] | None:
    """All rows as a structured array, or None when numpy cannot parse them."""
    usecols = sorted(header.columns.values())
    for name_bytes in (_NAME_BYTES, 256):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
                rows: npt.NDArray[np.void] = np.loadtxt(
                    source.for_numpy(),
                    delimiter=",",
                    encoding="utf-8",
                    comments="#",
                    skiprows=header.line,
                    usecols=usecols,
                    dtype=_dtype(header, name_bytes),
                    ndmin=1,
                )
        except ValueError:
            return None
        if rows.shape[0] == 0 or not _name_fills_field(rows):
            return rows
    return None  # a name longer than 255 bytes: let the line-by-line pass report it


def _field_view(
    rows: npt.NDArray[np.void], dtype: type[np.generic], *, skip: int, shape: tuple[int, ...]
) -> npt.NDArray[Any]:
    """A view (no copy) into the queue field of every row, `skip` bytes in."""
    offset = rows.dtype.fields["queue"][1] + skip  # type: ignore[index]
    stride = rows.strides[0]
    item = np.dtype(dtype).itemsize
    return np.ndarray(
        shape, dtype=dtype, buffer=rows, offset=offset, strides=(stride, item)[: len(shape)]
    )


def _name_fills_field(rows: npt.NDArray[np.void]) -> bool:
    """Whether some queue name fills its fixed-width field (so it may have been cut)."""
    width = rows.dtype["queue"].itemsize
    last = _field_view(rows, np.uint8, skip=width - 1, shape=(rows.shape[0],))
    return bool(np.any(last))


def _numbers_valid(rows: npt.NDArray[np.void], header: _Header) -> bool:
    time_column = "arrival_s" if header.kind == "job" else "time_s"
    checks = [rows[time_column]]
    if "service_s" in header.columns:
        checks.append(rows["service_s"])
    if header.kind == "rate":
        counts = rows["arrivals"]
        checks.append(counts)
        if not np.array_equal(counts, np.floor(counts)):
            return False
    finite = all(bool(np.all(np.isfinite(v)) and np.all(v >= 0)) for v in checks)
    return finite and bool(np.all(rows[time_column] <= MAX_TIME_S))


def _split_queues(
    rows: npt.NDArray[np.void], *, limit: int
) -> tuple[list[str], npt.NDArray[np.intp]] | None:
    """Distinct names in order of first appearance and each row's index into them; None
    when there are more than `limit` (then some are unknown anyway).

    np.unique sorts the byte strings, which takes seconds on millions of rows. A trace has a
    handful of queues, so the names are found in a sample of the unassigned rows and each is
    then matched over all rows at once, comparing the names as 64-bit words.
    """
    raw = rows["queue"]
    index = np.full(raw.shape[0], -1, dtype=np.intp)
    names: list[str] = []
    positions: dict[str, int] = {}  # " mail" and "mail" are one queue: fields are stripped
    if raw.shape[0] == 0:
        return names, index
    width = raw.dtype.itemsize
    words = _field_view(rows, np.uint64, skip=0, shape=(raw.shape[0], width // 8))
    while True:
        unassigned = np.flatnonzero(index < 0)
        if unassigned.shape[0] == 0:
            return names, index
        for value in dict.fromkeys(raw[unassigned[:4096]].tolist()):
            queue = _decode(value)
            if queue not in positions:
                if len(names) >= limit:
                    return None
                positions[queue] = len(names)
                names.append(queue)
            wanted = np.frombuffer(value.ljust(width, b"\0"), dtype=np.uint64)
            matched = np.flatnonzero(words[:, 0] == wanted[0])
            for column in range(1, wanted.shape[0]):  # the rest only where the first matched
                matched = matched[words[matched, column] == wanted[column]]
            index[matched] = positions[queue]


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8").strip()


def expected_run_times(policies: Mapping[str, Policy]) -> dict[str, float]:
    """Queue -> the run time of its pool's jobs when a rate trace gives none."""
    return {q: p.expected_run_time_s for p in policies.values() for q in p.queues}


def _explain_first_problem(
    source: _Source, header: _Header, expected: Mapping[str, float], name: str
) -> None:
    """Read the rows one by one and raise TraceError at the first bad line."""
    time_column = "arrival_s" if header.kind == "job" else "time_s"
    seen: dict[tuple[str, float], int] = {}
    for number, line in _lines(source):
        if number <= header.line:
            continue
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        fields = [f.strip() for f in stripped.split(",")]
        if len(fields) <= max(header.columns.values()):
            raise TraceError(
                name,
                f"expected {header.width} fields as in the header, found {len(fields)}",
                line=number,
            )
        values: dict[str, float] = {}
        for column, index in header.columns.items():
            if column == "queue":
                continue
            values[column] = _number(fields[index], column, name, number)
        if values[time_column] > MAX_TIME_S:
            raw = fields[header.columns[time_column]]
            raise TraceError(name, _too_late(time_column, raw, values[time_column]), line=number)
        queue = fields[header.columns["queue"]]
        if queue not in expected:
            known = ", ".join(sorted(expected)) or "none"
            raise TraceError(
                name,
                f"queue {queue!r} is consumed by no pool in the policies (known queues: {known})",
                line=number,
            )
        if time_column == "time_s":
            count = values["arrivals"]
            if count != int(count):
                raise TraceError(
                    name, f"arrivals must be a whole number of jobs, found {count:g}", line=number
                )
            key = (queue, values["time_s"])
            if key in seen:
                raise TraceError(
                    name,
                    f"a second row for queue {queue!r} at time_s {values['time_s']:g} (the "
                    f"first is on line {seen[key]}); a rate trace has one row per queue per "
                    "bucket",
                    line=number,
                )
            seen[key] = number


def _too_late(column: str, raw: str, value: float) -> str:
    return (
        f"{column} {raw} is {value / 86400:,.0f} days after the trace's start, more than "
        f"the {MAX_TIME_S / 86400:g} days a trace may last. Times are seconds from the start "
        "of the trace; is this a Unix timestamp (seconds since 1970)? Subtract the first row's "
        "time from every time"
    )


def _number(raw: str, column: str, name: str, line: int) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise TraceError(name, f"{column} is not a number: {raw!r}", line=line) from None
    if not np.isfinite(value):
        raise TraceError(name, f"{column} must be a finite number, found {raw!r}", line=line)
    if value < 0:
        raise TraceError(name, f"{column} must not be negative, found {raw}", line=line)
    return value


def _job_trace(
    rows: npt.NDArray[np.void], names: list[str], index: npt.NDArray[np.intp], name: str
) -> Trace:
    return job_trace(
        name=name,
        arrival_s=rows["arrival_s"],
        service_s=rows["service_s"],
        names=names,
        index=index,
    )


def _rate_trace(
    rows: npt.NDArray[np.void],
    names: list[str],
    *,
    index: npt.NDArray[np.intp],
    header: _Header,
    expected: Mapping[str, float],
    name: str,
) -> Trace | None:
    times = rows["time_s"]
    bucket = bucket_width_s(times)
    if header.bucket is not None:
        declared, line = header.bucket
        if bucket < declared and np.unique(times).shape[0] > 1:
            raise TraceError(
                name,
                f"bucket_s is declared {declared:g} but two times are only {bucket:g} s apart",
                line=line,
            )
        bucket = declared
    return rate_trace(
        name=name,
        time_s=times,
        arrivals=rows["arrivals"].astype(np.int64),
        service_s=rows["service_s"] if RATE_OPTIONAL in header.columns else None,
        names=names,
        index=index,
        bucket_s=bucket,
        default_service_s=expected,
    )
