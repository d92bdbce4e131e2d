"""Convert public workload traces into the project's trace format, mapped onto pools.

- NASA HTTP (per-second request counts, Kennedy Space Center WWW server, July 1995): a rate
  trace; each request becomes a job on one of the given queues (a seeded multinomial split),
  each bucket's run time the mean of lognormal draws around the queue's pool's typical run
  time (the traces have no run times).
- Azure LLM inference (TIMESTAMP, ContextTokens, GeneratedTokens): a job trace; a seeded
  share of the requests is kept, and the token counts make the run time: a request's
  `0.5 + ContextTokens/2000 + GeneratedTokens/50`, scaled so that the mean is the pool's
  typical run time.
- SWF (Parallel Workloads Archive, e.g. NASA Ames iPSC/860): a job trace; time compressed,
  jobs split by SWF group, run times `typical * sqrt(run / median run)` (the long tail of
  batch jobs compressed towards the pool's typical crawl or bill).

Every run time is kept below the worker's `--timeout` (95 % of it): Laravel kills a longer job.
The raw file is always an argument: nothing here knows where the raw traces live.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from autoscaler.policy.model import Policy
from autoscaler.traces.scenarios import TIMEOUT_SHARE, lognormal_run_times
from autoscaler.traces.writer import JobRows, RateRows, job_rows

FloatArray = npt.NDArray[np.float64]
DEFAULT_IMPORT_SEED = 1995


class TraceImportError(Exception):
    """A raw trace could not be converted; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class QueueTarget:
    """Where converted jobs go: a queue, and its pool's typical run time and ceiling."""

    queue: str
    run_time_s: float
    max_run_time_s: float

    @classmethod
    def of(cls, queue: str, policies: Mapping[str, Policy]) -> QueueTarget:
        for policy in policies.values():
            if queue in policy.queues:
                return cls(
                    queue, policy.expected_run_time_s, TIMEOUT_SHARE * float(policy.timeout_s)
                )
        known = ", ".join(sorted(q for p in policies.values() for q in p.queues))
        raise TraceImportError(f"queue {queue!r} is consumed by no pool (known queues: {known})")


# -- NASA HTTP per second ---------------------------------------------------------------------


def read_counts(raw: Path) -> npt.NDArray[np.int64]:
    """Per-second counts from the archive (a .tbz2 holding workload.txt) or a text file."""
    try:
        if raw.name.endswith((".tbz2", ".tar.bz2")):
            with tarfile.open(raw, "r:bz2") as archive:
                member = next((m for m in archive.getmembers() if m.isfile()), None)
                handle = archive.extractfile(member) if member is not None else None
                if handle is None:
                    raise TraceImportError(f"{raw}: the archive holds no file")
                text = handle.read().decode("ascii")
        elif raw.suffix == ".bz2":
            text = bz2.decompress(raw.read_bytes()).decode("ascii")
        else:
            text = raw.read_text(encoding="ascii")
    except (OSError, tarfile.TarError, UnicodeDecodeError, ValueError) as exc:
        raise TraceImportError(f"{raw}: cannot read: {exc}") from exc
    try:
        counts = np.array(text.split(), dtype=np.int64)
    except ValueError as exc:
        raise TraceImportError(f"{raw}: not whitespace-separated counts: {exc}") from exc
    if counts.size == 0 or np.any(counts < 0):
        raise TraceImportError(f"{raw}: needs one non-negative count per second")
    return counts


