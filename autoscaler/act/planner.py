"""Plan one apply: choose the slots, render the include file pool by pool, list the changes.

Reads nothing itself: the caller gives the live file's text and supervisord's processes, so
`Actuator.plan` and `Actuator.apply` plan from the same one read.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from autoscaler.act.apply_report import ApplyPlan
from autoscaler.act.outdated import find_outdated
from autoscaler.act.pool_guard import PoolGuard, with_policy_origin
from autoscaler.act.reconcile import (
    Layout,
    Slot,
    SlotChange,
    choose_layout,
    our_slots,
    predicted_changes,
    slot_changes,
)
from autoscaler.act.retire import Replacer
from autoscaler.policy.model import Policy
from autoscaler.supervisord.include_file import (
    SupervisorFile,
    SupervisorFileError,
    section_names,
    sections_of,
)
from autoscaler.supervisord.paused import PausedFileError, read_paused
from autoscaler.supervisord.rpc import ProcessInfo
from autoscaler.supervisord.slots import slot_name

Planned = tuple[ApplyPlan, Layout, dict[str, Slot]]


def plan_apply(
    *,
    policies: Mapping[str, Policy],
    file: SupervisorFile,
    replacer: Replacer,
    guard: PoolGuard,
    old_text: str | None,
    processes: list[ProcessInfo],
    desired: Mapping[str, int] | None,
    busy: Collection[str] | None,
    check: bool = False,
) -> Planned:
    """The next apply's plan, layout and slots. `check`: also check the whole text (each
    pool's sections are checked anyway)."""
    retiring = file.retiring()
    slots = our_slots(policies, section_names(old_text or ""), processes, retiring)
    try:
        paused = read_paused(file.state_dir)
    except PausedFileError as exc:  # never guess: restarting a paused pool is worse
        raise SupervisorFileError(f"not applied: {exc}") from None
    # Slots running an older configuration keep their sections until replaced.
    outdated = find_outdated(policies, old_text, slots, set(paused))
    surge = replacer.adjust(policies, slots, desired, busy, outdated, log=not check)
    layout = choose_layout(
        policies,
        slots,
        surge.desired,
        busy,
        set(paused),
        retire_first=surge.retire_first,
        surge=surge.surge,
    )
    text, refused = guard.render(policies, old_text, layout, slots, outdated.sections)
    problem: str | None = None
    if check and text != old_text:
        try:
            file.check(text)
        except SupervisorFileError as exc:
            problem = with_policy_origin(str(exc), policies)
    plan = ApplyPlan(
        path=str(file.path),
        old_text=old_text,
        new_text=text,
        before=layout.before,
        after=layout.counts(),
        changes=[],
        notes=layout.notes,
        problem=problem,
        refused=refused,
        replacing=dict(outdated.reasons),
    )
    return plan, layout, slots


def target_slots(policies: Mapping[str, Policy], layout: Layout) -> set[str]:
    """The slot names the layout keeps or adds."""
    return {
        slot_name(policies[pool].program, index)
        for pool, indices in layout.indices.items()
        for index in indices
    }


def preview_changes(
    policies: Mapping[str, Policy],
    planned: Planned,
    *,
    busy: Collection[str] | None,
    hold: Collection[str],
) -> list[SlotChange]:
    """Every change the plan leads to, for `Actuator.plan`. An apply replaces changed slots
    one per pool per round; the preview shows them all."""
    plan, layout, slots = planned
    changed = predicted_changes(sections_of(plan.old_text or ""), sections_of(plan.new_text), slots)
    changes = slot_changes(
        policies,
        slots,
        layout,
        target=target_slots(policies, layout),
        changed=changed,
        busy_slots=busy,
        hold=hold,
    )
    return [c for c in changes if c.slot not in changed] + [
        SlotChange(
            slot=name,
            pool=slots[name].pool,
            action="replace",
            reason=plan.replacing.get(name, "configuration changed")
            + (
                ": replaced surge-first, one slot per pool at a time (a new slot "
                "starts; this one stops, finishing its job, once the new one runs)"
                if name in plan.replacing
                else ": replaced gracefully, one slot per pool at a time"
            ),
        )
        for name in sorted(changed | (set(plan.replacing) - {c.slot for c in changes}))
    ]
