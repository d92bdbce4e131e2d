"""Convert the Azure Functions 2019 trace (per-minute invocation counts per function) into a
job trace, mapped onto queues by trigger.

The public files (Azure/AzurePublicDataset, `AzureFunctionsDataset2019`; samples of it in
vhive-serverless/invitro) have one row per function:
- invocations: `HashOwner,HashApp,HashFunction,Trigger,<minute>,<minute>,...` (the minute
  columns are minutes of the day, 1-based in the full files, any run of them in samples);
- durations: `HashOwner,HashApp,HashFunction,Average,Count,Minimum,Maximum,
  percentile_Average_0,_1,_25,_50,_75,_99,_100` in milliseconds.

Each trigger kind goes to one queue; a seeded share of each minute's invocations is kept
(binomial thinning keeps every function's shape). A function's kept invocations in a minute
are spaced evenly over it from a per-function phase (a timer that fires once a minute fires
at the same second every minute). Each job's run time is drawn from its own function's
duration percentiles (log-linear between them; linear would put a quarter of the draws
between p75 and p99 at their arithmetic middle and inflate the mean), scaled so that the
mean is the function's reported Average: run times are the real ones, not scaled to the
pool; they are kept within 10 ms and 95 % of the worker's `--timeout`.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from autoscaler.policy.model import Policy
from autoscaler.traces.convert import DEFAULT_IMPORT_SEED, QueueTarget, TraceImportError
from autoscaler.traces.writer import JobRows, job_rows

FloatArray = npt.NDArray[np.float64]
INVOCATION_KEYS = ("HashOwner", "HashApp", "HashFunction", "Trigger")
PERCENTILE_COLUMNS = tuple(f"percentile_Average_{p}" for p in (0, 1, 25, 50, 75, 99, 100))
PERCENTILE_LEVELS = np.array([0.0, 0.01, 0.25, 0.5, 0.75, 0.99, 1.0])
MIN_RUN_TIME_S = 0.01


@dataclass(frozen=True, slots=True)
class FunctionMinutes:
    function: str  # HashFunction
    trigger: str
    counts: npt.NDArray[np.int64]  # one per minute column


@dataclass(frozen=True, slots=True)
class TriggerTarget:
    queue: str
    share: float  # of the invocations kept


def _rows(raw: Path) -> Iterator[tuple[int, list[str]]]:
    try:
        with raw.open(encoding="utf-8", newline="") as handle:
            yield from enumerate(csv.reader(handle), start=1)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise TraceImportError(f"{raw}: cannot read: {exc}") from exc


def read_invocations(raw: Path) -> tuple[list[int], list[FunctionMinutes]]:
    """The minute numbers of the columns, and each function's counts."""
    rows = _rows(raw)
    _, header = next(rows, (1, []))
    if tuple(h.strip() for h in header[:4]) != INVOCATION_KEYS or len(header) < 5:
        raise TraceImportError(
            f"{raw}:1: expected the header {','.join(INVOCATION_KEYS)},1,2,... (minute columns)"
        )
    try:
        minutes = [int(h) for h in header[4:]]
    except ValueError as exc:
        raise TraceImportError(f"{raw}:1: minute columns must be integers: {exc}") from exc
    if any(b != a + 1 for a, b in itertools.pairwise(minutes)):
        raise TraceImportError(f"{raw}:1: minute columns must be consecutive")
    functions = []
    for line, row in rows:
        if len(row) != len(header):
            raise TraceImportError(f"{raw}:{line}: {len(row)} fields, the header has {len(header)}")
        bad = next((i for i, v in enumerate(row[4:]) if not v.strip().isdigit()), None)
        if bad is not None:  # counts are whole and non-negative
            raise TraceImportError(
                f"{raw}:{line}: minute {header[4 + bad]}: bad invocation count {row[4 + bad]!r}"
            )
        counts = np.array([int(v) for v in row[4:]], dtype=np.int64)
        functions.append(FunctionMinutes(row[2], row[3].strip(), counts))
    if not functions:
        raise TraceImportError(f"{raw}: no functions")
    return minutes, functions


