"""Desired counts + what the file says + what Supervisor runs -> which slots, and what to do.

Pure (no I/O, no clock): the actuator gathers the inputs and carries out the changes, `plan`
prints them. Two steps, because the second needs supervisord's answer to the first:

1. `choose_layout`: which slot indices each pool keeps. Slots that run stay (never restarted);
   a running slot missing from the file is adopted; scale-down stops idle workers first (no
   job in flight), then the highest index; scale-up takes the lowest free indices (never one
   whose old worker is still draining).
2. `slot_changes`: the Supervisor calls that move the running slots to that layout: add new
   slots, stop (gracefully) and later remove dropped ones, start slots that stopped outside
   autoscaler or went FATAL, and replace, one at a time per pool, slots whose configuration
   changed (a policy edit).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from autoscaler.policy.model import Policy
from autoscaler.supervisord.rpc import ProcessInfo
from autoscaler.supervisord.slots import parse_slot, pool_of_programs

Action = Literal["add", "start", "stop", "remove", "replace"]

ABSENT = "ABSENT"  # no active process group in supervisord
# supervisord's exit status for a process ended by a signal: a Laravel worker given SIGTERM
# finishes its job and exits 0, so -1 is SIGKILL at stopwaitsecs (or a worker that does not
# handle SIGTERM): the job in hand may have been cut short.
KILLED_EXIT_STATUS = -1
KILLED = (
    "killed by a signal, not drained (SIGKILL at stopwaitsecs?): a job may have been "
    "interrupted; make stopwaitsecs exceed the worker's --timeout"
)
SERVING = frozenset({"STARTING", "RUNNING", "BACKOFF"})
STOPPED_STATES = frozenset({"STOPPED", "EXITED", "FATAL", "UNKNOWN"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Slot:
    """One worker slot autoscaler manages, as the file and supervisord see it."""

    name: str
    index: int
    pool: str | None  # None: its program belongs to no policy any more
    in_file: bool
    process: ProcessInfo | None  # None: no active process group

    @property
    def state(self) -> str:
        return ABSENT if self.process is None else self.process.statename


@dataclass(frozen=True, slots=True, kw_only=True)
class SlotChange:
    """One call the apply makes (or made, or would make), with the reason an operator reads."""

    slot: str
    pool: str | None
    action: Action
    reason: str


@dataclass(slots=True, kw_only=True)
class Layout:
    """The slots the file will hold, per pool, and what choosing them meant."""

    indices: dict[str, tuple[int, ...]]
    before: dict[str, int]  # slots each pool had (in the file or serving)
    notes: list[str] = field(default_factory=list)  # drift found and how it is repaired
    stop_reasons: dict[str, str] = field(default_factory=dict)  # slot -> why it is dropped
    # slot -> its note (also in `notes`): serving but missing from the file, adopted
    adopted: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {pool: len(indices) for pool, indices in self.indices.items()}


def our_slots(
    policies: Mapping[str, Policy],
    file_slots: Collection[str],
    processes: Iterable[ProcessInfo],
    retiring: Collection[str] = (),
) -> dict[str, Slot]:
    """Every slot autoscaler manages: each program of its file, each single-process group
    named `<program>_NN` of a policy's program, and the `retiring` slots (of pools whose
    policy was removed: stopped, and removed from Supervisor once stopped). Nothing else is
    ever touched."""
    owner = pool_of_programs(policies)
    active = {p.name: p for p in processes if p.group == p.name}
    slots: dict[str, Slot] = {}
    for name in sorted(set(file_slots) | set(active)):
        parsed = parse_slot(name)
        pool = owner.get(parsed.program) if parsed is not None else None
        if name not in file_slots and pool is None and name not in retiring:
            continue  # another file's program
        slots[name] = Slot(
            name=name,
            index=parsed.index if parsed is not None else -1,
            pool=pool,
            in_file=name in file_slots,
            process=active.get(name),
        )
    return slots


def pool_members(slots: Mapping[str, Slot], pool: str) -> list[Slot]:
    """A pool's slots as they count now: in the file, or serving (adopted if not in it).
    Draining slots (stopping, out of the file) are not members."""
    return [s for s in slots.values() if s.pool == pool and (s.in_file or s.state in SERVING)]


def stop_rank(slot: Slot, busy_slots: Collection[str] | None) -> int:
    """Which slots to stop first: 0 not serving, 1 idle (or unknown), 2 a job in flight."""
    if busy_slots is not None and slot.name in busy_slots:
        return 2
    return 1 if slot.state in ("RUNNING", "STARTING") else 0


def choose_layout(
    policies: Mapping[str, Policy],
    slots: Mapping[str, Slot],
    desired: Mapping[str, int] | None,
    busy_slots: Collection[str] | None,
    paused: Collection[str] = (),
    *,
    retire_first: Mapping[str, str] | None = None,
    surge: Collection[str] = (),
) -> Layout:
    """Which indices each pool keeps. A pool missing from `desired` keeps what the file
    holds (or, when the file has none of it, what runs; when nothing runs, its static count).
    `busy_slots`: slots with a job in flight (None: unknown, the highest index goes first).
    `retire_first`: slot -> why, for slots to drop before any other (act/retire.py); `surge`:
    pools allowed one slot above max_processes while a worker is replaced.
    `paused` pools (`autoscaler pause`) keep no slot, whatever `desired` or their min says."""
    wanted = dict(desired or {})
    unknown = sorted(set(wanted) - set(policies))
    if unknown:
        raise KeyError(f"no policy for pool(s) {', '.join(unknown)}")
    layout = Layout(indices={}, before={})
    for pool, policy in policies.items():
        mine = [s for s in slots.values() if s.pool == pool]
        members = pool_members(slots, pool)
        in_file = [s for s in members if s.in_file]
        layout.before[pool] = len(members)
        for slot in members:
            if not slot.in_file:
                note = f"{slot.name} is {slot.state} but missing from the file: adopting it"
                layout.notes.append(note)
                layout.adopted[slot.name] = note
        count = wanted.get(pool)
        if pool in paused:
            if count:
                layout.notes.append(f"pool {pool} is paused: 0 slots, not {count}")
            count = 0
        elif count is None:
            count = len(in_file) if in_file else len(members) or policy.static_processes
            # A policy edited since the file was written: its bounds rule, as decide's would.
            bounded = min(max(count, policy.min_processes), policy.max_processes)
            if bounded != count:
                layout.notes.append(
                    f"pool {pool}: {count} slots now outside min_processes "
                    f"{policy.min_processes} and max_processes {policy.max_processes}: {bounded}"
                )
                count = bounded
        if pool not in paused and not (
            policy.min_processes <= count <= policy.max_processes + (pool in surge)
        ):
            raise ValueError(
                f"pool {pool}: {count} slots is outside min_processes {policy.min_processes} "
                f"and max_processes {policy.max_processes}"
            )
        keep = sorted(members, key=lambda s: s.index)
        first = retire_first or {}
        if len(keep) > count:
            order = sorted(
                keep,
                key=lambda s: (s.name not in first, stop_rank(s, busy_slots), -s.index),
            )
            dropped = order[: len(keep) - count]
            for slot in dropped:
                layout.stop_reasons[slot.name] = first.get(slot.name) or _drop_reason(
                    slot, busy_slots
                )
            keep = [s for s in keep if s not in dropped]
        indices = [s.index for s in keep]
        taken = {s.index for s in mine}  # includes slots still draining
        candidate = 0
        while len(indices) < count:
            if candidate not in taken:
                indices.append(candidate)
            candidate += 1
        layout.indices[pool] = tuple(sorted(indices))
    return layout


def _drop_reason(slot: Slot, busy_slots: Collection[str] | None) -> str:
    rank = stop_rank(slot, busy_slots)
    if rank == 2:
        return "scale down: busy, finishes its job first"
    if rank == 1 and busy_slots is None:
        return "scale down: highest index (whether it has a job in flight is unknown)"
    if rank == 1:
        return "scale down: idle"
    return f"scale down: not serving ({slot.state})"


def slot_changes(
    policies: Mapping[str, Policy],
    slots: Mapping[str, Slot],
    layout: Layout,
    *,
    target: Collection[str],
    changed: Collection[str],
    busy_slots: Collection[str] | None,
    hold: Collection[str] = (),
) -> list[SlotChange]:
    """The calls that move Supervisor towards `target` (the slot names of `layout`).

    `changed`: slots whose loaded configuration differs from the one they run (reloadConfig's
    `changed`); they are replaced gracefully, one running slot per pool at a time.
    `hold`: FATAL slots not to restart yet (the actuator's retry backoff).
    """
    changes: list[SlotChange] = []
    for name in sorted(target):
        slot = slots.get(name)
        pool = slot.pool if slot is not None else pool_of_slot(policies, name)
        if slot is None or slot.process is None:
            reason = "in the file but not in Supervisor (drift): adding it"
            if slot is None or not slot.in_file:
                reason = "scale up: new slot"
            changes.append(SlotChange(slot=name, pool=pool, action="add", reason=reason))
            continue
        if name in changed:
            continue  # replaced below, one per pool
        change = _repair(slot, policies, hold)
        if change is not None:
            changes.append(change)
    changes += _replacements(slots, target, changed, busy_slots)
    for name, slot in sorted(slots.items()):
        if name in target or slot.process is None:
            continue
        if slot.state in SERVING:
            fallback = "its pool has no policy any more" if slot.pool is None else "not wanted"
            reason = layout.stop_reasons.get(name, fallback)
            changes.append(SlotChange(slot=name, pool=slot.pool, action="stop", reason=reason))
        elif slot.state in STOPPED_STATES:
            reason = f"{slot.state}: drained"
            if slot.process.exitstatus == KILLED_EXIT_STATUS:
                reason = f"{slot.state}: {KILLED}"
            changes.append(SlotChange(slot=name, pool=slot.pool, action="remove", reason=reason))
    return changes


def pool_of_slot(policies: Mapping[str, Policy], name: str) -> str | None:
    """The pool whose program the slot `name` belongs to, if any."""
    parsed = parse_slot(name)
    return pool_of_programs(policies).get(parsed.program) if parsed is not None else None


def _repair(slot: Slot, policies: Mapping[str, Policy], hold: Collection[str]) -> SlotChange | None:
    """Start a wanted slot that is not running and that Supervisor will not start itself."""
    info = slot.process
    assert info is not None
    state = slot.state
    why: str | None = None
    if state == "STOPPED" and info.start_s > 0:
        why = "STOPPED outside autoscaler (drift): starting it"
    elif state == "EXITED" and slot.pool is not None:
        autorestart = policies[slot.pool].supervisor.autorestart
        if autorestart != "true":
            why = f"EXITED (autorestart={autorestart}): starting it"
    elif state == "FATAL" and slot.name not in hold:
        detail = f" ({info.spawnerr})" if info.spawnerr else ""
        why = f"FATAL{detail}: starting it again"
    if why is None:
        return None
    return SlotChange(slot=slot.name, pool=slot.pool, action="start", reason=why)


def _replacements(
    slots: Mapping[str, Slot],
    target: Collection[str],
    changed: Collection[str],
    busy_slots: Collection[str] | None,
) -> list[SlotChange]:
    """Changed slots: re-add stopped ones now, stop not-yet-serving ones now, and stop one
    running slot per pool only while every other wanted slot of that pool runs (so a policy
    edit costs a pool at most one worker at a time)."""
    changes: list[SlotChange] = []
    by_pool: dict[str | None, list[Slot]] = {}
    for name in sorted(set(changed) & set(target)):
        slot = slots.get(name)
        if slot is not None and slot.process is not None:
            by_pool.setdefault(slot.pool, []).append(slot)
    for pool, members in by_pool.items():
        in_progress = any(
            s.state in ("STARTING", "STOPPING")
            for s in slots.values()
            if s.pool == pool and s.name in target
        )
        running: list[Slot] = []
        for slot in members:
            if slot.state in STOPPED_STATES:
                in_progress = True
                changes.append(
                    SlotChange(
                        slot=slot.name,
                        pool=pool,
                        action="replace",
                        reason="configuration changed: re-adding it with the new one",
                    )
                )
            elif slot.state == "BACKOFF":
                changes.append(_replace_stop(slot))  # not serving: nothing to lose
            elif slot.state == "RUNNING":
                running.append(slot)
        if running and not in_progress:
            first = min(running, key=lambda s: (stop_rank(s, busy_slots), -s.index))
            changes.append(_replace_stop(first))
    return changes


def _replace_stop(slot: Slot) -> SlotChange:
    return SlotChange(
        slot=slot.name,
        pool=slot.pool,
        action="stop",
        reason="configuration changed: replacing it (it finishes its job first)",
    )


def predicted_changes(
    old_sections: Mapping[str, Mapping[str, str]],
    new_sections: Mapping[str, Mapping[str, str]],
    slots: Mapping[str, Slot],
) -> set[str]:
    """Slots supervisord will report as changed once it loads the new file: running slots
    whose section differs between the file it loaded and the new one (for `plan`)."""
    return {
        name
        for name, options in new_sections.items()
        if name in old_sections
        and dict(old_sections[name]) != dict(options)
        and (slot := slots.get(name)) is not None
        and slot.process is not None
    }
