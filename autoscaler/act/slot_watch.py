"""What the actuator remembers about slots between applies, and the state it reports.

Supervisor does not say since when a process has been STOPPING, and a FATAL slot started
again every tick would spin: so the watch remembers when each slot was first seen STOPPING
(stuck past its stopwaitsecs is reported) and holds FATAL slots back with a growing delay.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from autoscaler.act.apply_report import SlotProblem
from autoscaler.act.reconcile import SERVING, Slot, SlotChange, pool_of_slot
from autoscaler.backoff import Backoff
from autoscaler.policy.model import Policy
from autoscaler.supervisord.slots import WorkerCounts

SUPERVISOR_DEFAULT_STOPWAITSECS = 10


@dataclass(slots=True, kw_only=True)
class SlotReview:
    """Slots after an apply's calls: counts per pool, draining slots, problems."""

    counts: dict[str, WorkerCounts]
    draining: list[str] = field(default_factory=list)
    problems: list[SlotProblem] = field(default_factory=list)
    settled: bool = True  # every wanted slot RUNNING


class SlotWatch:
    def __init__(
        self,
        *,
        clock: Callable[[], float],
        fatal_retry_s: float = 30.0,
        fatal_retry_max_s: float = 900.0,
        stop_grace_s: float = 5.0,
    ) -> None:
        self._clock = clock
        self._fatal_retry_s = fatal_retry_s
        self._fatal_retry_max_s = fatal_retry_max_s
        self._stop_grace_s = stop_grace_s
        self._fatal: dict[str, Backoff] = {}  # FATAL slots started again, by slot
        self._stopping_since: dict[str, tuple[float, int]] = {}  # slot -> (since, stopwaitsecs)

    def held(self) -> set[str]:
        """FATAL slots not to start again yet."""
        return {slot for slot, backoff in self._fatal.items() if backoff.remaining_s() > 0}

    def review(
        self,
        policies: Mapping[str, Policy],
        slots: Mapping[str, Slot],
        target: Collection[str],
        done: Collection[SlotChange],
    ) -> SlotReview:
        """Each slot's state once this apply's calls took effect (added or started: STARTING,
        stopped: STOPPING, removed: gone), counted per pool like slots.worker_counts, with
        the problems an operator should see."""
        acted = {c.slot: c.action for c in done}
        for name, action in acted.items():
            if action == "start" and name in slots and slots[name].state == "FATAL":
                self._fatal.setdefault(
                    name,
                    Backoff(
                        initial_s=self._fatal_retry_s,
                        max_s=self._fatal_retry_max_s,
                        clock=self._clock,
                    ),
                ).failed()
        review = SlotReview(
            counts={pool: WorkerCounts(running=0, starting=0, draining=0) for pool in policies}
        )
        now = self._clock()
        for name in sorted(set(slots) | set(target)):
            slot = slots.get(name)
            pool = slot.pool if slot is not None else pool_of_slot(policies, name)
            state = _after(slot.state if slot is not None else "ABSENT", acted.get(name))
            if state is None:
                continue  # removed
            if name in target and state != "RUNNING":
                review.settled = False
            if state == "STOPPING":
                review.draining.append(name)
                policy = policies.get(pool) if pool is not None else None
                stopwait = policy.stopwaitsecs if policy else SUPERVISOR_DEFAULT_STOPWAITSECS
                self._stopping_since.setdefault(name, (now, stopwait))
            tally = review.counts.get(pool) if pool is not None else None
            if tally is not None and (name in target or state == "STOPPING"):
                _count(tally, state)
            problem = self._problem(name, pool, state, slot, now)
            if problem is not None:
                review.problems.append(problem)
        for name in list(self._stopping_since):
            if name not in review.draining:
                del self._stopping_since[name]
        for name in list(self._fatal):
            if name not in slots or slots[name].state == "RUNNING":
                del self._fatal[name]
        return review

    def _problem(
        self, name: str, pool: str | None, state: str, slot: Slot | None, now: float
    ) -> SlotProblem | None:
        info = slot.process if slot is not None else None
        if state in ("FATAL", "BACKOFF") and info is not None:
            detail = info.spawnerr or f"exit status {info.exitstatus}"
            if state == "FATAL" and name in self._fatal:
                detail += f"; next start attempt in {self._fatal[name].remaining_s():.0f}s"
            return SlotProblem(slot=name, pool=pool, state=state, detail=detail)
        if state != "STOPPING" or name not in self._stopping_since:
            return None
        since, stopwait = self._stopping_since[name]
        stuck_s = now - since
        if stuck_s <= stopwait + self._stop_grace_s:
            return None
        return SlotProblem(
            slot=name,
            pool=pool,
            state="STOPPING",
            detail=f"stuck for {stuck_s:.0f}s, past stopwaitsecs={stopwait}: SIGKILL did not "
            "end it (a process in uninterruptible sleep?)",
        )


def _after(state: str, action: str | None) -> str | None:
    """A slot's state once `action` took effect; None once removed."""
    if action in ("add", "start", "replace"):
        return "STARTING"
    if action == "stop":
        return "STOPPING"
    if action == "remove":
        return None
    return state


def _count(tally: WorkerCounts, state: str) -> None:
    """Count a slot as slots.worker_counts does; a wanted slot not started yet is starting."""
    if state == "RUNNING":
        tally.running += 1
    elif state in SERVING or state in ("ABSENT", "STOPPED"):
        tally.starting += 1
    elif state == "STOPPING":
        tally.draining += 1
    else:
        tally.failed += 1
