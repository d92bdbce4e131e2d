"""`autoscaler tune`: the cheapest `slo` setting for one pool that meets its SLO on a trace.

The search is coordinate descent over a few candidate values per knob (the `slo` strategy's
knobs that exist in SloKnobs, plus min_processes and max_processes): each pass tries every
candidate of one knob with the others fixed, keeps the cheapest that meets the SLO, and moves
on; passes repeat until nothing improves. Candidates of one knob run in parallel processes.
Only the tuned pool is simulated; its memory budget is what the other pools leave at their
minimums.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autoscaler.policy.loader import PolicySet
from autoscaler.policy.model import Policy, SloKnobs
from autoscaler.simulate.engine import DecideController, SimulationResult, WorldSettings, simulate
from autoscaler.simulate.parallel import SHARED, workers
from autoscaler.traces.loader import Trace

# Candidate values per knob of SloKnobs; knobs not listed (or not in SloKnobs) keep their
# value. `startup_s` is a fact about the host, not a preference: it is not searched.
KNOB_CANDIDATES: dict[str, tuple[Any, ...]] = {
    "scale_down_window_s": (0.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0),
    "scale_down_step": (1, 2, 4),
    "max_step_up": (None, 1, 2, 4),
    "steady_percentile": (30.0, 50.0, 70.0, 80.0, 90.0),
    "arrival_half_life_s": (30.0, 60.0, 120.0, 300.0),
    "model": ("erlang_c", "sqrt"),
    "steady_load_slack": (0.0, 0.4, 0.7, 1.0, 1.5),
    "reaction_share": (0.0, 0.5, 1.0),
    "scale_down_window_jobs": (0.0, 2.0, 4.0),
}
MAX_PASSES = 3


@dataclass(frozen=True, slots=True)
class Setting:
    """min, max and the slo knobs that differ from the policy's."""

    min_processes: int
    max_processes: int
    knobs: tuple[tuple[str, Any], ...] = ()

    def with_knob(self, name: str, value: Any) -> Setting:
        knobs = dict(self.knobs)
        knobs[name] = value
        return Setting(self.min_processes, self.max_processes, tuple(sorted(knobs.items())))

    def apply(self, policy: Policy) -> Policy:
        slo = policy.strategy.slo.model_copy(update=dict(self.knobs))
        strategy = policy.strategy.model_copy(update={"name": "slo", "slo": slo})
        static = min(max(policy.static_processes, self.min_processes), self.max_processes)
        return policy.model_copy(
            update={
                "min_processes": self.min_processes,
                "max_processes": self.max_processes,
                "static_processes": static,
                "strategy": strategy,
            }
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    setting: Setting
    worker_seconds: float
    miss_fraction: float
    meets_slo: bool

    def better_than(self, other: Outcome) -> bool:
        """Meeting the SLO first, then fewer worker-seconds (then fewer misses)."""
        if self.meets_slo != other.meets_slo:
            return self.meets_slo
        if not self.meets_slo:
            return (self.miss_fraction, self.worker_seconds) < (
                other.miss_fraction,
                other.worker_seconds,
            )
        return (self.worker_seconds, self.miss_fraction) < (
            other.worker_seconds,
            other.miss_fraction,
        )


@dataclass(slots=True)
class TuneResult:
    pool: str
    current: Outcome
    best: Outcome
    evaluated: int
    history: list[Outcome] = field(default_factory=list)


def searched_knobs() -> list[str]:
    """The knobs of KNOB_CANDIDATES that SloKnobs has (decide may add or rename knobs)."""
    return [name for name in KNOB_CANDIDATES if name in SloKnobs.model_fields]


def bound_candidates(policy: Policy, ceiling: int) -> tuple[list[int], list[int]]:
    """min_processes and max_processes values to try."""
    static = policy.static_processes
    mins = sorted({0, 1, 2, policy.min_processes, min(static, 4)})
    top = policy.max_processes
    maxes = sorted(
        {
            n
            for n in (math.ceil(top / 2), math.ceil(top * 3 / 4), top, top + top // 2)
            if 1 <= n <= max(top, ceiling)
        }
    )
    return mins, maxes


def _evaluate(setting: Setting) -> Outcome:
    return evaluate(SHARED["trace"], SHARED["pool"], SHARED["policy"], setting, SHARED["settings"])


def evaluate(
    trace: Trace, pool: str, policy: Policy, setting: Setting, settings: WorldSettings
) -> Outcome:
    tuned = setting.apply(policy)
    policies = PolicySet({pool: tuned}, files={})
    result: SimulationResult = simulate(
        trace,
        policies,
        DecideController(policies, settings.budget),
        strategy="slo",
        settings=settings,
        keep_series=False,
    )
    data = result.pools[pool]
    waits = data.waits_s
    misses = (
        float(np.count_nonzero(waits > tuned.slo.wait_s)) / waits.shape[0] if waits.size else 0.0
    )
    return Outcome(
        setting=setting,
        worker_seconds=data.worker_seconds,
        miss_fraction=misses,
        meets_slo=misses <= tuned.slo.allowed_miss_fraction + 1e-12,
    )


def tune(
    trace: Trace,
    policies: PolicySet,
    pool: str,
    *,
    settings: WorldSettings,
    processes: int = 1,
    progress: Callable[[str], None] | None = None,
) -> TuneResult:
    """Coordinate descent from the pool's current policy (see the module docstring)."""
    policy = policies[pool]
    others_mb = sum(p.memory_at_min_mb for name, p in policies.items() if name != pool)
    usable = max(policy.memory_at_min_mb, settings.usable_memory_mb - others_mb)
    alone = WorldSettings(
        interval_s=settings.interval_s,
        startup_s=settings.startup_s,
        memory_budget_mb=usable,
        memory_reserve_mb=0.0,
        drain_limit_s=settings.drain_limit_s,
    )
    ceiling = int(usable // policy.memory_per_worker_mb)
    mins, maxes = bound_candidates(policy, ceiling)
    start = Setting(policy.min_processes, policy.max_processes)
    dimensions: list[tuple[str, Sequence[Any]]] = [
        ("min_processes", mins),
        ("max_processes", maxes),
        *((name, KNOB_CANDIDATES[name]) for name in searched_knobs()),
    ]
    seen: dict[Setting, Outcome] = {}
    with workers(processes, trace=trace, pool=pool, policy=policy, settings=alone) as runner:

        def run(settings_list: list[Setting]) -> list[Outcome]:
            fresh = [s for s in dict.fromkeys(settings_list) if s not in seen]
            for setting, outcome in zip(fresh, runner.map(_evaluate, fresh), strict=True):
                seen[setting] = outcome
            return [seen[s] for s in settings_list]

        current = run([start])[0]
        best = current
        for _ in range(MAX_PASSES):
            improved = False
            for name, values in dimensions:
                candidates = [_vary(best.setting, name, v) for v in values]
                valid = [c for c in candidates if c.min_processes <= c.max_processes]
                for outcome in run(valid):
                    if outcome.better_than(best):
                        best, improved = outcome, True
                if progress is not None:
                    progress(f"{name}: best so far {best.worker_seconds / 3600:.2f} worker-h")
            if not improved:
                break
    return TuneResult(pool=pool, current=current, best=best, evaluated=len(seen))


def _vary(setting: Setting, name: str, value: Any) -> Setting:
    if name == "min_processes":
        return Setting(int(value), setting.max_processes, setting.knobs)
    if name == "max_processes":
        return Setting(setting.min_processes, int(value), setting.knobs)
    return setting.with_knob(name, value)


def policy_lines(result: TuneResult, policy: Policy) -> list[str]:
    """TOML lines to paste into the pool's policy file (which must run strategy "slo")."""
    setting = result.best.setting
    lines = [
        f"min_processes = {setting.min_processes}",
        f"max_processes = {setting.max_processes}",
    ]
    static = min(max(policy.static_processes, setting.min_processes), setting.max_processes)
    if static != policy.static_processes:
        lines.append(f"static_processes = {static}")
    current = policy.strategy.slo
    changed = {k: v for k, v in setting.knobs if getattr(current, k) != v}
    if changed:
        lines += ["", "[strategy.slo]"]
        for name, value in changed.items():
            if value is None:
                lines.append(f"# {name}: delete this knob's line (no limit)")
            else:
                lines.append(f"{name} = {_toml(value)}")
    return lines


def _toml(value: Any) -> str:
    from autoscaler.policy.tomlfmt import toml_value

    return toml_value(value)
