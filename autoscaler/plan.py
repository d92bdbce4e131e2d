"""What decide returns: a worker count per pool with its reason, and the controller's memory."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True, kw_only=True)
class PoolDecision:
    pool: str
    strategy: str
    current: int | None  # slots observed now (None: Supervisor unknown)
    desired: int
    reason: str  # for operators: `oldest wait 48s > SLO 30s; ... +5`
    held: bool = False  # data missing or stale: the count was held, not decided


@dataclass(slots=True, kw_only=True)
class Plan:
    at_s: float
    decisions: dict[str, PoolDecision]
    memory_limit_mb: float  # what the workers may use this tick
    memory_planned_mb: float  # desired x memory per worker, plus draining workers

    def counts(self) -> dict[str, int]:
        return {pool: d.desired for pool, d in self.decisions.items()}


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryBudget:
    """The host budget for managed workers (settings), minus a reserve."""

    budget_mb: float
    reserve_mb: float = 0.0

    def limit_mb(self, *, available_mb: float | None, managed_in_use_mb: float) -> float:
        """Usable memory: the budget, and no more than the host has free plus what the
        managed workers already hold (when MemAvailable is known)."""
        limit = max(0.0, self.budget_mb - self.reserve_mb)
        if available_mb is not None:
            limit = min(limit, available_mb + managed_in_use_mb)
        return limit


@dataclass(slots=True, kw_only=True)
class ControllerState:
    """What decide remembers between ticks; a new value is returned every tick."""

    last_desired: dict[str, int] = field(default_factory=dict)
    pools: dict[str, Any] = field(default_factory=dict)  # per-pool strategy memory
