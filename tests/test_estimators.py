"""Estimators on hand-computed cases; scalar and vectorised forms agree."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autoscaler.observe import estimators as est


def test_arrivals_flow_balance() -> None:
    # 10 queued, 4 finished, now 9 queued: 3 arrived.
    assert est.arrivals(4, 10, 9) == 3
    # a hand-deleted backlog is not negative arrivals
    assert est.arrivals(0, 10, 2) == 0
    series = est.arrivals_series(np.array([4.0, 0.0, 2.0]), np.array([10.0, 9.0, 12.0, 10.0]))
    assert series.tolist() == [3.0, 3.0, 0.0]
    with pytest.raises(ValueError):
        est.arrivals_series(np.array([1.0]), np.array([1.0]))


def test_ewma_half_life() -> None:
    assert est.ewma_weight(10, 10) == pytest.approx(0.5)
    assert est.ewma_weight(5, 0) == 1.0
    assert est.ewma_step(None, 7.0, dt_s=5, half_life_s=10) == 7.0
    # after one half-life the estimate has moved half way
    assert est.ewma_step(0.0, 8.0, dt_s=10, half_life_s=10) == pytest.approx(4.0)
    # two 5 s steps equal one 10 s step for a constant input
    two = est.ewma_step(
        est.ewma_step(0.0, 8.0, dt_s=5, half_life_s=10), 8.0, dt_s=5, half_life_s=10
    )
    assert two == pytest.approx(4.0)


def test_ewma_series_matches_steps() -> None:
    samples = np.array([1.0, 5.0, 2.0, 8.0, 0.0])
    series = est.ewma_series(samples, dt_s=5, half_life_s=15)
    value = None
    for index, sample in enumerate(samples):
        value = est.ewma_step(value, float(sample), dt_s=5, half_life_s=15)
        assert series[index] == pytest.approx(value)
    assert est.ewma_series(np.array([]), dt_s=1, half_life_s=1).size == 0


def test_run_time_stats() -> None:
    assert est.run_time_stats(np.array([])) == (None, None)
    mean, p95 = est.run_time_stats(np.arange(1.0, 21.0))  # 1..20
    assert mean == 10.5
    assert p95 == pytest.approx(19.05)  # numpy linear interpolation: 1 + 0.95 * 19


def test_busy_fraction() -> None:
    assert est.busy_fraction(3, 4) == 0.75
    assert est.busy_fraction(5, 4) == 1.0
    assert est.busy_fraction(1, 0) == 0.0
    got = est.busy_fraction_series(np.array([3.0, 5.0, 1.0]), np.array([4.0, 4.0, 0.0]))
    assert got.tolist() == [0.75, 1.0, 0.0]
    assert est.rate_per_s(10, 5) == 2 and est.rate_per_s(1, 0) == 0
    assert math.isclose(est.ewma_weight(1, 1e9), 0, abs_tol=1e-8)
