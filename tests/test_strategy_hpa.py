"""KEDA + Kubernetes HPA, ported: cases from kubernetes replica_calculator_test.go and
horizontal_test.go (docs/research.md §3), and KEDA's activation semantics."""

from __future__ import annotations

import itertools
from typing import Any

from autoscaler.decide.core import decide
from autoscaler.decide.plan import ControllerState, MemoryBudget
from autoscaler.decide.strategies.hpa import (
    average_value_replicas,
    rate_limit,
    scale_down_limit,
    scale_up_limit,
    stabilize,
    value_replicas,
)
from autoscaler.policy.model import HpaKnobs, HpaPolicyRule
from tests.decide_helpers import make_policy, observation, pool_obs


def replicas(status: int, usage: float, target: float, up: float = 0.1, down: float = 0.1) -> int:
    return average_value_replicas(
        status_replicas=status,
        usage=usage,
        target=target,
        scale_up_tolerance=up,
        scale_down_tolerance=down,
    )


def test_average_value_target() -> None:
    assert replicas(3, 8600, 2150) == 4
    assert replicas(5, 8600, 2867) == 3
    assert replicas(3, 8600, 2900) == 3  # ratio 0.989: within the tolerance
    assert replicas(3, 8600, 2800, up=0.01) == 4  # ratio 1.024 > 1 + 0.01


def value(status: int, ready: int, usage: float, target: float) -> int:
    return value_replicas(
        status_replicas=status,
        ready_pods=ready,
        usage=usage,
        target=target,
        scale_up_tolerance=0.1,
        scale_down_tolerance=0.1,
    )


def test_value_target_counts_ready_pods() -> None:
    # replica_calculator_test.go, external metrics with a Value target (KEDA metricType Value)
    assert value(1, 1, 8600, 4400) == 2  # TestReplicaCalcScaleUpCMExternal
    assert value(3, 1, 8600, 4400) == 2  # ...IgnoresUnreadyPods: 2 of 3 pods not ready
    assert value(5, 5, 8600, 14334) == 3  # TestReplicaCalcScaleDownCMExternal
    assert value(3, 3, 8600, 8888) == 3  # TestReplicaCalcToleranceCMExternal: ratio 0.97
    assert value(0, 0, 8600, 4400) == 2  # from zero: ⌈ratio⌉


def test_decide_hpa_value_metric_scales_from_ready_workers_only() -> None:
    knobs = {"name": "hpa", "hpa": {"metric_type": "Value", "list_length": 10}}
    policies = {"q": make_policy("q", strategy=knobs, min_processes=1, max_processes=20)}
    budget = MemoryBudget(budget_mb=1e6)
    # 30 jobs against a Value target of 10: 3 x the ready workers; 2 of the 4 are starting
    obs = observation(pool_obs("q", pending=30, running=2, starting=2), at_s=1000.0)
    plan, _ = decide(
        obs, policies, ControllerState(last_desired={"q": 4}), now_s=1000.0, budget=budget
    )
    assert plan.counts()["q"] == 6


def clamp(value: int, low: int, high: int) -> int:
    return min(max(value, low), high)


def test_average_value_within_min_and_max() -> None:
    # horizontal_test.go: min 2, max 6
    assert clamp(replicas(3, 8600, 2222), 2, 6) == 4
    assert clamp(replicas(5, 8600, 3000), 2, 6) == 3


def knobs(**overrides: Any) -> HpaKnobs:
    return HpaKnobs.model_validate(overrides)


def up_to(desired: int, *, current: int = 10, **overrides: Any) -> int:
    return rate_limit(
        current=current,
        desired=desired,
        min_replicas=1,
        max_replicas=1000,
        up_events=(),
        down_events=(),
        knobs=knobs(**overrides),
        now_s=1000.0,
    )


def rules(*specs: tuple[str, int, float]) -> list[dict[str, Any]]:
    return [{"type": t, "value": v, "period_s": p} for t, v, p in specs]


def test_rate_limits_with_the_kubernetes_defaults_and_custom_rules() -> None:
    assert up_to(50) == 20  # default: max(10 + 4, 10 × 200 %)
    assert up_to(500, scale_up_policies=rules(("Pods", 100, 60), ("Percent", 100, 60))) == 110
    assert up_to(50, scale_up_policies=rules(("Pods", 2, 60), ("Percent", 100, 60))) == 20
    assert up_to(50, scale_up_policies=rules(("Pods", 30, 60))) == 40
    assert up_to(50, scale_up_policies=rules(("Percent", 200, 60))) == 30
    assert (
        up_to(
            50,
            scale_up_policies=rules(("Pods", 2, 60), ("Percent", 100, 60)),
            scale_up_select_policy="Min",
        )
        == 12
    )
    assert up_to(50, scale_up_select_policy="Disabled") == 10


