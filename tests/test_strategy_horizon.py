"""Horizon's AutoScaler, ported: the scenarios of laravel/horizon tests/Feature/AutoScalerTest.php.

Each scenario: maxProcesses, and per pool current processes / ready jobs / runtime (ms);
the expected counts after successive `scale()` calls (minProcesses 1 unless stated).
"""

from __future__ import annotations

import pytest

from autoscaler.decide.core import decide
from autoscaler.decide.plan import ControllerState, MemoryBudget
from autoscaler.decide.strategies.horizon import (
    HorizonPool,
    horizon_balance,
    horizon_scale_pool,
    horizon_targets,
    update_runtime,
)
from tests.decide_helpers import make_policy, observation, pool_obs

Pools = list[tuple[int, int, float]]  # (current, size, runtime_ms)


def converge(
    max_processes: int,
    pools: Pools,
    calls: int,
    *,
    min_processes: int = 1,
    max_shift: int = 1,
    by_size: bool = False,
    balance: str = "auto",
) -> list[list[int]]:
    """Counts after each of `calls` balancing passes (queues and metrics unchanged)."""
    counts = [current for current, _, _ in pools]
    history = []
    for _ in range(calls):
        state = [
            HorizonPool(
                active=count,
                draining=0,
                size=size,
                runtime_ms=runtime,
                min_processes=min_processes,
            )
            for count, (_, size, runtime) in zip(counts, pools, strict=True)
        ]
        counts = horizon_balance(
            state,
            max_processes=max_processes,
            max_shift=max_shift,
            by_size=by_size,
            balance=balance,
        )
        history.append(counts)
    return history


def test_scaler_attempts_to_get_closer_to_proper_balance_on_each_iteration() -> None:
    history = converge(20, [(10, 20, 10), (10, 10, 10)], 4)
    assert history == [[11, 9], [12, 8], [13, 7], [13, 7]]


def test_balance_stays_even_when_queue_is_empty() -> None:
    history = converge(10, [(5, 0, 0), (5, 0, 0)], 4)
    assert history == [[4, 4], [3, 3], [2, 2], [1, 1]]


def test_balancer_assigns_more_processes_on_busy_queue() -> None:
    history = converge(10, [(1, 50, 50), (1, 0, 0)], 9)
    assert history[1] == [3, 1]
    assert history[3] == [5, 1]
    assert history[5] == [7, 1]
    assert history[8] == [9, 1]


def test_balancing_a_single_queue_assigns_it_the_min_workers_with_empty_queue() -> None:
    assert converge(5, [(2, 0, 0)], 1) == [[1]]


def test_scaler_will_not_scale_past_max_process_threshold_under_high_load() -> None:
    assert converge(20, [(10, 100, 50), (10, 100, 50)], 1) == [[10, 10]]


def test_scaler_will_not_scale_below_minimum_worker_threshold() -> None:
    history = converge(5, [(3, 1000, 50), (2, 1, 1)], 2, min_processes=2)
    assert history == [[3, 2], [3, 2]]


def test_scaler_considers_max_shift_and_attempts_to_get_closer_to_proper_balance() -> None:
    history = converge(150, [(75, 600, 75), (75, 300, 75)], 5, max_shift=10)
    assert history == [[85, 65], [95, 55], [100, 50], [100, 50], [100, 50]]


def test_scaler_does_not_permit_going_to_zero_processes_despite_exceeding_max() -> None:
    history = converge(15, [(16, 1, 1), (1, 1, 1)], 2)
    assert history == [[15, 1], [14, 1]]


def test_scaler_assigns_more_processes_to_queue_with_more_jobs_when_using_size() -> None:
    history = converge(100, [(50, 1000, 10), (50, 500, 1000)], 2, by_size=True)
    assert history == [[51, 49], [52, 48]]


def test_scaler_works_with_a_single_process_pool_with_no_runtime() -> None:
    history = converge(10, [(10, 1, 0)], 3, by_size=True, balance="false")
    assert history == [[9], [8], [7]]


def test_balance_false_sizes_the_single_pool_to_its_jobs_even_with_a_runtime() -> None:
    # laravel/horizon PR #1552: with balance false the queue size decides, checked before
    # the time share; before it, any measured run time sent the pool towards maxProcesses.
    history = converge(10, [(5, 2, 100)], 4, balance="false")
    assert history == [[4], [3], [2], [2]]
    history = converge(10, [(1, 50, 100)], 3, balance="false", max_shift=4)
    assert history == [[5], [9], [10]]
    assert horizon_targets(
        sizes=[0], times=[0], min_processes=[2], max_processes=10, by_size=False, balance="false"
    ) == [2.0]


