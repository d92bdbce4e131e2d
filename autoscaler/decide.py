"""The decision core: observation + policies + state + now + budget -> plan + new state.

Pure: no clock, no Redis, no files, no logging. The daemon and the simulator call this one
function. (Foundation version: the `static` strategy, holding on missing data, bounds and the
memory budget by priority. The other strategies plug in through STRATEGIES.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from autoscaler.observation import Observation, PoolObservation
from autoscaler.plan import ControllerState, MemoryBudget, Plan, PoolDecision
from autoscaler.policy import Policy

# name -> (policy, observation, previous desired) -> (wanted count, reason)
Recommender = Callable[[Policy, PoolObservation, int], tuple[int, str]]


def recommend_static(policy: Policy, obs: PoolObservation, previous: int) -> tuple[int, str]:
    return policy.static_processes, f"static {policy.static_processes}"


STRATEGIES: dict[str, Recommender] = {"static": recommend_static}


def decide(
    observation: Observation,
    policies: Mapping[str, Policy],
    state: ControllerState,
    *,
    now_s: float,
    budget: MemoryBudget,
) -> tuple[Plan, ControllerState]:
    decisions: dict[str, PoolDecision] = {}
    draining_mb = 0.0
    in_use_mb = 0.0
    for pool, policy in policies.items():
        obs = observation.pools.get(pool)
        previous = state.last_desired.get(pool, policy.static_processes)
        workers = obs.workers if obs is not None else None
        current = workers.current if workers is not None else None
        if workers is not None:
            draining_mb += workers.draining * policy.memory_per_worker_mb
            in_use_mb += (workers.current + workers.draining) * policy.memory_per_worker_mb
        name = policy.strategy.name
        recommender = STRATEGIES.get(name)
        if obs is None or obs.queues is None or workers is None or recommender is None:
            missing = "no strategy " + name if recommender is None else "data missing"
            decisions[pool] = PoolDecision(
                pool=pool,
                strategy=name,
                current=current,
                desired=previous,
                reason=f"{missing}: hold {previous}",
                held=True,
            )
            continue
        wanted, reason = recommender(policy, obs, previous)
        bounded = min(max(wanted, policy.min_processes), policy.max_processes)
        decisions[pool] = PoolDecision(
            pool=pool, strategy=name, current=current, desired=bounded, reason=reason
        )
    limit = budget.limit_mb(
        available_mb=observation.memory_available_mb, managed_in_use_mb=in_use_mb
    )
    planned = _fit_budget(decisions, policies, limit - draining_mb)
    new_state = ControllerState(
        last_desired={p: d.desired for p, d in decisions.items()}, pools=dict(state.pools)
    )
    return (
        Plan(
            at_s=now_s,
            decisions=decisions,
            memory_limit_mb=limit,
            memory_planned_mb=planned + draining_mb,
        ),
        new_state,
    )


def _fit_budget(
    decisions: dict[str, PoolDecision], policies: Mapping[str, Policy], limit_mb: float
) -> float:
    """Every pool keeps its min; the rest goes by priority (lower first). Returns MB planned."""
    used = sum(policies[p].memory_at_min_mb for p in decisions)
    order = sorted(decisions, key=lambda p: (policies[p].priority, p))
    for pool in order:
        decision = decisions[pool]
        policy = policies[pool]
        extra_wanted = decision.desired - policy.min_processes
        room = max(0, int((limit_mb - used) // policy.memory_per_worker_mb))
        extra = min(extra_wanted, room)
        if extra < extra_wanted:
            decision.reason += f"; memory budget caps at {policy.min_processes + extra}"
            decision.desired = policy.min_processes + extra
        used += extra * policy.memory_per_worker_mb
    return used
