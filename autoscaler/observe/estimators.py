"""Estimators as pure functions: arrival rate, run time, busy fraction.

Each comes in two forms: a scalar step for the per-tick decision (numpy's per-call overhead
would dominate a handful of numbers) and a vectorised form over numpy arrays for recorded
series (`autoscaler record`, tests). Both compute the same thing; a test checks they agree.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def arrivals(completions: float, queued_before: float, queued_after: float) -> float:
    """Jobs that arrived during an interval, by flow balance: what left plus what piled up.

    `queued` counts every job not yet finished (pending + reserved + due delayed). Never
    negative: a drop larger than the completions (a job deleted by hand) is not an arrival.
    """
    return max(0.0, completions + queued_after - queued_before)


def arrivals_series(completions: FloatArray, queued: FloatArray) -> FloatArray:
    """Vectorised `arrivals`: `queued` has one more sample than `completions` (the state
    before the first interval, then after each)."""
    if queued.shape[0] != completions.shape[0] + 1:
        raise ValueError("queued needs one sample more than completions")
    return np.maximum(0.0, completions + np.diff(queued))


def ewma_weight(dt_s: float, half_life_s: float) -> float:
    """Weight of a new sample after `dt_s` seconds, for an EWMA with the given half-life."""
    if half_life_s <= 0:
        return 1.0
    return 1.0 - math.pow(2.0, -dt_s / half_life_s)


def ewma_step(previous: float | None, sample: float, *, dt_s: float, half_life_s: float) -> float:
    """One EWMA update; the first sample is taken as is."""
    if previous is None:
        return sample
    return previous + ewma_weight(dt_s, half_life_s) * (sample - previous)


def ewma_series(samples: FloatArray, *, dt_s: float, half_life_s: float) -> FloatArray:
    """Every intermediate value of `ewma_step` over equally spaced samples."""
    out = np.empty_like(samples, dtype=np.float64)
    if samples.size == 0:
        return out
    weight = ewma_weight(dt_s, half_life_s)
    value = float(samples[0])
    out[0] = value
    for index in range(1, samples.size):  # recursive by nature; series are short
        value += weight * (float(samples[index]) - value)
        out[index] = value
    return out


def rate_per_s(count: float, dt_s: float) -> float:
    return count / dt_s if dt_s > 0 else 0.0


def run_time_stats(durations_s: FloatArray) -> tuple[float | None, float | None]:
    """Mean and 95th percentile of job run times; (None, None) when there are none."""
    if durations_s.size == 0:
        return None, None
    return float(np.mean(durations_s)), float(np.percentile(durations_s, 95))


def busy_fraction(busy_workers: float, workers: float) -> float:
    """Share of the workers holding a job, in [0, 1]; 0 with no workers."""
    if workers <= 0:
        return 0.0
    return min(1.0, max(0.0, busy_workers / workers))


def busy_fraction_series(busy_workers: FloatArray, workers: FloatArray) -> FloatArray:
    safe = np.where(workers > 0, workers, 1.0)
    return np.where(workers > 0, np.clip(busy_workers / safe, 0.0, 1.0), 0.0)
