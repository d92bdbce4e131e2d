"""The oracle: no job late where the pool's maximum allows it, at a cost no fixed count beats."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from autoscaler.observe.observation import Observation
from autoscaler.policy.loader import PolicySet
from autoscaler.simulate.engine import SimulationResult, World, WorldSettings, simulate
from autoscaler.simulate.oracle import OracleController
from autoscaler.simulate.oracle_search import run_oracle as searched_oracle
from autoscaler.simulate.oracle_search import score
from autoscaler.traces.loader import Trace, parse_trace
from tests.sim_helpers import policy_set

SETTINGS = WorldSettings(interval_s=5.0, startup_s=1.0, memory_budget_mb=100_000.0)


class Fixed:
    def __init__(self, counts: Mapping[str, int]) -> None:
        self.counts = counts

    def choose(self, observation: Observation, world: World) -> Mapping[str, int]:
        return self.counts


def bursty_trace(policies: PolicySet, seed: int) -> Trace:
    """Quiet stretches and bursts of 2 s jobs on `mail`."""
    rng = np.random.default_rng(seed)
    rows = ["arrival_s,queue,service_s"]
    for minute in range(20):
        rate = 2.0 if minute % 5 == 2 else 0.2
        count = rng.poisson(rate * 60)
        for arrival in np.sort(rng.uniform(minute * 60, minute * 60 + 60, count)):
            rows.append(f"{arrival:.3f},mail,{rng.exponential(2.0):.3f}")
    return parse_trace("\n".join(rows) + "\n", policies, name="bursty")


@pytest.fixture
def policies(tmp_path: Path) -> PolicySet:
    return policy_set(
        tmp_path,
        {
            "mail": {
                "min_processes": 1,
                "static_processes": 2,
                "max_processes": 12,
                "slo": {"wait_s": 10.0, "percentile": 95.0},
            }
        },
    )


def run_oracle(trace: Trace, policies: PolicySet, settings: WorldSettings) -> SimulationResult:
    oracle = OracleController(policies, usable_memory_mb=settings.usable_memory_mb)
    return simulate(trace, policies, oracle, strategy="oracle", settings=settings)


@pytest.mark.parametrize("seed", [1, 2])
def test_no_job_waits_past_the_slo_when_the_maximum_allows(policies: PolicySet, seed: int) -> None:
    trace = bursty_trace(policies, seed)
    result = run_oracle(trace, policies, SETTINGS)
    pool = result.pools["mail"]
    assert pool.jobs == trace.jobs
    assert float(pool.waits_s.max()) <= 10.0
    # ... and it does that with fewer worker-seconds than any fixed count that also does.
    cheapest_fixed = None
    for count in range(1, 13):
        fixed = simulate(trace, policies, Fixed({"mail": count}), strategy="f", settings=SETTINGS)
        if float(fixed.pools["mail"].waits_s.max()) <= 10.0:
            cheapest_fixed = fixed.pools["mail"].worker_seconds
            break
    assert cheapest_fixed is not None
    assert pool.worker_seconds < cheapest_fixed


def test_an_idle_pool_sits_at_its_minimum(policies: PolicySet) -> None:
    trace = parse_trace("arrival_s,queue,service_s\n3600,mail,1\n", policies, name="one")
    result = run_oracle(trace, policies, SETTINGS)
    # Two workers at start; one leaves at the first tick; the job finishes at 3601.
    assert result.pools["mail"].worker_seconds == pytest.approx(3601.0)
    assert result.pools["mail"].waits_s.tolist() == [0.0]


def test_the_oracle_respects_the_memory_budget_by_priority(tmp_path: Path) -> None:
    policies = policy_set(
        tmp_path,
        {
            "urgent": {"min_processes": 1, "max_processes": 8, "priority": 10},
            "batch": {"min_processes": 1, "max_processes": 8, "priority": 900},
        },
    )
    rows = ["arrival_s,queue,service_s"]
    for second in range(300):
        rows += [f"{second},urgent,4", f"{second},batch,4"]
    trace = parse_trace("\n".join(rows) + "\n", policies, name="both")
    budget = WorldSettings(interval_s=5.0, startup_s=1.0, memory_budget_mb=6 * 128.0)
    result = run_oracle(trace, policies, budget)
    assert result.peak_memory_mb <= 6 * 128.0
    urgent, batch = result.pools["urgent"], result.pools["batch"]
    # Both need 4 workers; the budget holds 6 in all: the important pool gets what it needs
    # first, the other keeps its minimum and what is left.
    assert float(urgent.waits_s.max()) <= 30.0
    assert np.mean(batch.waits_s > 30) > 0.5


class Schedule:
    """A fixed count per tick, then none."""

    def __init__(self, counts: tuple[int, ...]) -> None:
        self.counts = counts

    def choose(self, observation: Observation, world: World) -> Mapping[str, int]:
        tick = int(observation.at_s // 5)
        return {"mail": self.counts[tick] if tick < len(self.counts) else 0}


@pytest.mark.parametrize("seed", [1, 3])
def test_the_oracle_is_near_the_cheapest_schedule(tmp_path: Path, seed: int) -> None:
    """Against every schedule of 0-3 workers over the ticks that matter (exhaustive)."""
    policies = policy_set(
        tmp_path,
        {
            "mail": {
                "min_processes": 0,
                "static_processes": 0,
                "max_processes": 3,
                "slo": {"wait_s": 4.0, "percentile": 95.0},
            }
        },
    )
    rng = np.random.default_rng(seed)
    count = int(rng.integers(4, 7))
    rows = ["arrival_s,queue,service_s"] + [
        f"{a:.2f},mail,{s:.2f}"
        for a, s in zip(np.sort(rng.uniform(0, 14, count)), rng.uniform(0.5, 5, count), strict=True)
    ]
    trace = parse_trace("\n".join(rows) + "\n", policies, name="tiny")
    settings = WorldSettings(interval_s=5.0, startup_s=1.0, memory_budget_mb=1e6)
    oracle = run_oracle(trace, policies, settings).pools["mail"]
    assert float(oracle.waits_s.max()) <= 4.0
    cheapest = min(
        result.pools["mail"].worker_seconds
        for counts in itertools.product(range(4), repeat=5)
        if (
            result := simulate(
                trace,
                policies,
                Schedule(counts),
                strategy="s",
                settings=settings,
                keep_series=False,
            )
        )
        .pools["mail"]
        .unserved
        == 0
        and float(result.pools["mail"].waits_s.max()) <= 4.0
    )
    assert oracle.worker_seconds <= 1.1 * cheapest


class PairSchedule:
    """A fixed count per tick for each of two pools, then none."""

    def __init__(self, first: tuple[int, ...], second: tuple[int, ...]) -> None:
        self.first, self.second = first, second

    def choose(self, observation: Observation, world: World) -> Mapping[str, int]:
        tick = int(observation.at_s // 5)
        later = tick >= len(self.first)
        return {"hi": 0 if later else self.first[tick], "lo": 0 if later else self.second[tick]}


def late_jobs(result: SimulationResult, wait_s: float) -> int:
    return sum(int((p.waits_s > wait_s).sum()) + p.unserved for p in result.pools.values())


@pytest.mark.parametrize("seed", [2, 5])
def test_the_oracle_under_a_budget_that_binds_across_pools(tmp_path: Path, seed: int) -> None:
    """Two pools of at most 2 workers, memory for 3 in all: against every schedule that fits
    the budget (exhaustive), the oracle leaves no job late where some schedule does, at
    within 30 % of the cheapest such schedule's worker-seconds."""
    knobs = {"min_processes": 0, "static_processes": 0, "max_processes": 2}
    slo = {"wait_s": 4.0, "percentile": 95.0}
    policies = policy_set(
        tmp_path,
        {
            "hi": {**knobs, "priority": 10, "memory_per_worker_mb": 100, "slo": slo},
            "lo": {**knobs, "priority": 900, "memory_per_worker_mb": 100, "slo": slo},
        },
    )
    rng = np.random.default_rng(seed)
    rows = ["arrival_s,queue,service_s"]
    for queue in ("hi", "lo"):
        count = int(rng.integers(3, 5))
        arrivals, services = np.sort(rng.uniform(0, 8, count)), rng.uniform(0.5, 3, count)
        rows += [f"{a:.2f},{queue},{s:.2f}" for a, s in zip(arrivals, services, strict=True)]
    trace = parse_trace("\n".join(rows) + "\n", policies, name="pair")
    settings = WorldSettings(interval_s=5.0, startup_s=1.0, memory_budget_mb=300.0)
    oracle = searched_oracle(trace, policies, settings=settings)
    assert oracle.peak_memory_mb <= 300.0
    cheapest: dict[int, float] = {}
    for first in itertools.product(range(3), repeat=3):
        for second in itertools.product(range(3), repeat=3):
            if any(a + b > 3 for a, b in zip(first, second, strict=True)):
                continue
            result = simulate(
                trace,
                policies,
                PairSchedule(first, second),
                strategy="s",
                settings=settings,
                keep_series=False,
            )
            if any(pool.unserved for pool in result.pools.values()):
                continue
            late = late_jobs(result, 4.0)
            cost = sum(pool.worker_seconds for pool in result.pools.values())
            cheapest[late] = min(cheapest.get(late, math.inf), cost)
    assert 0 in cheapest  # the budget binds, but some schedule leaves no job late
    assert late_jobs(oracle, 4.0) == 0
    # measured: 1.26x (seed 2) and 1.14x (seed 5); one tick at a time, it cannot see that
    # holding a worker across a tick can be cheaper than the start it saves later
    assert sum(pool.worker_seconds for pool in oracle.pools.values()) <= 1.3 * cheapest[0]