def test_rate_limits_count_the_events_of_the_period() -> None:
    pods4 = [HpaPolicyRule(type="Pods", value=4, period_s=60)]
    # 3 replicas added 30 s ago: the period started at 7, so at most 11 now
    assert (
        scale_up_limit(
            current=10,
            up_events=[(970.0, 3)],
            down_events=[],
            rules=pods4,
            select="Max",
            now_s=1000,
        )
        == 11
    )
    # an event older than the period no longer counts
    assert (
        scale_up_limit(
            current=10,
            up_events=[(900.0, 3)],
            down_events=[],
            rules=pods4,
            select="Max",
            now_s=1000,
        )
        == 14
    )
    half = [HpaPolicyRule(type="Percent", value=50, period_s=60)]
    # down by 50 % of the period start, rounded down: 10 -> 5; 5 removed already -> 5 stays
    assert (
        scale_down_limit(
            current=10, up_events=[], down_events=[], rules=half, select="Max", now_s=1000
        )
        == 5
    )
    assert (
        scale_down_limit(
            current=5, up_events=[], down_events=[(990.0, 5)], rules=half, select="Max", now_s=1000
        )
        == 5
    )


def test_scale_down_defaults_allow_everything_at_once() -> None:
    down = rate_limit(
        current=10,
        desired=2,
        min_replicas=1,
        max_replicas=1000,
        up_events=(),
        down_events=(),
        knobs=knobs(),
        now_s=0.0,
    )
    assert down == 2


def test_stabilization_windows() -> None:
    history = [(880.0, 4), (940.0, 5)]  # 4 two minutes ago, 5 one minute ago
    now = 1000.0

    def run(current: int, desired: int, up: float, down: float) -> int:
        return stabilize(
            recommendations=history,
            now_s=now,
            desired=desired,
            current=current,
            up_window_s=up,
            down_window_s=down,
        )

    assert run(100, 3, up=0, down=180) == 5
    assert run(1, 7, up=300, down=300) == 4
    assert run(1, 3, up=0, down=300) == 3
    history[:] = [(880.0, 1), (940.0, 2)]
    assert run(100, 3, up=300, down=300) == 3


def test_decide_hpa_syncs_every_15s_and_waits_out_the_down_window() -> None:
    policies = {"q": make_policy("q", strategy="hpa", min_processes=1, max_processes=20)}
    budget = MemoryBudget(budget_mb=1e6)
    state = ControllerState()
    counts = []
    current = 2
    for tick in range(80):
        now = 1000.0 + 5 * tick
        pending = 40 if tick < 10 else 0
        obs = observation(pool_obs("q", pending=pending, running=current), at_s=now)
        plan, state = decide(obs, policies, state, now_s=now, budget=budget)
        current = plan.counts()["q"]
        counts.append(current)
    # 40 jobs / 5 per replica = 8, reached within the rate limit (2 -> 6 -> 8)
    assert max(counts) == 8
    assert counts[0] == 6  # first sync: max(2 + 4, 2 × 200 %) = 6
    # syncs are 15 s apart: the count changes at most every third 5 s tick
    changes = [i for i in range(1, len(counts)) if counts[i] != counts[i - 1]]
    assert all(b - a >= 3 for a, b in itertools.pairwise(changes))
    # the queue empties at tick 10; the 300 s down window keeps 8 until about tick 70
    assert counts[60] == 8
    assert counts[-1] == 1


def test_keda_scales_from_and_to_zero_when_min_is_zero() -> None:
    policies = {
        "q": make_policy(
            "q",
            strategy={"name": "hpa", "hpa": {"cooldown_period_s": 60, "polling_interval_s": 30}},
            min_processes=0,
            static_processes=0,
        )
    }
    budget = MemoryBudget(budget_mb=1e6)
    state = ControllerState(last_desired={"q": 0})
    obs = observation(pool_obs("q", pending=1, running=0), at_s=1000.0)
    plan, state = decide(obs, policies, state, now_s=1000.0, budget=budget)
    assert plan.counts()["q"] == 1
    assert "keda" in plan.decisions["q"].reason
    counts = []
    for tick in range(1, 40):
        now = 1000.0 + 5 * tick
        obs = observation(pool_obs("q", pending=0, running=plan.counts()["q"]), at_s=now)
        plan, state = decide(obs, policies, state, now_s=now, budget=budget)
        counts.append(plan.counts()["q"])
    assert counts[-1] == 0
    assert (counts.index(0) + 1) * 5 >= 60  # not before the cooldown period (60 s)
