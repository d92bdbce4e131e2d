"""What decide returns: a worker count per pool with its reason, and the controller's memory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# A strategy may leave its reason unformatted: (function, args). decide formats it only when
# the plan's decisions are read (Plan.lazy): the simulator reads none of them, and formatting
# floats costs more than deciding.
LazyReason = tuple[Callable[..., str], tuple[Any, ...]]


@dataclass(slots=True, kw_only=True)
class PoolDecision:
    pool: str
    strategy: str
    current: int | None  # slots observed now (None: Supervisor unknown)
    desired: int
    reason: str  # for operators: `oldest wait 48s > SLO 30s; ... +5`
    held: bool = False  # data missing or stale: the count was held, not decided
    wanted: int | None = None  # the strategy's count within min/max, before the memory budget
    capped: bool = False  # the memory budget gave less than `wanted`
    crashing: int = 0  # slots crashing at start (BACKOFF/FATAL): the pool is not scaled up


@dataclass(kw_only=True)
class Plan:
    """Every pool's count and decision. decide returns a lazy plan (Plan.lazy): its counts
    at once, its decisions (reasons formatted) when first read. The daemon reads them every
    tick; the simulator never does, and building them would cost it about 50 us per tick,
    with decide itself at about 70 (7 pools, slo)."""

    at_s: float
    decisions: dict[str, PoolDecision]
    memory_limit_mb: float  # what the workers may use this tick
    memory_planned_mb: float  # desired x memory per worker, plus draining workers
    # Right after the plan is applied: workers being stopped still hold memory until they
    # exit, so this is max(desired, current) + draining per pool. Scale-ups are held back
    # until it fits the limit (it can exceed it only when the running workers already did).
    memory_peak_mb: float = 0.0

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] | None = self.__dict__.get("_counts")
        if counts is not None:
            return dict(counts)
        return {pool: d.desired for pool, d in self.decisions.items()}

    @classmethod
    def lazy(
        cls,
        *,
        at_s: float,
        counts: dict[str, int],
        build: Callable[[], dict[str, PoolDecision]],
        memory_limit_mb: float,
        memory_planned_mb: float,
        memory_peak_mb: float,
    ) -> Plan:
        """A plan whose decisions are made on first read (`build()` must return decisions
        with exactly `counts` as desired): the simulator reads counts() only."""
        plan = object.__new__(cls)
        plan.__dict__ = {
            "at_s": at_s,
            "_decisions": build,
            "memory_limit_mb": memory_limit_mb,
            "memory_planned_mb": memory_planned_mb,
            "memory_peak_mb": memory_peak_mb,
            "_counts": counts,
        }
        return plan


def _get_decisions(plan: Plan) -> dict[str, PoolDecision]:
    decisions = plan.__dict__["_decisions"]
    if callable(decisions):
        decisions = decisions()
        plan.__dict__["_decisions"] = decisions
    return decisions  # type: ignore[no-any-return]


def _set_decisions(plan: Plan, decisions: dict[str, PoolDecision]) -> None:
    plan.__dict__["_decisions"] = decisions
    plan.__dict__.pop("_counts", None)  # counts follow the decisions from now on


# `decisions` stays a dataclass field (asdict, replace, == and repr see the built dict) but is
# stored behind a property so that decide can leave it to be built when first read.
setattr(Plan, "decisions", property(_get_decisions, _set_decisions))  # noqa: B010


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryBudget:
    """The host budget for managed workers (settings), minus a reserve."""

    budget_mb: float
    reserve_mb: float = 0.0

    def limit_mb(self, *, available_mb: float | None, managed_in_use_mb: float) -> float:
        """Usable memory: the budget less the reserve, and never more than the host's
        MemAvailable less the reserve plus what the managed workers already hold (when
        MemAvailable is known)."""
        limit = max(0.0, self.budget_mb - self.reserve_mb)
        if available_mb is not None:
            limit = min(limit, max(0.0, available_mb - self.reserve_mb + managed_in_use_mb))
        return limit


@dataclass(slots=True, kw_only=True)
class ControllerState:
    """What decide remembers between ticks; a new value is returned every tick.

    decide never mutates a state it was given: per-pool memories are immutable values
    (replaced, not updated), so an old state stays valid and comparable.
    """

    last_desired: dict[str, int] = field(default_factory=dict)
    pools: dict[str, Any] = field(default_factory=dict)  # per-pool strategy memory
    # Memory shared by several pools, e.g. one Horizon supervisor's last balancing time.
    shared: dict[str, Any] = field(default_factory=dict)
    # Pool -> when its slots were last seen crashing at start: no slots are added until
    # CRASH_HOLD_S later (core.py), so a broken deploy is not scaled up in a loop.
    crashed_at_s: dict[str, float] = field(default_factory=dict)