def read_durations(raw: Path) -> dict[str, FloatArray]:
    """Each function's duration percentiles in seconds (levels PERCENTILE_LEVELS), scaled so
    that the distribution they make (log-linear between them) has the function's Average."""
    rows = _rows(raw)
    _, header = next(rows, (1, []))
    names = [h.strip() for h in header]
    missing = [c for c in ("HashFunction", "Average", *PERCENTILE_COLUMNS) if c not in names]
    if missing:
        raise TraceImportError(f"{raw}:1: no column {', '.join(missing)}")
    function_at, average_at = names.index("HashFunction"), names.index("Average")
    columns = [names.index(c) for c in PERCENTILE_COLUMNS]
    durations = {}
    for line, row in rows:
        try:
            ms = np.array([float(row[c]) for c in columns])
            average_ms = float(row[average_at])
        except (ValueError, IndexError) as exc:
            raise TraceImportError(f"{raw}:{line}: bad duration percentiles: {exc}") from exc
        if np.any(ms < 0) or np.any(np.diff(ms) < 0) or average_ms < 0:
            raise TraceImportError(
                f"{raw}:{line}: duration percentiles must be non-negative and non-decreasing"
            )
        points = np.maximum(ms, 1.0)  # 1 ms: the log needs a positive floor
        scale = max(average_ms, 1.0) / log_linear_mean(points)
        durations[row[function_at]] = points * scale / 1000.0
    return durations


def log_linear_mean(points: FloatArray) -> float:
    """The mean of the distribution whose quantile function is log-linear between `points`
    at PERCENTILE_LEVELS (each segment's mean is (b - a) / ln(b / a))."""
    low, high = points[:-1], points[1:]
    ratio = np.log(high / low)
    flat = ratio < 1e-12
    segment = np.where(flat, low, (high - low) / np.where(flat, 1.0, ratio))
    return float(np.sum(np.diff(PERCENTILE_LEVELS) * segment))


def draw_run_times(rng: np.random.Generator, count: int, points_s: FloatArray) -> FloatArray:
    """Inverse-CDF draws, log-linear between the percentile points."""
    return np.exp(np.interp(rng.random(count), PERCENTILE_LEVELS, np.log(points_s)))


def import_azure_functions(
    invocations: Path,
    durations: Path,
    *,
    triggers: Mapping[str, TriggerTarget],
    policies: Mapping[str, Policy],
    seed: int = DEFAULT_IMPORT_SEED,
    source: str = "",
) -> JobRows:
    """A job trace from the minute columns; trigger kinds not in `triggers` are dropped.
    `source` (where these files came from) is added to the header comment."""
    for trigger, wanted in triggers.items():
        if not 0 < wanted.share <= 1:
            raise TraceImportError(f"trigger {trigger}: the share kept must be in (0, 1]")
    queue_targets = {t: QueueTarget.of(target.queue, policies) for t, target in triggers.items()}
    minutes, functions = read_invocations(invocations)
    run_times = read_durations(durations)
    rng = np.random.default_rng(seed)
    parts = []
    kept: dict[str, int] = dict.fromkeys(triggers, 0)
    seen: dict[str, int] = dict.fromkeys(triggers, 0)
    for function in functions:
        target = triggers.get(function.trigger)
        if target is None:
            continue
        percentiles = run_times.get(function.function)
        if percentiles is None:
            raise TraceImportError(f"{durations}: no durations for function {function.function}")
        counts = rng.binomial(function.counts, target.share)
        total = int(counts.sum())
        seen[function.trigger] += int(function.counts.sum())
        kept[function.trigger] += total
        if total == 0:
            continue
        phase = rng.random()
        minute = np.repeat(np.arange(counts.shape[0], dtype=np.float64), counts)
        rank = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        arrival = 60.0 * (minute + (rank + phase) / np.repeat(counts, counts))
        draws = draw_run_times(rng, total, percentiles)
        ceiling = queue_targets[function.trigger].max_run_time_s
        parts.append((target.queue, arrival, np.clip(draws, MIN_RUN_TIME_S, ceiling)))
    mapping = "; ".join(
        f"{trigger} -> {t.queue}: {kept[trigger]} of {seen[trigger]} invocations kept "
        f"(share {t.share:g})"
        for trigger, t in triggers.items()
    )
    return job_rows(
        [
            "Azure Functions trace 2019 (Azure/AzurePublicDataset AzureFunctionsDataset2019, "
            "CC-BY 4.0), per-minute invocation counts",
            f"and duration percentiles per function: {invocations.name}, {durations.name} "
            f"({len(functions)} functions, minutes {minutes[0]} to {minutes[-1]} of the day).",
            f"Transformation (autoscaler trace import azure-functions ... --seed {seed}): "
            f"arrival_s from minute {minutes[0]}; each trigger kind to one queue,",
            "a seeded binomial share of each function's invocations per minute kept, spaced "
            "evenly over the minute from a per-function phase;",
            "each job's run time drawn from its function's duration percentiles (0, 1, 25, "
            "50, 75, 99, 100; log-linear between, scaled to the",
            "function's Average), within 10 ms and 95 % of --timeout.",
            mapping + ". Other triggers dropped.",
            *([source] if source else []),
        ],
        parts,
    )