def test_the_split_search_runs_only_when_the_budget_binds_and_never_does_worse(
    tmp_path: Path,
) -> None:
    policies = policy_set(
        tmp_path,
        {
            "urgent": {"min_processes": 1, "max_processes": 8, "priority": 10},
            "batch": {"min_processes": 1, "max_processes": 8, "priority": 900},
        },
    )
    rng = np.random.default_rng(4)
    rows = ["arrival_s,queue,service_s"]
    for second in range(0, 240, 2):
        rows += [f"{second},urgent,{rng.uniform(2, 6):.2f}", f"{second},batch,4"]
    trace = parse_trace("\n".join(rows) + "\n", policies, name="both")
    roomy = WorldSettings(interval_s=5.0, startup_s=1.0, memory_budget_mb=1e6)
    controller = OracleController(policies, usable_memory_mb=roomy.usable_memory_mb)
    plain = simulate(trace, policies, controller, strategy="oracle", settings=roomy)
    assert not controller.bound
    assert score(searched_oracle(trace, policies, settings=roomy)) == score(plain)
    tight = WorldSettings(interval_s=5.0, startup_s=1.0, memory_budget_mb=4 * 128.0)
    controller = OracleController(policies, usable_memory_mb=tight.usable_memory_mb)
    first = simulate(trace, policies, controller, strategy="oracle", settings=tight)
    assert controller.bound
    best = searched_oracle(trace, policies, settings=tight)
    assert score(best) <= score(first)
    assert best.peak_memory_mb <= 4 * 128.0
