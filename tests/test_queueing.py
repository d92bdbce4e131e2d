"""Queueing formulas against closed forms and hand-computed cases."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoscaler.decide import queueing as q


def erlang_c_closed_form(servers: int, load: float) -> float:
    """C(c, a) from the textbook sum, independent of the recursion under test."""
    top = load**servers / math.factorial(servers) * servers / (servers - load)
    bottom = sum(load**k / math.factorial(k) for k in range(servers)) + top
    return top / bottom


def test_erlang_b_and_c_hand_values() -> None:
    assert q.erlang_b(0, 3.0) == 1.0
    assert q.erlang_b(2, 1.0) == pytest.approx(0.2)
    assert q.erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert q.erlang_c(3, 3.0) == 1.0  # unstable: everyone waits
    with pytest.raises(ValueError):
        q.erlang_b(-1, 1.0)


@given(st.integers(min_value=1, max_value=40), st.floats(min_value=0.01, max_value=0.99))
def test_erlang_c_matches_closed_form(servers: int, utilisation: float) -> None:
    load = servers * utilisation
    assert q.erlang_c(servers, load) == pytest.approx(erlang_c_closed_form(servers, load))


def test_wait_exceed_probability() -> None:
    # c=2, a=1 (λ=0.5/s, S=2s): P(wait > 4s) = 1/3 · e^{-(2-1)·4/2}
    assert q.wait_exceed_probability(2, 0.5, 2.0, 4.0) == pytest.approx(math.exp(-2) / 3)
    assert q.wait_exceed_probability(1, 1.0, 2.0, 10.0) == 1.0  # unstable
    assert q.wait_exceed_probability(3, 0.0, 2.0, 10.0) == 0.0  # nothing arrives


@given(
    st.floats(min_value=0.001, max_value=50.0),
    st.floats(min_value=0.05, max_value=60.0),
    st.floats(min_value=0.5, max_value=600.0),
    st.sampled_from([50.0, 90.0, 95.0, 99.0, 99.9]),
)
def test_erlang_c_servers_is_the_fewest_that_meet_the_target(
    rate: float, service_s: float, wait_s: float, percentile: float
) -> None:
    count = q.erlang_c_servers(rate, service_s, wait_s, percentile)
    allowed = 1 - percentile / 100
    assert count > rate * service_s
    assert q.wait_exceed_probability(count, rate, service_s, wait_s) <= allowed
    if count - 1 > rate * service_s:
        assert q.wait_exceed_probability(count - 1, rate, service_s, wait_s) > allowed


def test_erlang_c_servers_hand_case() -> None:
    # λ=0.5/s, S=8s (a=4), T=15s, p95: c=5 leaves P(wait>15s)≈0.084, c=6 ≈0.0066.
    assert q.wait_exceed_probability(5, 0.5, 8.0, 15.0) > 0.05
    assert q.erlang_c_servers(0.5, 8.0, 15.0, 95.0) == 6
    assert q.erlang_c_servers(0.0, 8.0, 15.0, 95.0) == 0


def test_sqrt_staffing_is_close_to_erlang_c_for_large_loads() -> None:
    for rate in (5.0, 20.0, 50.0):
        exact = q.erlang_c_servers(rate, 2.0, 1.0, 95.0)
        approx = q.sqrt_staffing_servers(rate, 2.0, 1.0, 95.0)
        assert abs(approx - exact) <= max(1, exact // 20)
    assert q.sqrt_staffing_servers(0.0, 2.0, 1.0, 95.0) == 0
    assert q.halfin_whitt_wait_probability(0.0) == 1.0
    assert 0 < q.halfin_whitt_wait_probability(1.0) < 1


def test_backlog_servers_hand_cases() -> None:
    common = {"service_s": 2.0, "wait_s": 30.0, "startup_s": 0.0, "reaction_s": 5.0}
    assert q.backlog_servers(waiting=0, oldest_wait_s=0, arrival_rate_per_s=1, **common) == 0
    # 60 jobs spread evenly over the last 60 s (λ = 1/s): the youngest must be on its way
    # within 30 s less the 5 s until the next decision -> 60 × 2 / 25 = 4.8; no burst.
    assert q.backlog_servers(
        waiting=60, oldest_wait_s=60, arrival_rate_per_s=1.0, **common
    ) == pytest.approx(4.8)
    # a burst of 60 jobs 10 s old with nothing arriving: 60 × 2 / (30 − 10 − 5) = 8
    assert q.backlog_servers(
        waiting=60, oldest_wait_s=10, arrival_rate_per_s=0.0, **common
    ) == pytest.approx(8.0)
    # the start-up delay shortens both horizons: 60 × 2 / (30 − 10 − 5 − 5) = 12
    assert q.backlog_servers(
        waiting=60,
        oldest_wait_s=10,
        arrival_rate_per_s=0.0,
        service_s=2.0,
        wait_s=30.0,
        startup_s=5.0,
        reaction_s=5.0,
    ) == pytest.approx(12.0)
    # already late: the horizon floor (one reaction, 5 s) applies, 60 × 2 / 5 = 24
    assert q.backlog_servers(
        waiting=60, oldest_wait_s=40, arrival_rate_per_s=0.0, **common
    ) == pytest.approx(24.0)
