"""Replace workers surge-first: a new slot starts, and the old one is stopped only once the new
one is RUNNING (it finishes its job first). A pool never has fewer RUNNING workers for it.

Used for recycling a leaking or old worker (the daemon asks: `request`), for rolling
restarts (`autoscaler restart` records a Restart: each old worker in turn) and for policy edits
that change a slot's section (act/outdated.py: each outdated worker in turn, the new slot with
the new section, the old one keeping its old section until it goes). At most one
replacement per pool at a time. Every apply runs the same steps, under the apply lock, from the
state file (retire_state), so the daemon and `autoscaler restart` never fight:

1. `adjust` (before the layout is chosen): per pool with a replacement in progress
   - no new slot yet: the pool's count + 1 (the surge; one above max_processes is allowed);
   - the new slot RUNNING: the count, dropping the old slot first (SIGTERM, it finishes its job);
   - the new slot FATAL/EXITED: the count, dropping the new slot; the old one is kept and the
     replacement (and a restart) fails with the reason; a failed configuration is not tried
     again for CONFIG_RETRY_S, unless the policy changes again (retire_state.ConfigFailure);
   - cancelled (`restart` interrupted with Ctrl-C): the count, dropping the new slot unless it
     already runs (then the old one goes): no slot is left over after this apply;
   - the old worker gone (exited, or another PID in its slot): done.
2. `settle` (after the calls): remember which slot was added as the new one.

A restart's next step and a configuration change start only while one more worker fits the
memory budget (`may_surge`: the daemon's budget per tick; else act/surge_room.py's declared
sizes), so a deploy's `restart --all` goes pool after pool on a full host instead of adding
a worker to every pool at once. When nothing else is being replaced and no worker is
finishing its job, no memory will come free by waiting: a restart then takes its next step
anyway, over the budget by that one worker, because a deploy must finish.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from loguru import logger

from autoscaler.act.outdated import KEEP_STATES, Outdated
from autoscaler.act.reconcile import SERVING, Slot, SlotChange, pool_members
from autoscaler.act.retire_state import (
    ConfigFailure,
    Origin,
    ReplaceState,
    ReplaceStateError,
    Retirement,
    dumps,
    loads,
    read_text,
    save,
)
from autoscaler.act.surge_room import DeclaredRoom, SurgeGate
from autoscaler.policy.model import Policy

LIVE_STATES = SERVING | {"STOPPING"}
FAILED_STATES = frozenset({"FATAL", "EXITED"})
CONFIG_RETRY_S = 600.0  # a configuration whose new worker did not start: tried again after
LABELS: dict[Origin, str] = {
    "recycle": "recycling",
    "restart": "restart",
    "config": "configuration change",
}


@dataclass(slots=True, kw_only=True)
class Adjustment:
    """What the layout must do for the replacements in progress."""

    desired: dict[str, int] | None
    retire_first: dict[str, str] = field(default_factory=dict)  # slot -> why it goes first
    surge: set[str] = field(default_factory=set)  # pools one above their count


class Replacer:
    """The actuator's hook for surge-first replacements (see the module docstring)."""

    def __init__(
        self,
        *,
        path: Path,
        clock: Callable[[], float] = time.time,
        declared_room: DeclaredRoom | None = None,
    ) -> None:
        self.path = path
        self._clock = clock
        self._declared_room = declared_room  # the gate when may_surge is not set
        self._requests: dict[str, Retirement] = {}
        self._state = ReplaceState()
        self._loaded: str | None = None  # the file's text when the state was read
        self.events: list[str] = []  # the last apply's, for the CLI and the log
        self.failures: dict[str, str] = {}  # pool -> why its replacement failed, last apply
        self.config_failures: set[str] = set()  # those of `failures` that were config changes
        # Whether a pool may start a restart step or a configuration replacement now (one
        # more worker): the daemon's memory budget says, per tick; None: the declared sizes
        # (`declared_room`), or always when there is none.
        self.may_surge: SurgeGate | None = None
        self.replacing: set[str] = set()  # pools with outdated slots still to replace
        self.waiting: set[str] = set()  # pools whose next replacement waits for memory room
        self._told_waiting: set[str] = set()  # of those, the ones already said (once each)
        self._log = True

    # -- asking ----------------------------------------------------------------------------
    def request(self, *, pool: str, slot: str, pid: int, reason: str) -> None:
        """Replace this worker (the daemon's recycling); taken up by the next apply unless
        the pool is replacing another one or restarting."""
        self._requests[pool] = Retirement(
            pool=pool, slot=slot, pid=pid, reason=reason, origin="recycle", since_s=self._clock()
        )

    def requested(self) -> dict[str, Retirement]:
        """The recycles asked for and not yet taken up by an apply."""
        return dict(self._requests)

    def busy_pools(self) -> set[str]:
        """Pools with a replacement or a restart in progress at the last apply."""
        restarting = {p for p, r in self._state.restarts.items() if r.failed is None}
        return set(self._state.retiring) | restarting

    def state(self) -> ReplaceState:
        """The state as the last apply left it."""
        return self._state

    # -- the apply's two steps ---------------------------------------------------------------
    def adjust(
        self,
        policies: Mapping[str, Policy],
        slots: Mapping[str, Slot],
        desired: Mapping[str, int] | None,
        busy: Collection[str] | None,
        outdated: Outdated | None = None,
        *,
        log: bool = True,
    ) -> Adjustment:
        """`outdated`: slots running an older configuration (replaced one per pool at a time).
        `log`: log the events (not for a plan that only shows them)."""
        self.events, self.failures, self.config_failures = [], {}, set()
        self._log = log
        try:
            self._loaded = read_text(self.path)
            state = loads(self.path, self._loaded)
        except ReplaceStateError as exc:
            logger.error(f"{exc}: starting from no replacement in progress")
            state, self._loaded = ReplaceState(), ""
        self._state = state
        now = self._clock()
        gate = self.may_surge
        if gate is None and self._declared_room is not None:
            gate = self._declared_room.gate(slots, policies)
        self.replacing, self.waiting = set(), set()
        self._next_restart_steps(state, policies, slots, busy or (), now, gate=gate)
        self._next_config_steps(state, slots, busy or (), outdated or Outdated(), now, gate=gate)
        self._say_waiting()
        restarting = {p for p, r in state.restarts.items() if r.failed is None}
        for pool, wanted in self._requests.items():
            old = slots.get(wanted.slot)
            if (
                pool in policies
                and pool not in state.retiring
                and pool not in restarting
                and _alive(old, wanted.pid)
            ):
                state.retiring[pool] = wanted
                self._event(f"{pool}: recycling {wanted.slot} (pid {wanted.pid}): {wanted.reason}")
        self._requests = {}
        adjustment = Adjustment(desired=dict(desired) if desired is not None else None)
        counts: dict[str, int] = {}
        for pool, retirement in list(state.retiring.items()):
            policy = policies.get(pool)
            count = (
                None if policy is None else self._step(state, retirement, policy, slots, adjustment)
            )
            if policy is None:
                del state.retiring[pool]
            elif count is not None:
                counts[pool] = count
        if counts:
            adjustment.desired = {**(adjustment.desired or {}), **counts}
        return adjustment

    def checkpoint(self) -> None:
        """Save the state as `adjust` left it, before the apply writes the file: should the
        process die between that write and `settle`, the next apply finds the replacement
        and the pool's size before its surge, and adopts the new slot (_adopt)."""
        save(self.path, self._state, unchanged_from=self._loaded)
        self._loaded = None if self._state.empty else dumps(self._state)

    def settle(self, slots: Mapping[str, Slot], done: Collection[SlotChange]) -> None:
        """After the apply's calls: note the slot added for each surge; save the state."""
        for pool, retirement in self._state.retiring.items():
            if retirement.replacement is None:
                added = sorted(c.slot for c in done if c.pool == pool and c.action == "add")
                if added:
                    retirement.replacement = added[0]
                    self._event(f"{pool}: started {added[0]} to replace {retirement.slot}")
        save(self.path, self._state, unchanged_from=self._loaded)

    # -- steps ---------------------------------------------------------------------------------
    def _next_restart_steps(
        self,
        state: ReplaceState,
        policies: Mapping[str, Policy],
        slots: Mapping[str, Slot],
        busy: Collection[str],
        now_s: float,
        *,
        gate: SurgeGate | None,
    ) -> None:
        """Drop restarted pools' old workers that are gone; start the next replacement
        where one more worker fits (module docstring)."""
        for pool, restart in list(state.restarts.items()):
            if pool not in policies:
                del state.restarts[pool]
                continue
            if restart.failed is not None:
                continue
            restart.old = {s: pid for s, pid in restart.old.items() if _alive(slots.get(s), pid)}
            if pool in state.retiring:
                continue
            if not restart.old:
                del state.restarts[pool]
                self._event(f"{pool}: restart done, {restart.replaced} worker(s) replaced")
                continue
            todo = [name for name in restart.old if slots[name].in_file]  # alive, so known
            if not todo:
                continue  # the last old workers finish their jobs

            def order(name: str) -> tuple[bool, bool, str]:
                return (name in busy, slots[name].state != "RUNNING", name)

            name = min(todo, key=order)
            if gate is not None and not gate(pool, "restart"):
                if state.retiring or any(s.state == "STOPPING" for s in slots.values()):
                    self.waiting.add(pool)  # memory comes free once those are done
                    continue
                self._event(
                    f"{pool}: no memory room for one more worker, and none will come free: "
                    f"replacing {name} over the budget by one worker, as nothing else is "
                    "being replaced"
                )
            state.retiring[pool] = Retirement(
                pool=pool,
                slot=name,
                pid=restart.old[name],
                reason="restart",
                origin="restart",
                since_s=now_s,
            )

    def _next_config_steps(
        self,
        state: ReplaceState,
        slots: Mapping[str, Slot],
        busy: Collection[str],
        outdated: Outdated,
        now_s: float,
        *,
        gate: SurgeGate | None,
    ) -> None:
        """Start replacing one outdated slot per pool that replaces nothing else now: not
        while a restart runs (it replaces them all), nor within CONFIG_RETRY_S of a failure
        to start the same configuration, nor without room (`gate`)."""
        for retirement in state.retiring.values():
            old = slots.get(retirement.slot)
            if (
                retirement.origin == "config"
                and old is not None
                and old.in_file
                and old.state in KEEP_STATES
                and old.name not in outdated.sections
            ):
                retirement.cancel = True  # its policy was put back: undo the surge
        for pool, failed in list(state.config_failed.items()):
            if pool not in outdated.pools or outdated.wanted.get(pool) != failed.wanted:
                del state.config_failed[pool]  # edited again, or back to what runs
        for pool, names in outdated.pools.items():
            failure = state.config_failed.get(pool)
            if failure is not None and now_s - failure.at_s < CONFIG_RETRY_S:
                continue
            self.replacing.add(pool)
            restart = state.restarts.get(pool)
            if pool in state.retiring or (restart is not None and restart.failed is None):
                continue
            if gate is not None and not gate(pool, "configuration change"):
                self.waiting.add(pool)
                continue

            def order(name: str) -> tuple[bool, bool, str]:
                return (name in busy, slots[name].state != "RUNNING", name)

            name = min(names, key=order)
            info = slots[name].process
            assert info is not None  # outdated slots are STARTING or RUNNING
            state.retiring[pool] = Retirement(
                pool=pool,
                slot=name,
                pid=info.pid,
                reason=outdated.reasons[name],
                origin="config",
                since_s=now_s,
                wanted=outdated.wanted[pool],
            )
            self._event(
                f"{pool}: {name} (pid {info.pid}): {outdated.reasons[name]}: replacing it "
                "surge-first"
            )

    def _step(
        self,
        state: ReplaceState,
        retirement: Retirement,
        policy: Policy,
        slots: Mapping[str, Slot],
        adjustment: Adjustment,
    ) -> int | None:
        """One replacement's step; returns the pool's count for the layout (None: leave it)."""
        pool = retirement.pool
        old = slots.get(retirement.slot)
        restart = state.restarts.get(pool)
        restarting = restart is not None and retirement.origin == "restart"
        if not _alive(old, retirement.pid):
            del state.retiring[pool]
            if restart is not None and restarting:
                restart.replaced += 1
                restart.old.pop(retirement.slot, None)
            self._event(f"{pool}: {retirement.slot} (pid {retirement.pid}) has exited: replaced")
            return None
        assert old is not None
        if not old.in_file:  # told to stop: it finishes its job
            # A restart goes on with the next worker (the restart waits for this one's exit
            # before it is done); a recycle waits for the exit (one at a time, memory first).
            # A configuration change goes on too (the draining worker's memory is counted).
            if restart is not None and restarting:
                restart.replaced += 1
                del state.retiring[pool]
            elif retirement.cancel or retirement.origin == "config":
                del state.retiring[pool]
            return None
        in_file = [s for s in pool_members(slots, pool) if s.in_file]
        if retirement.members_before is None:
            retirement.members_before = len(in_file)
        elif retirement.replacement is None and len(in_file) > retirement.members_before:
            retirement.replacement = _adopt(in_file, retirement)
        new = slots.get(retirement.replacement) if retirement.replacement else None
        base = _base(pool, policy, in_file, adjustment.desired, new)
        if new is not None and new.state == "RUNNING":
            adjustment.retire_first[old.name] = (
                f"replaced by {new.name} ({retirement.reason}): it finishes its job first"
            )
            self._event(f"{pool}: {new.name} RUNNING: stopping {old.name} (pid {retirement.pid})")
            return base
        if retirement.origin == "config" and not retirement.cancel:
            # An unproven configuration: no scale-up until its first worker runs (decide
            # counts the surge slot as the pool's, and a crashing one must not multiply).
            before = len(in_file) - (1 if new is not None and new.in_file else 0)
            base = min(base, max(before, policy.min_processes))
        if new is not None and new.state in FAILED_STATES:
            adjustment.retire_first[new.name] = "its replacement run did not start"
            self._failed(state, retirement, old, new)
            return base
        if retirement.cancel:
            what = (
                "configuration put back" if retirement.origin == "config" else "restart interrupted"
            )
            if new is not None:
                adjustment.retire_first[new.name] = f"{what}: undoing its surge"
            del state.retiring[pool]
            self._event(f"{pool}: {what}: {old.name} kept")
            return base
        if new is None and base < len(in_file):
            # The pool shrinks anyway: the old worker is the one to go, no surge needed.
            adjustment.retire_first[old.name] = (
                f"scale down, and {retirement.reason}: it finishes its job first"
            )
            return base
        if new is None:
            retirement.replacement = None  # not added yet, or gone: (re)add one
        # Should the pool shrink meanwhile, the old worker is the first to go.
        adjustment.retire_first[old.name] = (
            f"scale down, and {retirement.reason}: it finishes its job first"
        )
        adjustment.surge.add(pool)
        return base + 1

    def _failed(self, state: ReplaceState, retirement: Retirement, old: Slot, new: Slot) -> None:
        """The new slot did not start: the old worker stays, the replacement ends."""
        pool = retirement.pool
        info = new.process
        detail = (info.spawnerr or f"exit status {info.exitstatus}") if info else new.state
        why = f"{new.name} did not start ({new.state}: {detail}); {old.name} kept"
        del state.retiring[pool]
        self.failures[pool] = f"{LABELS[retirement.origin]}: {why}"
        restart = state.restarts.get(pool)
        if restart is not None and retirement.origin == "restart":
            restart.failed = why
        if retirement.origin == "config":
            why += f", with its older configuration (tried again in {CONFIG_RETRY_S:.0f}s)"
            self.failures[pool] = f"{LABELS['config']}: {why}"
            self.config_failures.add(pool)
            state.config_failed[pool] = ConfigFailure(
                pool=pool, wanted=retirement.wanted or "", why=why, at_s=self._clock()
            )
        if self._log:
            logger.error(f"{pool}: replacing {old.name} failed: {why}")
        self.events.append(f"{pool}: FAILED: {why}")

    def _say_waiting(self) -> None:
        """An event once per pool when its next replacement starts waiting for room."""
        if self.may_surge is not None:
            return  # the daemon's gate says it itself (daemon/recycler.py)
        refusals = self._declared_room.refusals if self._declared_room is not None else {}
        for pool in sorted(self.waiting - self._told_waiting):
            why = refusals.get(pool, "one more worker does not fit the memory budget")
            self._event(f"{pool}: waiting for memory room: {why}")
        self._told_waiting = set(self.waiting)

    def _event(self, text: str) -> None:
        self.events.append(text)
        if self._log:
            logger.info(text)


def _base(
    pool: str,
    policy: Policy,
    in_file: list[Slot],
    desired: Mapping[str, int] | None,
    new: Slot | None,
) -> int:
    """The pool's count without the surge: the caller's, else the file's less the new slot
    (in the file only as the surge), within min/max_processes."""
    if desired is not None and pool in desired:
        count = desired[pool]
    else:
        count = len(in_file) - (1 if new is not None and new.in_file else 0)
    return min(max(count, policy.min_processes), policy.max_processes)


def _alive(slot: Slot | None, pid: int) -> bool:
    """The worker that ran under `pid` in this slot is still there (serving or stopping)."""
    return (
        slot is not None
        and slot.process is not None
        and slot.process.pid == pid
        and slot.state in LIVE_STATES
    )


def _adopt(in_file: list[Slot], retirement: Retirement) -> str | None:
    """The pool has one slot more than when the surge began, but no apply recorded it (one
    that wrote the file did not live to): the newest slot is the new worker."""
    others = [s for s in in_file if s.name != retirement.slot]
    if not others:
        return None
    newest = max(others, key=lambda s: (s.process is None, s.process.start_s if s.process else 0))
    return newest.name
