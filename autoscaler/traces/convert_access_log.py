"""Convert a web server's access log into a job trace: one job per request kept.

Two line formats, told apart line by line:
- Common Log Format: `host - - [30/Apr/1998:22:00:03 +0000] "GET /path HTTP/1.0" 200 2843`;
- the CSV the 1998 World Cup logs were exported to (amplab/datascience-sp14):
  `client,30/Apr/1998,22:00:03,/path,200,2843` (times in UTC, as the binary logs').

Requests are classed by path (page: .htm/.html/.shtml/.php/.asp or a directory; image:
.gif/.jpg/.jpeg/.png/.ico/.bmp; other: the rest); each class goes to one queue with a seeded
share kept. A log has no run times, only response sizes: a request's run time is the pool's
typical one times `0.5 + 0.5 * bytes / mean bytes of its class` (a 304 or `-` counts 0
bytes), so the mean stays the pool's typical run time, below 95 % of the worker's --timeout.
Arrivals keep the log's one-second resolution: a page and its images arrive together; time
may be compressed (divided by `compress`) to make a light log load a few workers.
"""

from __future__ import annotations

import bz2
import gzip
import re
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from autoscaler.policy.model import Policy
from autoscaler.traces.convert import DEFAULT_IMPORT_SEED, QueueTarget, TraceImportError
from autoscaler.traces.writer import JobRows, job_rows

FloatArray = npt.NDArray[np.float64]
CLASSES = ("page", "image", "other")
PAGE_SUFFIXES = (".htm", ".html", ".shtml", ".php", ".asp", "/")
IMAGE_SUFFIXES = (".gif", ".jpg", ".jpeg", ".png", ".ico", ".bmp")
CLF = re.compile(
    r"^\S+ \S+ \S+ \[(?P<date>[^:\]]+):(?P<time>\d\d:\d\d:\d\d) (?P<zone>[+-]\d{4})\] "
    r'"(?:\S+ )?(?P<path>[^" ]*)[^"]*" (?P<status>\d{3}|-) (?P<size>\d+|-)\s*$'
)


@dataclass(frozen=True, slots=True)
class ClassTarget:
    queue: str
    share: float  # of the class's requests kept


DEFAULT_ACCESS_CLASSES = {
    "page": ClassTarget("card_query", 1.0),
    "image": ClassTarget("wechat-message", 0.3),
    "other": ClassTarget("default", 1.0),
}


@dataclass(frozen=True, slots=True)
class Requests:
    time_s: FloatArray  # seconds since the epoch, UTC
    klass: npt.NDArray[np.int64]  # index into CLASSES
    size_bytes: FloatArray


def request_class(path: str) -> int:
    lowered = path.split("?", 1)[0].lower()
    if lowered.endswith(PAGE_SUFFIXES) or "." not in lowered.rsplit("/", 1)[-1]:
        return CLASSES.index("page")
    if lowered.endswith(IMAGE_SUFFIXES):
        return CLASSES.index("image")
    return CLASSES.index("other")


def _text(raw: Path) -> str:
    try:
        if raw.name.endswith((".tbz2", ".tar.bz2", ".tar.gz", ".tgz")):
            with tarfile.open(raw, "r:*") as archive:
                member = next((m for m in archive.getmembers() if m.isfile()), None)
                handle = archive.extractfile(member) if member is not None else None
                if handle is None:
                    raise TraceImportError(f"{raw}: the archive holds no file")
                data = handle.read()
        elif raw.suffix == ".gz":
            data = gzip.decompress(raw.read_bytes())
        elif raw.suffix == ".bz2":
            data = bz2.decompress(raw.read_bytes())
        else:
            data = raw.read_bytes()
    except (OSError, EOFError, tarfile.TarError, ValueError) as exc:
        raise TraceImportError(f"{raw}: cannot read: {exc}") from exc
    return data.decode("latin-1")  # 1990s logs hold paths in any 8-bit encoding


def _day_s(date: str, cache: dict[str, float]) -> float:
    """`30/Apr/1998` -> seconds since the epoch at 00:00 UTC."""
    if date not in cache:
        try:
            day = datetime.strptime(date, "%d/%b/%Y")
        except ValueError as exc:
            raise ValueError(f"date {date!r}: {exc}") from None
        cache[date] = day.replace(tzinfo=UTC).timestamp()
    return cache[date]


def _clock_s(time: str) -> int:
    parts = time.split(":")
    if len(parts) != 3 or any(len(p) != 2 or not p.isdigit() for p in parts):
        raise ValueError(f"time {time!r} is not HH:MM:SS")
    hours, minutes, seconds = (int(p) for p in parts)
    if hours > 23 or minutes > 59 or seconds > 60:  # 60: a leap second
        raise ValueError(f"time {time!r} is out of range")
    return hours * 3600 + minutes * 60 + seconds


