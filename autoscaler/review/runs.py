"""The simulations of `autoscaler diff`: each side's policies on each trace.

Each run is `simulation.simulate` with a DecideController over the side's policies as they
are: every pool keeps its own strategy, as the daemon would run it. Runs are independent, so
they go to forked processes when asked (the same results either way).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from autoscaler.policy.loader import PolicySet
from autoscaler.policy.model import Policy
from autoscaler.simulate.engine import DecideController, SimulationResult, WorldSettings, simulate
from autoscaler.simulate.parallel import SHARED, workers
from autoscaler.traces.loader import Trace, expected_run_times, load_trace

SideName = Literal["base", "head"]
SIDES: tuple[SideName, SideName] = ("base", "head")
LoadedTrace = dict[SideName, Trace]


def load_traces(paths: Sequence[Path], base: PolicySet, head: PolicySet) -> list[LoadedTrace]:
    """Each trace as each side reads it. A queue only the other side consumes is read too (so
    its jobs can be reported as left unconsumed); its run time comes from the other side."""
    own = {"base": base, "head": head}
    known: dict[SideName, dict[str, Policy]] = {
        "base": _with_foreign_queues(base, head),
        "head": _with_foreign_queues(head, base),
    }
    alike = expected_run_times(known["base"]) == expected_run_times(known["head"])
    loaded: list[LoadedTrace] = []
    for path in paths:
        per_side: LoadedTrace = {}
        for side in SIDES:
            if not own[side]:
                continue
            first = per_side.get("base")
            if first is not None and alike:
                per_side[side] = first  # both sides read it alike: load it once
                continue
            per_side[side] = load_trace(path, known[side])  # TraceError: the caller's
        loaded.append(per_side)
    return loaded


def _with_foreign_queues(own: PolicySet, other: PolicySet) -> dict[str, Policy]:
    mapping: dict[str, Policy] = dict(own)
    for pool, policy in other.items():
        if any(own.pool_for_queue(q) is None for q in policy.queues):
            mapping[f"\0other:{pool}"] = policy
    return mapping


def either(trace: LoadedTrace) -> Trace:
    return trace["head"] if "head" in trace else trace["base"]


Task = tuple[SideName, int]


def simulate_sides(
    loaded: Sequence[LoadedTrace],
    base: PolicySet,
    head: PolicySet,
    world: WorldSettings,
    processes: int,
) -> dict[Task, SimulationResult]:
    policies = {"base": base, "head": head}
    tasks: list[Task] = [(side, i) for i in range(len(loaded)) for side in SIDES if policies[side]]
    identical = dict(base) == dict(head)
    unique = [
        t
        for t in tasks
        if not (identical and t[0] == "head" and loaded[t[1]]["head"] is loaded[t[1]]["base"])
    ]
    processes = max(1, min(processes, len(unique)))
    with workers(processes, loaded=loaded, policies=policies, world=world) as runner:
        done = runner.map(_run_task, unique)
    results = dict(zip(unique, done, strict=True))
    for side, index in tasks:
        if (side, index) not in results:  # the same policies on the same trace: same result
            results[(side, index)] = results[("base", index)]
    return results


def _run_task(task: Task) -> SimulationResult:
    """One side on one trace: the pools' own strategies through the production decide."""
    side, index = task
    trace: Trace = SHARED["loaded"][index][side]
    policies: PolicySet = SHARED["policies"][side]
    world: WorldSettings = SHARED["world"]
    controller = DecideController(policies, world.budget)
    return simulate(trace, policies, controller, strategy=side, settings=world, keep_series=False)
