"""Run several strategies over the same trace, side by side (in parallel when asked).

Every strategy but `oracle` runs the policies with their strategy name replaced
(`PolicySet.with_strategy`) through the production `decide`; `oracle` is the simulator's
look-ahead reference (oracle.py).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from typing import Literal, get_args

from autoscaler.oracle import OracleController
from autoscaler.policy import STRATEGY_NAMES, StrategyName
from autoscaler.policy_loader import PolicySet
from autoscaler.simulation import (
    Controller,
    DecideController,
    SimulationResult,
    WorldSettings,
    simulate,
)
from autoscaler.trace import Trace

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
        controller = OracleController(policies, usable_memory_mb=settings.usable_memory_mb)
        used = policies
    elif name in STRATEGY_NAMES:
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


# What a forked worker process needs; set by run_all just before forking, so the trace's
# arrays are shared with the children instead of pickled to them.
_SHARED: dict[str, object] = {}


def _run_shared(name: str) -> SimulationResult:
    trace = _SHARED["trace"]
    policies = _SHARED["policies"]
    settings = _SHARED["settings"]
    keep_series = _SHARED["keep_series"]
    assert isinstance(trace, Trace) and isinstance(policies, PolicySet)
    assert isinstance(settings, WorldSettings) and isinstance(keep_series, bool)
    return run_strategy(trace, policies, name, settings=settings, keep_series=keep_series)


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
    if processes == 1 or "fork" not in multiprocessing.get_all_start_methods():
        return [
            run_strategy(trace, policies, n, settings=settings, keep_series=keep_series)
            for n in names
        ]
    _SHARED.update(trace=trace, policies=policies, settings=settings, keep_series=keep_series)
    try:
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            return pool.map(_run_shared, names, chunksize=1)
    finally:
        _SHARED.clear()


def default_processes() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
