"""The memory gate for surges outside the daemon: may one more worker of a pool start now?

A surge-first replacement (a restart's next step, a configuration change) holds one worker
more than the pool's count until the old one exits. The daemon asks its own budget, with the
workers' measured sizes (daemon/recycler.py). `autoscaler restart` and the other verbs have no
measurements: they count every live worker of the policies (starting, running, or stopping
and finishing its job) at its declared `memory_per_worker_mb` against the settings' budget.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from autoscaler.act.reconcile import Slot
from autoscaler.policy.model import Policy

# A process exists, so it holds memory (BACKOFF and FATAL slots hold none; issue 19).
HOLDING_STATES = frozenset({"STARTING", "RUNNING", "STOPPING"})
_EPS = 1e-9

# pool, what the surge is for (for the message) -> whether one more worker fits now
SurgeGate = Callable[[str, str], bool]


class DeclaredRoom:
    """Builds, per apply, a gate from the slots: each yes takes one worker off the room."""

    def __init__(self, usable_mb: float) -> None:
        self.usable_mb = usable_mb
        self.refusals: dict[str, str] = {}  # pool -> why its last surge did not fit

    def gate(self, slots: Mapping[str, Slot], policies: Mapping[str, Policy]) -> SurgeGate:
        """The gate for one apply, from its view of the slots and the policies it applies."""
        left_mb = self.usable_mb - used_mb(slots, policies)
        self.refusals = {}

        def fits(pool: str, what: str) -> bool:
            nonlocal left_mb
            policy = policies.get(pool)
            if policy is None:
                return False
            size_mb = policy.memory_per_worker_mb
            if size_mb > left_mb + _EPS:
                self.refusals[pool] = (
                    f"{what}: one more worker ({size_mb:.0f} MB) does not fit the memory budget "
                    f"({max(0.0, left_mb):.0f} MB free at the declared sizes)"
                )
                return False
            left_mb -= size_mb
            return True

        return fits


def used_mb(slots: Mapping[str, Slot], policies: Mapping[str, Policy]) -> float:
    """Memory the managed workers hold now, at their declared sizes."""
    used = 0.0
    for slot in slots.values():
        policy = policies.get(slot.pool) if slot.pool is not None else None
        if policy is not None and slot.state in HOLDING_STATES:
            used += policy.memory_per_worker_mb
    return used
