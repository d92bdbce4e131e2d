"""Run several strategies over the same trace, side by side (in parallel when asked).

Every strategy but `oracle` runs the policies with their strategy name replaced
(`PolicySet.with_strategy`) through the production `decide`; `oracle` is the simulator's
look-ahead reference (oracle.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

from autoscaler.policy.loader import PolicySet
from autoscaler.policy.model import STRATEGY_NAMES, StrategyName
from autoscaler.simulate.engine import (
    Controller,
    DecideController,
    SimulationResult,
    WorldSettings,
    simulate,
)
from autoscaler.simulate.oracle_search import run_oracle
from autoscaler.simulate.parallel import SHARED, workers
from autoscaler.traces.loader import Trace

Oracle = Literal["oracle"]
ORACLE: Oracle = get_args(Oracle)[0]
SIMULATED_STRATEGIES: tuple[str, ...] = (*STRATEGY_NAMES, ORACLE)


def run_strategy(
    trace: Trace,
    policies: PolicySet,
    name: str,
    *,
    settings: WorldSettings,
    keep_series: bool = True,
) -> SimulationResult:
    controller: Controller
    if name == ORACLE:
        return run_oracle(trace, policies, settings=settings, keep_series=keep_series)
    if name in STRATEGY_NAMES:
        used = policies.with_strategy(_strategy(name))
        controller = DecideController(used, settings.budget)
    else:
        raise ValueError(f"unknown strategy {name!r}")
    return simulate(
        trace, used, controller, strategy=name, settings=settings, keep_series=keep_series
    )


def _strategy(name: str) -> StrategyName:
    for known in STRATEGY_NAMES:
        if known == name:
            return known
    raise ValueError(f"unknown strategy {name!r}")


def _run_shared(name: str) -> SimulationResult:
    return run_strategy(
        SHARED["trace"],
        SHARED["policies"],
        name,
        settings=SHARED["settings"],
        keep_series=SHARED["keep_series"],
    )


def run_all(
    trace: Trace,
    policies: PolicySet,
    names: Sequence[str],
    *,
    settings: WorldSettings,
    keep_series: bool = True,
    processes: int = 1,
) -> list[SimulationResult]:
    """Each named strategy over `trace`, in the order given. With `processes` > 1 they run in
    forked processes (the results are the same; each strategy is deterministic)."""
    processes = max(1, min(processes, len(names)))
    with workers(
        processes, trace=trace, policies=policies, settings=settings, keep_series=keep_series
    ) as runner:
        return runner.map(_run_shared, names)