def test_balance_simple_splits_max_processes_evenly_whatever_the_load() -> None:
    history = converge(10, [(1, 100, 50), (9, 0, 0)], 5, balance="simple")
    assert history[-1] == [5, 5]


def test_targets_share_max_processes_by_time_or_size() -> None:
    common = {"min_processes": [1, 1], "max_processes": 10}
    assert horizon_targets(sizes=[3, 1], times=[300, 100], by_size=False, **common) == [7.5, 2.5]
    assert horizon_targets(sizes=[1, 3], times=[300, 100], by_size=True, **common) == [2.5, 7.5]
    # no runtime measured yet: a queue with jobs gets max, an empty one its min
    assert horizon_targets(sizes=[4, 0], times=[0, 0], by_size=False, **common) == [10.0, 1.0]


def test_draining_workers_count_against_the_supervisor_as_terminating_processes() -> None:
    # 3 active + 2 terminating, target 3: Horizon compares with the total (5) and scales
    # "down" to 4 active -- one more than before (a known Horizon quirk, kept faithfully).
    new = horizon_scale_pool(
        active=3,
        total=5,
        target=3.0,
        supervisor_total=5,
        max_processes=10,
        min_processes=1,
        others_min=0,
        max_shift=1,
    )
    assert new == 4


def test_runtime_metric_resets_at_each_snapshot() -> None:
    memory = update_runtime(None, now_s=10, snapshot_s=300, completions=2, run_time_mean_s=1.0)
    memory = update_runtime(memory, now_s=20, snapshot_s=300, completions=2, run_time_mean_s=3.0)
    assert memory.runtime_ms == pytest.approx(2000.0)
    assert memory.throughput == 4
    memory = update_runtime(memory, now_s=305, snapshot_s=300, completions=0, run_time_mean_s=None)
    assert memory.runtime_ms == 0.0  # horizon:snapshot cleared it


def test_decide_runs_horizon_per_supervisor_with_cooldown() -> None:
    knobs = {"name": "horizon", "horizon": {"max_processes": 10, "balance_cooldown_s": 8}}
    policies = {
        "a": make_policy("a", strategy=knobs, max_processes=10),
        "b": make_policy("b", strategy=knobs, max_processes=10),
    }
    budget = MemoryBudget(budget_mb=1e6)
    state = ControllerState()
    counts = []
    for tick in range(4):
        now = 1000.0 + 5 * tick
        obs = observation(
            pool_obs(
                "a",
                pending=50,
                running=counts[-1][0] if counts else 2,
                completions=5,
                run_time_mean_s=0.05,
            ),
            pool_obs("b", pending=0, running=counts[-1][1] if counts else 2),
            at_s=now,
        )
        plan, state = decide(obs, policies, state, now_s=now, budget=budget)
        counts.append((plan.counts()["a"], plan.counts()["b"]))
    # one step per pass, and the 8 s cooldown skips every other 5 s tick
    assert counts == [(3, 1), (3, 1), (4, 1), (4, 1)]
    assert (
        "horizon default" in plan.decisions["a"].reason or "cooling" in plan.decisions["a"].reason
    )


def test_decide_with_balance_false_sizes_each_pool_alone_to_its_jobs() -> None:
    knobs = {"name": "horizon", "horizon": {"balance": "false", "balance_cooldown_s": 0}}
    policies = {
        "a": make_policy("a", strategy=knobs, max_processes=6),
        "b": make_policy("b", strategy=knobs, max_processes=6),
    }
    budget = MemoryBudget(budget_mb=1e6)
    state = ControllerState()
    counts = []
    for tick in range(5):
        now = 1000.0 + 5 * tick
        running = counts[-1] if counts else (1, 1)
        obs = observation(
            pool_obs("a", pending=3, running=running[0], completions=2, run_time_mean_s=4.0),
            pool_obs("b", pending=0, running=running[1]),
            at_s=now,
        )
        plan, state = decide(obs, policies, state, now_s=now, budget=budget)
        counts.append((plan.counts()["a"], plan.counts()["b"]))
    # a: +1 per pass up to its 3 waiting jobs (not its time share of a shared maximum);
    # b: alone with nothing waiting, it stays at its minimum
    assert counts == [(2, 1), (3, 1), (3, 1), (3, 1), (3, 1)]
    assert "balance false" in plan.decisions["a"].reason
