"""decide: holding on missing data, bounds, the budget, purity -- unit cases and properties."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoscaler.decide.core import decide
from autoscaler.decide.plan import ControllerState, MemoryBudget, Plan, PoolDecision
from autoscaler.observe.observation import Observation, PoolObservation
from autoscaler.policy.loader import PolicySet
from autoscaler.policy.model import STRATEGY_NAMES, Policy
from autoscaler.supervisord.slots import WorkerCounts
from tests.decide_helpers import make_policy, observation, pool_obs

BUDGET = MemoryBudget(budget_mb=1e6)


def test_missing_queues_or_workers_hold_the_count() -> None:
    policies = {"a": make_policy("a"), "b": make_policy("b"), "c": make_policy("c")}
    state = ControllerState(last_desired={"a": 5, "b": 4, "c": 3})
    obs = Observation(
        at_s=1000.0,
        interval_s=5.0,
        pools={
            "a": pool_obs("a", queues_known=False, running=5),
            "b": pool_obs("b", workers_known=False),
        },
        redis_error="connection refused",
    )
    plan, new_state = decide(obs, policies, state, now_s=1000.0, budget=BUDGET)
    assert plan.counts() == {"a": 5, "b": 4, "c": 3}
    assert all(d.held for d in plan.decisions.values())
    assert plan.decisions["a"].reason == "queues unknown (connection refused): hold 5"
    assert plan.decisions["b"].reason == "workers unknown: hold 4"
    assert plan.decisions["b"].current is None
    assert plan.decisions["c"].reason == "pool not observed: hold 3"
    assert new_state.last_desired == {"a": 5, "b": 4, "c": 3}


def test_stale_observation_holds_everything() -> None:
    policies = {"a": make_policy("a")}
    obs = observation(pool_obs("a", pending=500, oldest_wait_s=100.0), at_s=900.0)
    plan, _ = decide(obs, policies, ControllerState(), now_s=1000.0, budget=BUDGET)
    assert plan.decisions["a"].held
    assert plan.decisions["a"].reason == "observation 100s old: hold 2"


def test_held_count_respects_changed_bounds() -> None:
    policies = {"a": make_policy("a", min_processes=2, max_processes=4, static_processes=3)}
    obs = observation(pool_obs("a", workers_known=False))
    plan, _ = decide(
        obs, policies, ControllerState(last_desired={"a": 9}), now_s=1000.0, budget=BUDGET
    )
    assert plan.counts() == {"a": 4}
    plan, _ = decide(obs, policies, ControllerState(), now_s=1000.0, budget=BUDGET)
    assert plan.counts() == {"a": 3}  # nothing known at all: the static count
    # A first start that sees no worker of ours and no queue: the static count, not min.
    blind = observation(pool_obs("a", queues_known=False, running=0))
    plan, _ = decide(blind, policies, ControllerState(), now_s=1000.0, budget=BUDGET)
    assert plan.counts() == {"a": 3}
    # Decided before (0 is a decision too, with min 0): kept.
    zero = {"a": make_policy("a", min_processes=0, max_processes=4, static_processes=3)}
    plan, _ = decide(
        blind, zero, ControllerState(last_desired={"a": 0}), now_s=1000.0, budget=BUDGET
    )
    assert plan.counts() == {"a": 0}


def test_static_strategy_and_decision_shape() -> None:
    policies = {"a": make_policy("a", strategy="static", static_processes=3)}
    plan, state = decide(
        observation(pool_obs("a")), policies, ControllerState(), now_s=1000.0, budget=BUDGET
    )
    decision = plan.decisions["a"]
    assert decision == PoolDecision(
        pool="a", strategy="static", current=2, desired=3, reason="static 3", wanted=3
    )
    assert dataclasses.asdict(decision)["reason"] == "static 3"
    assert dataclasses.replace(decision, desired=4).reason == "static 3"
    assert plan.memory_planned_mb == 300
    assert state.last_desired == {"a": 3}


def test_memory_available_limits_the_budget() -> None:
    policies = {"a": make_policy("a", max_processes=20, memory_per_worker_mb=100, min_processes=1)}
    obs = observation(
        pool_obs("a", pending=1000, oldest_wait_s=60.0, running=2), memory_available_mb=300
    )
    plan, _ = decide(obs, policies, ControllerState(), now_s=1000.0, budget=BUDGET)
    assert plan.memory_limit_mb == 500  # 300 free + 200 held by the two running workers
    assert plan.counts() == {"a": 5}
    assert plan.decisions["a"].capped
    assert "memory budget (500 MB) caps at 5" in plan.decisions["a"].reason


def test_policy_set_and_strategy_switch() -> None:
    policies = PolicySet({"a": make_policy("a")}, files={})
    obs = observation(pool_obs("a", pending=3, oldest_wait_s=1.0))
    _, state = decide(obs, policies, ControllerState(), now_s=1000.0, budget=BUDGET)
    # the memory of one strategy is not mistaken for another's
    for name in STRATEGY_NAMES:
        plan, _ = decide(obs, policies.with_strategy(name), state, now_s=1005.0, budget=BUDGET)
        assert plan.decisions["a"].strategy == name


# -- properties over random policies and observations ------------------------------------


@st.composite
def policies_strategy(draw: st.DrawFn) -> dict[str, Policy]:
    count = draw(st.integers(1, 5))
    policies = {}
    for index in range(count):
        low = draw(st.integers(0, 4))
        high = draw(st.integers(max(low, 1), 12))
        name = f"p{index}"
        policies[name] = make_policy(
            name,
            min_processes=low,
            max_processes=high,
            static_processes=draw(st.integers(low, high)),
            memory_per_worker_mb=draw(st.sampled_from([64, 128, 256, 300])),
            priority=draw(st.integers(0, 3)),
            expected_run_time_s=draw(st.floats(0.1, 60)),
            slo={
                "wait_s": draw(st.floats(1, 300)),
                "percentile": draw(st.sampled_from([50, 95, 99])),
            },
            strategy=draw(st.sampled_from(STRATEGY_NAMES)),
        )
    return policies


@st.composite
def pool_observation(draw: st.DrawFn, name: str) -> PoolObservation | None:
    if draw(st.integers(0, 9)) == 0:
        return None
    pending = draw(st.integers(0, 500))
    return pool_obs(
        name,
        pending=pending,
        reserved=draw(st.integers(0, 20)),
        delayed_due=draw(st.integers(0, 5)),
        oldest_wait_s=draw(st.none() | st.floats(0, 1000)) if pending else None,
        running=draw(st.integers(0, 15)),
        starting=draw(st.integers(0, 3)),
        draining=draw(st.integers(0, 3)),
        completions=draw(st.none() | st.integers(0, 100)),
        run_time_mean_s=draw(st.none() | st.floats(0.01, 100)),
        queues_known=draw(st.integers(0, 9)) > 0,
        workers_known=draw(st.integers(0, 9)) > 0,
    )


@st.composite
def scenario(draw: st.DrawFn) -> tuple[dict[str, Policy], list[Observation], float]:
    policies = draw(policies_strategy())
    ticks = []
    for tick in range(draw(st.integers(1, 4))):
        pools = {}
        for name in policies:
            obs = draw(pool_observation(name))
            if obs is not None:
                pools[name] = obs
        ticks.append(
            Observation(
                at_s=1000.0 + 5 * tick,
                interval_s=5.0,
                pools=pools,
                memory_available_mb=draw(st.none() | st.floats(0, 5000)),
            )
        )
    return policies, ticks, draw(st.floats(0, 6000))


def fingerprint(plan: Plan) -> list[Any]:
    return [dataclasses.asdict(d) for d in plan.decisions.values()] + [
        plan.memory_limit_mb,
        plan.memory_planned_mb,
        plan.memory_peak_mb,
    ]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_invariants(case: tuple[dict[str, Policy], list[Observation], float]) -> None:
    policies, ticks, budget_mb = case
    budget = MemoryBudget(budget_mb=budget_mb, reserve_mb=10)
    state = ControllerState()
    for obs in ticks:
        frozen_obs, frozen_state = copy.deepcopy(obs), copy.deepcopy(state)
        plan, new_state = decide(obs, policies, state, now_s=obs.at_s, budget=budget)
        again, again_state = decide(obs, policies, state, now_s=obs.at_s, budget=budget)
        assert obs == frozen_obs and state == frozen_state  # inputs untouched
        assert fingerprint(plan) == fingerprint(again)  # same inputs, same plan
        assert new_state == again_state

        floors_mb = draining_mb = standing_mb = 0.0
        for name, policy in policies.items():
            decision = plan.decisions[name]
            assert policy.min_processes <= decision.desired <= policy.max_processes
            pool = obs.pools.get(name)
            workers = pool.workers if pool is not None else None
            draining = workers.draining if workers is not None else 0
            draining_mb += draining * policy.memory_per_worker_mb
            floor = decision.desired if decision.held else policy.min_processes
            if workers is not None:
                floor = max(floor, workers.running + workers.starting)
            standing_mb += (floor + draining) * policy.memory_per_worker_mb
            if decision.held:
                previous = state.last_desired.get(name)
                if previous is not None:  # never scaled down on missing data
                    assert decision.desired == min(
                        max(previous, policy.min_processes), policy.max_processes
                    )
                floors_mb += decision.desired * policy.memory_per_worker_mb
            else:
                floors_mb += policy.min_processes * policy.memory_per_worker_mb
        limit = plan.memory_limit_mb
        assert limit <= max(0.0, budget_mb - 10) + 1e-6
        if floors_mb <= limit:  # draining workers are about to exit: they cut no pool
            assert plan.memory_planned_mb - draining_mb <= limit + 1e-6
        # right after applying: above the limit only as far as the standing workers were
        assert plan.memory_peak_mb <= max(limit, standing_mb) + 1e-6
        state = new_state


def test_plan_decisions_are_built_on_first_read() -> None:
    policies = {"a": make_policy("a", strategy="static", static_processes=3)}
    plan, _ = decide(
        observation(pool_obs("a")), policies, ControllerState(), now_s=1000.0, budget=BUDGET
    )
    assert "_decisions" in plan.__dict__ and callable(plan.__dict__["_decisions"])
    assert plan.counts() == {"a": 3}
    plan.counts()["a"] = 9  # a copy: the plan is not changed through it
    assert plan.counts() == {"a": 3}
    assert dataclasses.asdict(plan)["decisions"]["a"]["desired"] == 3
    assert not callable(plan.__dict__["_decisions"])
    assert plan == dataclasses.replace(plan)
    plan.decisions = {}
    assert plan.counts() == {}


def test_a_pool_crashing_at_start_is_not_scaled_up_nor_charged() -> None:
    """Issue 19.3: a pool whose workers die at start was scaled to its max, and its
    BACKOFF/FATAL slots were charged against the budget, capping a healthy pool at 2 of 6."""
    policies = PolicySet(
        {"broken": make_policy("broken"), "healthy": make_policy("healthy")},
        files={},
    )
    budget = MemoryBudget(budget_mb=800)  # 8 workers of 100 MB
    broken = dataclasses.replace(
        pool_obs("broken", pending=500, oldest_wait_s=300, running=1),
        workers=WorkerCounts(running=1, starting=0, draining=0, failed=2, crashing=5),
    )
    healthy = pool_obs("healthy", pending=500, oldest_wait_s=300, running=1)
    state = ControllerState(last_desired={"broken": 6, "healthy": 1})
    plan, state = decide(observation(broken, healthy), policies, state, now_s=1000.0, budget=budget)
    decision = plan.decisions["broken"]
    assert decision.desired == 1 and decision.crashing == 5
    assert "crash at start" in decision.reason
    assert plan.counts()["healthy"] == 7  # all the memory the broken pool's slots do not use
    assert state.crashed_at_s == {"broken": 1000.0}

    # The crashing slots are gone: still no slot added while the crash is recent ...
    quiet = dataclasses.replace(broken, workers=WorkerCounts(running=1, starting=0, draining=0))
    plan, state = decide(
        observation(quiet, healthy, at_s=1100.0), policies, state, now_s=1100.0, budget=budget
    )
    assert plan.counts()["broken"] == 1 and "slots crashed" in plan.decisions["broken"].reason
    # ... and after CRASH_HOLD_S without a crash, the pool may grow again.
    plan, state = decide(
        observation(quiet, healthy, at_s=1400.0), policies, state, now_s=1400.0, budget=budget
    )
    assert plan.counts()["broken"] > 1 and state.crashed_at_s == {}


def test_another_pools_draining_workers_never_cut_a_healthy_pool() -> None:
    """Issue 19.8: the budget cap flapped 6 -> 3 -> ... while workers drained: pool b was
    scaled down and its draining workers were charged before pool a's running ones, so a was
    cut to make room for memory about to be freed, and got its workers back once they exited.
    Every tick of b's drain, a keeps its 6."""
    policies = {
        "a": make_policy("a", strategy="static", static_processes=6, priority=300),
        "b": make_policy("b", strategy="static", static_processes=1, priority=100),
    }
    budget = MemoryBudget(budget_mb=900)  # 9 workers of 100 MB
    state = ControllerState(last_desired={"a": 6, "b": 5})
    counts = []
    for tick, draining in enumerate((4, 3, 1, 0)):  # b's stopped workers exit one by one
        at_s = 1000.0 + 5 * tick
        obs = observation(
            pool_obs("a", running=6), pool_obs("b", running=1, draining=draining), at_s=at_s
        )
        plan, state = decide(obs, policies, state, now_s=at_s, budget=budget)
        counts.append(plan.counts()["a"])
        assert not plan.decisions["a"].capped
    assert counts == [6, 6, 6, 6]