def import_nasa_http(
    raw: Path,
    *,
    shares: Mapping[str, float],
    policies: Mapping[str, Policy],
    first_day: int = 12,
    days: int = 1,
    seed: int = DEFAULT_IMPORT_SEED,
) -> RateRows:
    """A rate trace at 1 s: `days` days from day `first_day` (0 = the trace's first day)."""
    total = sum(shares.values())
    if not shares or total > 1.0 + 1e-9 or any(v < 0 for v in shares.values()):
        raise TraceImportError("queue shares must be non-negative and add up to at most 1")
    targets = [QueueTarget.of(queue, policies) for queue in shares]
    counts = read_counts(raw)
    start, end = first_day * 86400, (first_day + days) * 86400
    if end > counts.shape[0]:
        raise TraceImportError(
            f"{raw}: has {counts.shape[0] / 86400:.1f} days; day {first_day} + {days} is past it"
        )
    window = counts[start:end]
    rng = np.random.default_rng(seed)
    probabilities = [*shares.values(), max(0.0, 1.0 - total)]  # the rest is dropped
    split = rng.multinomial(window, probabilities)[:, : len(targets)]  # seconds x queues
    seconds, queue_index = np.nonzero(split)
    arrivals = split[seconds, queue_index]
    service = np.empty(arrivals.shape[0], dtype=np.float64)
    for position, target in enumerate(targets):
        rows = np.flatnonzero(queue_index == position)
        draws = lognormal_run_times(
            rng,
            int(arrivals[rows].sum()),
            mean_s=target.run_time_s,
            cv=0.5,
            max_s=target.max_run_time_s,
        )
        # Each bucket's run time is the mean of its jobs' draws.
        edges = np.concatenate(([0], np.cumsum(arrivals[rows])))
        sums = np.add.reduceat(draws, edges[:-1]) if draws.size else np.zeros(0)
        service[rows] = sums / arrivals[rows]
    kept = int(arrivals.sum())
    return RateRows(
        comments=[
            "NASA Kennedy Space Center WWW server, per-second request counts (public domain "
            "logs, July-August 1995; repackaged per second in",
            "reconfigurable-ml-pipeline/web-service-datasets dataset/nasa/workload.tbz2).",
            f"Transformation (autoscaler trace import nasa-http --day {first_day} --days "
            f"{days} --seed {seed}): day {first_day} of the trace "
            f"({days} day(s), {int(window.sum())} requests) at 1 s buckets;",
            "each request became one job on a queue drawn with these shares (the rest "
            "dropped): " + ", ".join(f"{q} {v:g}" for q, v in shares.items()) + ";",
            "the logs have no run times: each bucket's service_s is the mean of lognormal "
            "draws (cv 0.5) around the pool's expected_run_time_s, below 95 % of --timeout.",
            f"{kept} jobs. Buckets without arrivals are left out.",
        ],
        queues=[t.queue for t in targets],
        time_s=seconds.astype(np.float64),
        queue_index=queue_index.astype(np.int64),
        arrivals=arrivals.astype(np.int64),
        service_s=service,
    )


# -- Azure LLM inference ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AzureRequests:
    arrival_s: FloatArray  # from the file's first request
    context_tokens: FloatArray
    generated_tokens: FloatArray


def read_azure(raw: Path) -> AzureRequests:
    try:
        with raw.open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None or [h.strip() for h in header[:3]] != [
                "TIMESTAMP",
                "ContextTokens",
                "GeneratedTokens",
            ]:
                raise TraceImportError(f"{raw}: expected the header TIMESTAMP,ContextTokens,...")
            stamps, context, generated = [], [], []
            for line, row in enumerate(reader, start=2):
                try:
                    # 7 fractional digits: Python reads at most 6.
                    stamp = datetime.fromisoformat(row[0].strip()[:26])
                    stamps.append(stamp.timestamp())
                    context.append(float(row[1]))
                    generated.append(float(row[2]))
                except (ValueError, IndexError) as exc:
                    raise TraceImportError(f"{raw}:{line}: bad row {row!r}: {exc}") from exc
    except OSError as exc:
        raise TraceImportError(f"{raw}: cannot read: {exc}") from exc
    if not stamps:
        raise TraceImportError(f"{raw}: no requests")
    arrival = np.asarray(stamps)
    return AzureRequests(
        arrival_s=arrival - arrival.min(),
        context_tokens=np.asarray(context),
        generated_tokens=np.asarray(generated),
    )


