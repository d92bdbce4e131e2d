"""Celery's `--autoscale=max,min`, ported: the cases of celery's t/unit/worker/
test_autoscale.py (test_body, test_no_negative_scale, test_shrink...) on the pure rule, and
the rule run through decide."""

from __future__ import annotations

from autoscaler.decide.core import decide
from autoscaler.decide.plan import ControllerState, MemoryBudget
from autoscaler.decide.strategies.celery import celery_scale
from tests.decide_helpers import make_policy, observation, pool_obs


def step(processes: int, qty: int, now_s: float, last_up: float | None) -> tuple[int, float | None]:
    return celery_scale(
        processes=processes,
        qty=qty,
        max_concurrency=10,
        min_concurrency=3,
        now_s=now_s,
        last_scale_up_s=last_up,
        keepalive_s=30.0,
    )


def test_body_grows_to_max_then_shrinks_only_after_the_keepalive() -> None:
    # test_body: pool of 3, max 10 min 3; nothing reserved -> stays 3
    assert step(3, 0, 0.0, None) == (3, None)
    # 20 requests reserved -> 10 at once, the scale-up remembered
    assert step(3, 20, 1.0, None) == (10, 1.0)
    # reserved cleared: within the keepalive nothing shrinks
    assert step(10, 0, 2.0, 1.0) == (10, 1.0)
    # _last_scale_up long ago: shrink to min
    assert step(10, 0, 10_001.0, 1.0) == (3, 1.0)


def test_never_shrinks_before_a_first_scale_up() -> None:
    # scale_down checks `self._last_scale_up and ...`: None never shrinks
    assert step(8, 0, 1e6, None) == (8, None)


def test_no_negative_scale_and_bounds_hold() -> None:
    # test_no_negative_scale: reserve 35 one by one, then release them; always min..max
    processes, last_up, now = 3, None, 0.0
    seen = []
    for qty in [*range(1, 36), *range(34, -1, -1)]:
        now += 1.0
        processes, last_up = step(processes, qty, now, last_up)
        seen.append(processes)
    assert all(3 <= count <= 10 for count in seen)
    assert max(seen) == 10


def test_decide_runs_celery_on_waiting_plus_reserved_jobs() -> None:
    knobs = {"name": "celery", "celery": {"keepalive_s": 30}}
    policies = {"q": make_policy("q", strategy=knobs, min_processes=1, max_processes=8)}
    budget = MemoryBudget(budget_mb=1e6)
    state = ControllerState()
    counts = []
    current = 2
    for tick in range(20):
        now = 1000.0 + 5 * tick
        pending, reserved = (4, current) if tick < 3 else (0, 0)
        obs = observation(
            pool_obs("q", pending=pending, reserved=reserved, running=current), at_s=now
        )
        plan, state = decide(obs, policies, state, now_s=now, budget=budget)
        current = plan.counts()["q"]
        counts.append(current)
    assert counts[0] == 6  # 4 waiting + 2 in flight, at once
    assert max(counts) == 8  # then 4 + 6 = 10, capped at max
    # the queue empties at tick 3 (t = 15 s); the last scale-up was at t = 5 s: shrink to
    # min only once more than 30 s have passed since it
    first_min = counts.index(1)
    assert 1000.0 + 5 * first_min - 1005.0 > 30.0
    assert counts[first_min - 1] == 8
    assert "celery" in plan.decisions["q"].reason
