"""Time one decision for 7 pools (the shipped policies) and for 500 pools, per strategy.

Prints medians of many calls in a steady state (the controller state carried from call to
call, as the daemon and the simulator do). Run: python3 tests/benchmarks/bench_decide.py
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from autoscaler.decide.core import decide  # noqa: E402
from autoscaler.decide.plan import ControllerState, MemoryBudget  # noqa: E402
from autoscaler.laravel.queue_sample import QueueSample  # noqa: E402
from autoscaler.observe.observation import Observation, PoolObservation, WorkSample  # noqa: E402
from autoscaler.policy.loader import PolicySet, load_policies  # noqa: E402
from autoscaler.policy.model import Policy, StrategyName  # noqa: E402
from autoscaler.supervisord.slots import WorkerCounts  # noqa: E402

INTERVAL_S = 5.0
CALLS = 2000
WARMUP = 50


def many_pools(count: int) -> PolicySet:
    base = load_policies(REPO / "policies")["gift_card_exchange"]
    policies: dict[str, Policy] = {}
    for index in range(count):
        name = f"pool{index:03d}"
        policies[name] = base.model_copy(
            update={"queues": (name,), "program": f"{name}-worker", "priority": index % 7}
        )
    return PolicySet(policies, files={})


def observations(policies: Mapping[str, Policy], ticks: int) -> list[Observation]:
    """A varying load: each pool's backlog and completions follow a slow cycle."""
    out = []
    for tick in range(ticks):
        pools = {}
        for index, (name, policy) in enumerate(policies.items()):
            phase = (tick + 7 * index) % 60
            pending = phase if phase < 30 else 60 - phase
            queue = QueueSample(
                queue=policy.queues[0],
                pending=pending,
                reserved=min(pending, 4),
                delayed=0,
                delayed_due=0,
                oldest_wait_s=float(pending) if pending else None,
                oldest_wait_source="createdAt" if pending else "empty",
            )
            work = WorkSample(
                completions=2 + pending % 3,
                failures=0,
                run_time_mean_s=policy.expected_run_time_s,
                run_time_p95_s=policy.expected_run_time_s,
                busy_workers=float(min(pending, 4)),
                source="logs",
            )
            pools[name] = PoolObservation(
                pool=name,
                queues=(queue,),
                work=work,
                workers=WorkerCounts(running=4, starting=0, draining=0),
            )
        out.append(Observation(at_s=tick * INTERVAL_S, interval_s=INTERVAL_S, pools=pools))
    return out


def median_call_s(policies: PolicySet, strategy: StrategyName, calls: int) -> float:
    policies = policies.with_strategy(strategy)
    budget = MemoryBudget(budget_mb=1e9)
    feed = observations(policies, 120)
    state = ControllerState()
    times = []
    for call in range(calls + WARMUP):
        obs = feed[call % len(feed)]
        now = call * INTERVAL_S
        obs = Observation(at_s=now, interval_s=INTERVAL_S, pools=obs.pools)
        start = time.perf_counter()
        _, state = decide(obs, policies, state, now_s=now, budget=budget)
        times.append(time.perf_counter() - start)
    return statistics.median(times[WARMUP:])


def main() -> None:
    seven = load_policies(REPO / "policies")
    large = many_pools(500)
    print(f"{'strategy':<10} {'7 pools':>12} {'per pool':>10} {'500 pools':>12} {'per pool':>10}")
    for strategy in ("slo", "static", "horizon", "hpa", "step", "celery"):
        small_s = median_call_s(seven, strategy, CALLS)
        large_s = median_call_s(large, strategy, CALLS // 20)
        print(
            f"{strategy:<10} {small_s * 1e6:>10.1f}µs {small_s / 7 * 1e6:>8.2f}µs "
            f"{large_s * 1e3:>10.2f}ms {large_s / 500 * 1e6:>8.2f}µs"
        )


if __name__ == "__main__":
    main()