def import_azure_llm(
    sources: Sequence[tuple[Path, str, float]],
    *,
    policies: Mapping[str, Policy],
    seed: int = DEFAULT_IMPORT_SEED,
) -> JobRows:
    """One job trace from several files, each (file, queue, share of requests kept)."""
    rng = np.random.default_rng(seed)
    parts = []
    notes: list[str] = []
    for raw, queue, keep in sources:
        if not 0 < keep <= 1:
            raise TraceImportError(f"{raw}: the share kept must be in (0, 1], got {keep:g}")
        target = QueueTarget.of(queue, policies)
        requests = read_azure(raw)
        chosen: npt.NDArray[np.bool_] = np.less(rng.random(requests.arrival_s.shape[0]), keep)
        proxy = (
            0.5
            + requests.context_tokens[chosen] / 2000.0
            + requests.generated_tokens[chosen] / 50.0
        )
        scaled = proxy * (target.run_time_s / proxy.mean()) if proxy.size else proxy
        parts.append((queue, requests.arrival_s[chosen], np.minimum(scaled, target.max_run_time_s)))
        notes.append(
            f"{raw.name} -> {queue}: {int(chosen.sum())} of {chosen.shape[0]} requests "
            f"kept (share {keep:g})"
        )
    return job_rows(
        [
            "Azure LLM inference trace, 2023-11-16 (Azure/AzurePublicDataset "
            "data/AzureLLMInferenceTrace_{code,conv}.csv).",
            f"Transformation (autoscaler trace import azure-llm ... --seed {seed}): arrival_s "
            "from each file's first request; a seeded random share of requests kept;",
            "run time from the token counts: 0.5 + ContextTokens/2000 + GeneratedTokens/50, "
            "scaled to the pool's expected_run_time_s on average, below 95 % of --timeout.",
            *notes,
        ],
        parts,
    )


# -- SWF (Standard Workload Format) -----------------------------------------------------------


def read_swf(raw: Path) -> npt.NDArray[np.float64]:
    """The job rows (18 fields) of an SWF file, .gz or plain; `;` lines are comments."""
    try:
        data = raw.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        text = data.decode("ascii")
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as exc:
        raise TraceImportError(f"{raw}: cannot read: {exc}") from exc
    try:
        rows = np.loadtxt(io.StringIO(text), comments=";", ndmin=2)
    except ValueError as exc:
        raise TraceImportError(f"{raw}: not SWF (18 numbers per job line): {exc}") from exc
    if rows.shape[0] == 0 or rows.shape[1] != 18:
        raise TraceImportError(f"{raw}: not SWF: expected 18 fields per job line")
    return rows


def import_swf(
    raw: Path,
    *,
    groups: Mapping[int, str],
    policies: Mapping[str, Policy],
    first_day: float = 17.0,
    days: float = 20.0,
    compress: float = 20.0,
) -> JobRows:
    """Jobs submitted in [first_day, first_day + days) of the log, time divided by
    `compress`; SWF field 13 (group) picks the queue; field 4 (run time) the run time."""
    if compress <= 0 or days <= 0:
        raise TraceImportError("--compress and --days must be positive")
    rows = read_swf(raw)
    submit, run, group = rows[:, 1], rows[:, 3], rows[:, 12].astype(np.int64)
    start = first_day * 86400.0
    in_window = (submit >= start) & (submit < start + days * 86400.0) & (run >= 0)
    parts = []
    notes = []
    for number, queue in groups.items():
        target = QueueTarget.of(queue, policies)
        chosen = in_window & (group == number)
        runs = run[chosen]
        median = float(np.median(run[group == number])) if np.any(group == number) else 1.0
        scaled = target.run_time_s * np.sqrt(runs / max(median, 1.0))
        parts.append(
            (
                queue,
                (submit[chosen] - start) / compress,
                np.clip(scaled, 0.1, target.max_run_time_s),
            )
        )
        notes.append(f"SWF group {number} -> {queue}: {int(chosen.sum())} jobs")
    return job_rows(
        [
            f"{raw.name}: Parallel Workloads Archive, NASA Ames iPSC/860, Oct-Dec 1993 (cleaned "
            "log; via cloudsimplus/cloudsimplus-examples).",
            f"Transformation (autoscaler trace import swf --from-day {first_day:g} --days "
            f"{days:g} --compress {compress:g}): jobs submitted on days {first_day:g} to "
            f"{first_day + days:g},",
            f"time divided by {compress:g} ({days:g} days become {days / compress * 24:.3g} h); "
            "run time = the pool's expected_run_time_s * sqrt(run / the group's median run),",
            "within 0.1 s and 95 % of --timeout (the log's submit times are really start "
            "times, per its header).",
            *notes,
        ],
        parts,
    )
