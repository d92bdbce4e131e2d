"""The Judoscale/HireFire-style latency band."""

from __future__ import annotations

from autoscaler.decide.core import decide
from autoscaler.decide.plan import ControllerState, MemoryBudget
from autoscaler.decide.strategies.step import StepMemory, band, step_decision
from tests.decide_helpers import make_policy, observation, pool_obs

FRESH = StepMemory(last_up_s=None, calm_since_s=None)
RULE = {
    "low_s": 2.0,
    "high_s": 10.0,
    "up_jump": 2,
    "up_cooldown_s": 60.0,
    "down_jump": 1,
    "downscale_delay_s": 600.0,
}


def test_up_by_the_jump_then_cool_down() -> None:
    count, memory = step_decision(current=3, latency_s=12, now_s=0, memory=FRESH, **RULE)
    assert count == 5
    count, memory = step_decision(current=5, latency_s=30, now_s=30, memory=memory, **RULE)
    assert count == 5  # inside the up cooldown
    count, memory = step_decision(current=5, latency_s=30, now_s=60, memory=memory, **RULE)
    assert count == 7


def test_down_only_after_the_delay_below_the_band() -> None:
    count, memory = step_decision(current=4, latency_s=0, now_s=0, memory=FRESH, **RULE)
    assert count == 4
    count, memory = step_decision(current=4, latency_s=1, now_s=599, memory=memory, **RULE)
    assert count == 4
    count, memory = step_decision(current=4, latency_s=1, now_s=600, memory=memory, **RULE)
    assert count == 3
    # the delay counts again after a scale event
    count, memory = step_decision(current=3, latency_s=0, now_s=700, memory=memory, **RULE)
    assert count == 3
    count, memory = step_decision(current=3, latency_s=0, now_s=1200, memory=memory, **RULE)
    assert count == 2


def test_inside_the_band_holds_and_resets_the_calm_timer() -> None:
    _, memory = step_decision(current=4, latency_s=0, now_s=0, memory=FRESH, **RULE)
    count, memory = step_decision(current=4, latency_s=5, now_s=300, memory=memory, **RULE)
    assert count == 4
    assert memory.calm_since_s is None
    count, memory = step_decision(current=4, latency_s=0, now_s=700, memory=memory, **RULE)
    assert count == 4  # calm only since 700


def test_band_defaults_follow_the_slo() -> None:
    assert band(make_policy(slo={"wait_s": 30.0})) == (3.0, 15.0)
    custom = make_policy(strategy={"name": "step", "step": {"latency_high_s": 8}})
    assert band(custom) == (3.0, 8.0)


def test_decide_step_holds_when_the_age_is_unknown() -> None:
    policies = {"q": make_policy("q", strategy="step")}
    obs = observation(pool_obs("q", pending=5, oldest_wait_s=None, running=2))
    plan, _ = decide(
        obs, policies, ControllerState(), now_s=1000.0, budget=MemoryBudget(budget_mb=1e6)
    )
    assert plan.counts() == {"q": 2}
    assert "age unknown" in plan.decisions["q"].reason
    obs = observation(pool_obs("q", pending=5, oldest_wait_s=40.0, running=2))
    plan, _ = decide(
        obs, policies, ControllerState(), now_s=1000.0, budget=MemoryBudget(budget_mb=1e6)
    )
    assert plan.counts() == {"q": 3}
    assert "latency 40s > 15s" in plan.decisions["q"].reason
