"""The `slo` strategy: its estimators, sizing and scaling rules, and its closed-loop behaviour."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.decide.core import decide
from autoscaler.decide.plan import ControllerState, MemoryBudget, Plan
from autoscaler.decide.queueing import erlang_c_servers, staffing_rule
from autoscaler.decide.strategies.base import PolicyConstants
from autoscaler.decide.strategies.slo import (
    SERVICE_HALF_LIFE_JOBS,
    TABLE_MAX,
    WEIGHT_CACHE_LIMIT,
    arrival_weight,
    estimate_service_s,
    needed_workers,
    scale,
    slide,
    steady_cell,
    stuck_workers,
)
from autoscaler.observe.estimators import ewma_weight
from autoscaler.policy.model import Policy
from tests.decide_helpers import make_policy, observation, pool_obs

BUDGET = MemoryBudget(budget_mb=1e6)


def test_service_time_moves_by_completions() -> None:
    assert estimate_service_s(2.0, 0, None, 100.0) == (2.0, 100.0)
    assert estimate_service_s(2.0, 3, None, 100.0) == (2.0, 100.0)
    half, seen = estimate_service_s(2.0, int(SERVICE_HALF_LIFE_JOBS), 4.0, 1000.0)
    assert half == pytest.approx(3.0) and seen == 1000.0 + SERVICE_HALF_LIFE_JOBS


def test_the_first_measured_jobs_replace_the_policys_guess() -> None:
    """init writes expected_run_time_s = 1.0; a 15 s crawler must not need ~30 jobs to show."""
    first, seen = estimate_service_s(1.0, 1, 15.0)  # nothing measured yet: the guess goes
    assert first == 15.0 and seen == 1.0
    second, seen = estimate_service_s(first, 1, 17.0, seen)  # the plain mean while few
    assert second == pytest.approx(16.0) and seen == 2.0
    # Once many are measured, one odd job barely moves it (the moving average).
    late, _ = estimate_service_s(16.0, 1, 100.0, 500.0)
    assert late == pytest.approx(16.0 + (1 - 2 ** (-1 / SERVICE_HALF_LIFE_JOBS)) * 84.0)


def need(**overrides: Any) -> int:
    args: dict[str, Any] = {
        "arrival_rate_per_s": 0.5,
        "service_s": 8.0,
        "waiting": 0,
        "oldest_wait_s": 0.0,
        "slo_wait_s": 15.0,
        "steady_percentile": 95.0,
        "startup_s": 3.0,
        "reaction_s": 5.0,
    }
    args.update(overrides)
    return needed_workers(**args).needed


def test_needed_workers_steady_state_is_erlang_c() -> None:
    assert need() == erlang_c_servers(0.5, 8.0, 15.0, 95.0) == 6
    assert need(arrival_rate_per_s=0.0) == 0
    assert need(model="sqrt") in (5, 6, 7)


def test_needed_workers_drains_a_burst_within_the_slo() -> None:
    # 40 jobs, 5 s old, nothing else arriving: 15 − 5 − 3 − 5 leaves less than one
    # decision interval, so the floor applies: 40 × 8 / 5 = 64
    assert need(arrival_rate_per_s=0.0, waiting=40, oldest_wait_s=5.0) == 64
    # the same 40 spread over 80 s at λ = 0.5/s are no burst: 40 × 8 / (15 − 3 − 5) -> 46
    assert need(waiting=40, oldest_wait_s=80.0) == 46
    # a small backlog at a long SLO: 4 × 8 / (300 − 3 − 5) -> 1
    assert need(arrival_rate_per_s=0.0, waiting=4, oldest_wait_s=1.0, slo_wait_s=300.0) == 1


@given(
    st.lists(st.tuples(st.integers(0, 30), st.integers(1, 40)), max_size=40),
    st.integers(1, 200),
)
def test_slide_is_a_sliding_maximum(steps: list[tuple[int, int]], span: int) -> None:
    window: tuple[tuple[float, int], ...] = ()
    history: list[tuple[float, int]] = []
    now = 0.0
    for gap, needed in steps:
        now += gap + 1
        history.append((now, needed))
        window = slide(window, now, needed, float(span))
        expected = max(n for t, n in history if t > now - span)
        assert window[0][1] == expected
        needs = [n for _, n in window]
        assert needs == sorted(needs, reverse=True)
        assert len(set(needs)) == len(needs)


def test_scale_jumps_up_and_steps_down() -> None:
    assert scale(2, 9, 9, 1, None) == 9  # one jump
    assert scale(2, 9, 9, 1, 3) == 5  # bounded by max_step_up
    assert scale(9, 3, 9, 1, None) == 9  # needed 9 within the window: hold
    assert scale(9, 3, 5, 2, None) == 7  # down at most 2
    assert scale(9, 3, 8, 2, None) == 8  # not below the window's maximum


class World:
    """A tiny fluid queue: λ jobs/s arrive, each of `workers` serves 1/S jobs/s."""

    def __init__(self, policy: Policy, *, workers: int) -> None:
        self.policies = {"q": policy}
        self.workers = workers
        self.waiting = 0.0
        self.state = ControllerState()
        self.now = 1000.0
        self.plans: list[Plan] = []

    def tick(self, rate: float, service_s: float, *, logs: bool = True, dt: float = 5.0) -> Plan:
        served = min(self.waiting + rate * dt, self.workers * dt / service_s)
        self.waiting = self.waiting + rate * dt - served
        in_flight = min(self.workers, round(rate * service_s + self.waiting))
        oldest = self.waiting / rate if rate > 0 and self.waiting >= 1 else None
        obs = observation(
            pool_obs(
                "q",
                pending=int(self.waiting),
                reserved=in_flight,
                oldest_wait_s=oldest,
                running=self.workers,
                completions=round(served) if logs else None,
                run_time_mean_s=service_s if served >= 1 else None,
            ),
            at_s=self.now,
        )
        plan, self.state = decide(obs, self.policies, self.state, now_s=self.now, budget=BUDGET)
        self.workers = plan.counts()["q"]
        self.now += dt
        self.plans.append(plan)
        return plan


def test_closed_loop_follows_load_up_in_one_jump_and_down_slowly() -> None:
    policy = make_policy(
        "q",
        min_processes=1,
        max_processes=30,
        expected_run_time_s=2.0,
        slo={"wait_s": 10.0, "percentile": 95.0},
    )
    world = World(policy, workers=1)
    for _ in range(12):
        world.tick(0.2, 2.0)
    quiet = world.workers
    assert quiet <= 2
    counts = [world.tick(5.0, 2.0).counts()["q"] for _ in range(30)]
    # a = 10 busy workers: reached within a few ticks in few jumps, without overshooting
    assert max(counts[:4]) >= 10
    assert max(counts) <= 13
    rises = [b - a for a, b in zip([quiet, *counts], counts, strict=False) if b > a]
    # one jump, then single workers as the estimate of λ converges (the steady-state count
    # trails the load by steady_load_slack, the backlog rule covers the difference)
    assert len(rises) <= 6 and max(rises[1:]) <= 1
    busy = world.workers
    after = [world.tick(0.2, 2.0).counts()["q"] for _ in range(60)]
    window_ticks = int(policy.strategy.slo.scale_down_window_s / 5)
    assert after[window_ticks - 2] == busy  # held through the stabilization window
    drops = [a - b for a, b in zip([busy, *after], after, strict=False) if b < a]
    assert drops and max(drops) <= policy.strategy.slo.scale_down_step
    assert after[-1] <= 2


def test_catch_up_ticks_after_a_stall_step_down_once() -> None:
    """Issue 19.8: after a 20 s supervisord stall three decisions ran within 92 ms and took a
    pool 6 -> 1, bypassing scale_down_step. The step is a rate: back-to-back ticks hold."""
    policy = make_policy("q", min_processes=1, max_processes=30, expected_run_time_s=2.0,
                         slo={"wait_s": 10.0, "percentile": 95.0})  # fmt: skip
    world = World(policy, workers=1)
    for _ in range(8):
        world.tick(5.0, 2.0)
    busy = world.workers
    assert busy >= 6
    world.tick(0.0, 2.0, dt=20.0)  # the stall: one late tick, the load is gone
    world.tick(0.0, 2.0, dt=20.0)
    before = world.workers
    # (dt: the time to the next tick) the first one 20 s late, then two 40 and 50 ms apart
    counts = [world.tick(0.0, 2.0, dt=dt).counts()["q"] for dt in (0.04, 0.05, 5.0)]
    step = policy.strategy.slo.scale_down_step
    assert counts[0] == before - step  # the first catch-up tick steps down ...
    assert counts[1:] == [counts[0], counts[0]]  # ... the next two, 90 ms later, hold
    assert world.tick(0.0, 2.0, dt=5.0).counts()["q"] == counts[0] - step  # then on as usual


def test_no_flapping_when_load_alternates() -> None:
    policy = make_policy("q", max_processes=30, slo={"wait_s": 10.0, "percentile": 95.0})
    world = World(policy, workers=4)
    counts = []
    for index in range(120):
        rate = 4.0 if index % 2 else 0.5
        counts.append(world.tick(rate, 2.0).counts()["q"])
    window_ticks = policy.strategy.slo.scale_down_window_s / 5
    ups = [i for i, (a, b) in enumerate(itertools.pairwise(counts), 1) if b > a]
    downs = [i for i, (a, b) in enumerate(itertools.pairwise(counts), 1) if b < a]
    # never down within the window after an up, so at most one down per window, and an up
    # between two downs; the count stays put on most ticks (the base trails the load by
    # steady_load_slack, so the backlog rule moves it about every 30 s here)
    assert all(not 0 < d - u < window_ticks for u in ups for d in downs)
    assert len(downs) <= len(counts) / window_ticks
    assert len(ups) + len(downs) <= len(counts) // 3


def burst_then_quiet(knobs: dict[str, float], quiet_rate: float) -> list[int]:
    """Counts of a pool that a burst took up, then under a steady `quiet_rate` of 2 s jobs."""
    policy = make_policy(
        "q",
        min_processes=1,
        max_processes=30,
        slo={"wait_s": 10.0, "percentile": 95.0},
        strategy={"name": "slo", "slo": knobs},
    )
    world = World(policy, workers=1)
    for _ in range(4):
        world.tick(3.0, 2.0)
    return [world.tick(quiet_rate, 2.0).counts()["q"] for _ in range(200)]


def test_reversal_hold_keeps_the_count_before_the_last_scale_up_away() -> None:
    """reversal_hold_s: no return to the count before a scale-up within the hold."""
    free = burst_then_quiet({}, 0.1)
    held = burst_then_quiet({"reversal_hold_s": 300.0}, 0.1)
    assert free[20] == 1  # without the hold the pool is back at 1 within 100 s
    first_one = held.index(1)
    # the last scale-up was the burst's (4 ticks of 5 s before the quiet began)
    assert 5 * (first_one + 1) + 20 >= 300
    assert min(held[:first_one]) >= 2


def test_down_percentile_keeps_a_count_that_meets_the_slo_at_the_load() -> None:
    """down_percentile: scale down only to a count that meets that percentile in steady
    state; at a load of 0.8 (0.4 jobs/s of 2 s) one worker leaves ~29 % of jobs past 10 s."""
    free = burst_then_quiet({}, 0.4)
    kept = burst_then_quiet({"down_percentile": 95.0}, 0.4)
    assert min(free) == 1
    assert min(kept[20:]) == erlang_c_servers(0.4, 2.0, 10.0, 95.0) == 2


def test_a_worker_stuck_on_a_long_job_does_not_count_for_the_backlog() -> None:
    """Heavy-tailed run times (azure_functions_2019's default pool): one worker, 1 s jobs on
    average, but the one in hand has run the whole interval; 20 jobs wait, the oldest 50 s
    of its 60 s. 20 jobs of 1 s fit one worker's 10 s left, if it were free: it is not."""
    policy = make_policy("q", max_processes=6, expected_run_time_s=1.0,
                         slo={"wait_s": 60.0, "percentile": 95.0})  # fmt: skip

    def decided(completions: int, oldest_s: float) -> int:
        state = ControllerState()
        for at_s in (1000.0, 1005.0):
            obs = observation(
                pool_obs(
                    "q",
                    pending=20,
                    reserved=1,
                    running=1,
                    oldest_wait_s=oldest_s,
                    completions=completions,
                    run_time_mean_s=1.0,
                ),
                at_s=at_s,
            )
            plan, state = decide(obs, {"q": policy}, state, now_s=at_s, budget=BUDGET)
        return plan.counts()["q"]

    assert stuck_workers(1, 0, 5.0, 1.0, 50.0, 60.0) == 1
    assert decided(completions=0, oldest_s=50.0) >= 2  # the stuck one, and one for the queue
    assert decided(completions=5, oldest_s=50.0) == 1  # it is moving: one is enough
    assert decided(completions=0, oldest_s=20.0) == 1  # not yet: the job may end soon


def test_redis_only_signals_still_scale() -> None:
    policy = make_policy("q", max_processes=30, slo={"wait_s": 10.0, "percentile": 95.0})
    world = World(policy, workers=1)
    for _ in range(20):
        world.tick(3.0, 2.0, logs=False)
    assert world.workers >= 6  # a = 6
    assert world.waiting < 30


def test_reason_names_the_wait_the_load_and_the_step() -> None:
    policy = make_policy(
        "q",
        max_processes=30,
        slo={"wait_s": 30.0, "percentile": 95.0},
        strategy={"name": "slo", "slo": {"max_step_up": 8}},
    )
    state = ControllerState(last_desired={"q": 4})
    obs = observation(
        pool_obs(
            "q",
            pending=300,
            reserved=4,
            oldest_wait_s=48.0,
            running=4,
            completions=10,
            run_time_mean_s=2.4,
        ),
        at_s=1000.0,
    )
    plan, _ = decide(obs, {"q": policy}, state, now_s=1000.0, budget=BUDGET)
    reason = plan.decisions["q"].reason
    assert reason.startswith("oldest wait 48s > SLO 30s; λ=")
    assert "× S=" in reason
    assert plan.counts()["q"] == 12
    assert reason.endswith("+8 (max step 8)")


def test_start_holds_the_running_count_for_the_window() -> None:
    policy = make_policy("q", max_processes=30)
    state = ControllerState()
    counts = []
    for tick in range(40):
        now = 1000.0 + 5 * tick
        obs = observation(pool_obs("q", running=counts[-1] if counts else 6), at_s=now)
        plan, state = decide(obs, {"q": policy}, state, now_s=now, budget=BUDGET)
        counts.append(plan.counts()["q"])
    window_ticks = math.floor(policy.strategy.slo.scale_down_window_s / 5)
    assert counts[: window_ticks - 1] == [6] * (window_ticks - 1)
    assert counts[-1] == 1


def test_a_gap_in_the_data_does_not_fake_an_arrival_burst() -> None:
    policy = make_policy("q", max_processes=30)
    state = ControllerState()
    obs = observation(pool_obs("q", pending=0, running=2, completions=1), at_s=1000.0)
    _, state = decide(obs, {"q": policy}, state, now_s=1000.0, budget=BUDGET)
    rate_before = state.pools["q"].arrival_rate_per_s
    held = observation(pool_obs("q", queues_known=False, running=2), at_s=1005.0)
    _, state = decide(held, {"q": policy}, state, now_s=1005.0, budget=BUDGET)
    # 60 s later 50 jobs are queued; the completions in between were never seen
    obs = observation(pool_obs("q", pending=50, running=2, completions=1), at_s=1060.0)
    _, state = decide(obs, {"q": policy}, state, now_s=1060.0, budget=BUDGET)
    assert state.pools["q"].arrival_rate_per_s == rate_before


def test_the_observers_arrival_count_is_used_when_given() -> None:
    policy = make_policy("q", max_processes=30)
    state = ControllerState()
    obs = observation(pool_obs("q", running=2, completions=None), at_s=1000.0)
    _, state = decide(obs, {"q": policy}, state, now_s=1000.0, budget=BUDGET)
    assert state.pools["q"].arrival_rate_per_s is None  # nothing to go on yet
    # 20 s later (a Redis outage in between): the observer counted 40 arrivals since
    seen = pool_obs("q", running=2, completions=0)
    assert seen.work is not None
    seen.work.arrivals = 40.0
    _, state = decide(
        observation(seen, at_s=1020.0), {"q": policy}, state, now_s=1020.0, budget=BUDGET
    )
    assert state.pools["q"].arrival_rate_per_s == pytest.approx(2.0)


@settings(max_examples=200, deadline=None)
@given(
    pending=st.integers(0, 400),
    oldest=st.floats(0, 400),
    completions=st.integers(0, 50),
    reserved=st.integers(0, 4),
    run_time=st.floats(0.05, 60),
    wait_s=st.floats(1, 300),
    steady_percentile=st.sampled_from([50.0, 80.0, 95.0]),
    model=st.sampled_from(["erlang_c", "sqrt"]),
)
def test_the_hot_path_sizes_as_needed_workers(
    *,
    pending: int,
    oldest: float,
    completions: int,
    reserved: int,
    run_time: float,
    wait_s: float,
    steady_percentile: float,
    model: str,
) -> None:
    knobs = {"name": "slo", "slo": {"steady_percentile": steady_percentile, "model": model}}
    policy = make_policy("q", max_processes=1000, slo={"wait_s": wait_s}, strategy=knobs)
    obs = observation(
        pool_obs(
            "q",
            pending=pending,
            reserved=reserved,
            oldest_wait_s=oldest if pending else None,
            completions=completions,
            run_time_mean_s=run_time,
        )
    )
    plan, state = decide(obs, {"q": policy}, ControllerState(), now_s=1000.0, budget=BUDGET)
    memory = state.pools["q"]
    busy = min(reserved, 2)  # pool_obs runs 2 workers
    stuck = stuck_workers(busy, completions, 5.0, memory.service_s, oldest, wait_s)
    reference = needed_workers(
        arrival_rate_per_s=memory.arrival_rate_per_s or 0.0,
        service_s=memory.service_s,
        waiting=pending,
        oldest_wait_s=oldest if pending else 0.0,
        slo_wait_s=wait_s,
        steady_percentile=steady_percentile,
        startup_s=policy.strategy.slo.startup_s,
        reaction_s=5.0,
        model=model,
        steady_load_slack=policy.strategy.slo.steady_load_slack,
        reaction_share=policy.strategy.slo.reaction_share,
        stuck=stuck if pending else 0,
    ).needed
    needs = int(plan.decisions["q"].reason.split(" needs ")[1].split(";")[0])
    assert needs == min(max(reference, policy.min_processes), policy.max_processes)


@settings(max_examples=150, deadline=None)
@given(
    load=st.floats(0.001, 120),
    decay=st.floats(0.05, 600),
    model=st.sampled_from(["erlang_c", "sqrt"]),
    percentile=st.sampled_from([50.0, 95.0]),
)
def test_steady_cell_bounds_a_constant_count(
    load: float, decay: float, model: str, percentile: float
) -> None:
    rule = staffing_rule(model, percentile)
    low, high, decay_low, decay_high, count = steady_cell(load, decay, rule)
    assert decay_low <= decay * (1 + 1e-12) and decay < decay_high * (1 + 1e-12)
    assert decay_low >= decay / 1.06  # rounded down by at most one 5 % step
    exact = rule(load, decay_low)  # the model at the rounded T/S
    if count <= TABLE_MAX:
        assert count == exact
    else:  # a big pool: the load is rounded up by one 2 % step
        assert exact <= count <= rule(load * 1.021, decay_low)
    assert rule(high, decay_low) <= count  # the whole cell is carried by `count`
    if 1 < count <= TABLE_MAX:
        assert rule(low, decay_low) <= count - 1  # ...and below it one fewer suffices


def test_the_arrival_weight_cache_stays_bounded_on_wall_clock_spans() -> None:
    """The daemon's spans are wall-clock differences that rarely repeat: the cache must not
    grow by one entry per tick for as long as the policy lives."""
    const = PolicyConstants(make_policy("q"))
    for tick in range(20_000):
        span_s = 5.0 + (tick % 9973) * 1e-6
        weight = arrival_weight(const, span_s)
        assert weight == ewma_weight(span_s, const.arrival_half_life_s)
        assert len(const.weights) <= WEIGHT_CACHE_LIMIT
