"""The oracle under a budget that binds: a search over how it splits the memory.

One tick at a time, the oracle's split (OracleController._shares: a worker goes where it
saves the largest share of a pool's jobs from being late) cannot see that starving a pool
now makes it late for the rest of the burst. The oracle knows the whole trace, so it can try
splits instead: each pool's gain is scaled by a weight, and a coordinate search over the
weights (each ×4 or ÷4 in turn, a few rounds) keeps the run with the fewest pools missing
their SLO, then the least miss beyond what the SLOs allow, then the fewest worker-seconds.
When the budget never binds, the first run is the answer and nothing else runs.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from autoscaler.policy.model import Policy
from autoscaler.simulate.engine import SimulationResult, WorldSettings, simulate
from autoscaler.simulate.oracle import OracleController
from autoscaler.traces.loader import Trace

WEIGHT_FACTORS = (0.25, 4.0)
SEARCH_ROUNDS = 3

Score = tuple[int, float, float]


def score(result: SimulationResult) -> Score:
    """(pools missing their SLO, miss beyond the allowed shares summed, worker-seconds):
    lower is better, in that order."""
    missing, excess, cost = 0, 0.0, 0.0
    for pool in result.pools.values():
        cost += pool.worker_seconds
        if not pool.jobs:
            continue
        missed = float(np.count_nonzero(pool.waits_s > pool.slo_wait_s)) / pool.jobs
        over = missed - (1.0 - pool.slo_percentile / 100.0)
        if over > 1e-12:
            missing += 1
            excess += over
    return missing, round(excess, 9), round(cost, 3)


def run_oracle(
    trace: Trace,
    policies: Mapping[str, Policy],
    *,
    settings: WorldSettings,
    keep_series: bool = True,
    rounds: int = SEARCH_ROUNDS,
) -> SimulationResult:
    """The oracle's run over `trace`; when the budget binds, the best of a search over the
    split's weights (module docstring)."""

    def run(weights: Mapping[str, float]) -> tuple[Score, SimulationResult, bool]:
        controller = OracleController(
            policies, usable_memory_mb=settings.usable_memory_mb, weights=weights
        )
        result = simulate(
            trace,
            policies,
            controller,
            strategy="oracle",
            settings=settings,
            keep_series=keep_series,
        )
        return score(result), result, controller.bound

    weights = dict.fromkeys(policies, 1.0)
    best_score, best, bound = run(weights)
    if not bound:
        return best
    fed = [name for name, jobs in _jobs(trace, policies).items() if jobs]
    for _ in range(rounds):
        improved = False
        for name in fed:
            for factor in WEIGHT_FACTORS:
                trial = {**weights, name: weights[name] * factor}
                trial_score, result, _ = run(trial)
                if trial_score < best_score:
                    best_score, best, weights, improved = trial_score, result, trial, True
        if not improved or (best_score[0] == 0 and best_score[1] == 0):
            break
    return best


def _jobs(trace: Trace, policies: Mapping[str, Policy]) -> dict[str, int]:
    """Jobs the trace feeds each pool."""
    return {
        name: sum(len(trace.queues[q]) for q in policy.queues if q in trace.queues)
        for name, policy in policies.items()
    }