def read_access_log(raw: Path) -> Requests:
    times: list[float] = []
    classes: list[int] = []
    sizes: list[float] = []
    days: dict[str, float] = {}
    for line_number, line in enumerate(_text(raw).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            match = CLF.match(line)
            if match is not None:
                zone = int(match["zone"])
                offset_s = (1 if zone >= 0 else -1) * (
                    abs(zone) // 100 * 3600 + abs(zone) % 100 * 60
                )
                time_s = _day_s(match["date"], days) + _clock_s(match["time"]) - offset_s
                path, status, size = match["path"], match["status"], match["size"]
            else:
                fields = line.split(",")
                if len(fields) < 6:
                    raise ValueError(
                        "neither Common Log Format nor client,date,time,path,status,size"
                    )
                time_s = _day_s(fields[1], days) + _clock_s(fields[2])
                path, status, size = ",".join(fields[3:-2]), fields[-2], fields[-1]
            if status != "-" and not status.isdigit():  # "-": the server logged none
                raise ValueError(f"status {status!r} is not a number")
            size = size.strip()
            if size not in ("-", "") and not size.isdigit():
                raise ValueError(f"size {size!r} is not a byte count")
            times.append(time_s)
            classes.append(request_class(path))
            sizes.append(float(size) if size.isdigit() else 0.0)
        except ValueError as exc:
            raise TraceImportError(
                f"{raw}:{line_number}: bad request line {line!r}: {exc}"
            ) from exc
    if not times:
        raise TraceImportError(f"{raw}: no requests")
    return Requests(
        time_s=np.asarray(times, dtype=np.float64),
        klass=np.asarray(classes, dtype=np.int64),
        size_bytes=np.asarray(sizes, dtype=np.float64),
    )


def import_access_log(
    raw: Path,
    *,
    classes: Mapping[str, ClassTarget],
    policies: Mapping[str, Policy],
    seed: int = DEFAULT_IMPORT_SEED,
    compress: float = 1.0,
    source: str = "",
) -> JobRows:
    """A job trace from the first request on, time divided by `compress`; classes not in
    `classes` are dropped. `source` (where the log came from, its licence) heads the header."""
    if compress <= 0:
        raise TraceImportError("--compress must be positive")
    for name, target in classes.items():
        if name not in CLASSES:
            raise TraceImportError(f"request class {name!r}: expected one of {', '.join(CLASSES)}")
        if not 0 < target.share <= 1:
            raise TraceImportError(f"request class {name}: the share kept must be in (0, 1]")
    queue_targets = {name: QueueTarget.of(t.queue, policies) for name, t in classes.items()}
    requests = read_access_log(raw)
    start_s = float(requests.time_s.min())
    rng = np.random.default_rng(seed)
    chosen_all = rng.random(requests.time_s.shape[0])
    parts = []
    notes = []
    for name, target in classes.items():
        of_class = requests.klass == CLASSES.index(name)
        chosen = of_class & (chosen_all < target.share)
        sizes = requests.size_bytes[chosen]
        mean_bytes = float(sizes.mean()) if sizes.size and sizes.mean() > 0 else 1.0
        queue = queue_targets[name]
        run = queue.run_time_s * (0.5 + 0.5 * sizes / mean_bytes)
        parts.append(
            (
                target.queue,
                (requests.time_s[chosen] - start_s) / compress,
                np.minimum(run, queue.max_run_time_s),
            )
        )
        notes.append(
            f"{name} -> {target.queue}: {int(chosen.sum())} of {int(of_class.sum())} "
            f"requests kept (share {target.share:g})"
        )
    span_h = (float(requests.time_s.max()) - start_s) / 3600.0
    first = datetime.fromtimestamp(start_s, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return job_rows(
        [
            *([source] if source else []),
            f"Web access log {raw.name}: {requests.time_s.shape[0]} requests from {first}.",
            f"Transformation (autoscaler trace import access-log ... --compress {compress:g} "
            f"--seed {seed}): arrival_s from the first request (1 s resolution, as logged),",
            f"divided by {compress:g} (the log's {span_h:.3g} h become "
            f"{span_h / compress:.3g} h; requests logged in the same second stay together);",
            "requests classed by path (page, image, other), a seeded share of each class kept "
            "on one queue;",
            "run time = the pool's expected_run_time_s * (0.5 + 0.5 * bytes / the class's mean "
            "bytes), below 95 % of --timeout.",
            "; ".join(notes) + ".",
        ],
        parts,
    )
