"""What `status` shows of the surge-first replacements in progress (act/retire.py): which slot
is being replaced by which, why, since when and at which step; a pool's `autoscaler restart`;
a configuration change whose new worker did not start, held back for a retry.

Read from the file every apply keeps under the apply lock (act/retire_state.py, `replacing.json`
in the state directory), so it shows the daemon's replacements and an `autoscaler restart`'s
alike (a replacement held back for memory room has not started: the daemon publishes those
with its decision, daemon/published.py). status reads it without the lock: the file is written
atomically, and a missing, unreadable or damaged one becomes a problem to show, never an
exception.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoscaler.act.retire import CONFIG_RETRY_S, LABELS
from autoscaler.act.retire_state import (
    STATE_NAME,
    ReplaceState,
    ReplaceStateError,
    Retirement,
    load,
)
from autoscaler.observe.observation import Observation


@dataclass(frozen=True, slots=True, kw_only=True)
class Replacements:
    state: ReplaceState
    problem: str | None = None  # the file could not be read: why (state is then empty)


def read_replacements(state_dir: Path) -> Replacements:
    """The replacements in progress per the state directory's file (none when it is absent)."""
    path = state_dir / STATE_NAME
    try:
        state = load(path)
        _check(state)
    except ReplaceStateError as exc:
        return Replacements(state=ReplaceState(), problem=f"unreadable: {exc}")
    except (TypeError, ValueError) as exc:
        return Replacements(
            state=ReplaceState(), problem=f"unreadable: {path}: not a replacement state ({exc})"
        )
    return Replacements(state=state)


def pool_replacement(
    replacements: Replacements, pool: str, observation: Observation
) -> dict[str, Any]:
    """The `status --format json` fields of one pool: replacement, restart,
    config_change_failed (null when none) and replacements_unknown (why the file is unreadable)."""
    state, now_s = replacements.state, observation.at_s
    retirement = state.retiring.get(pool)
    restart = state.restarts.get(pool)
    failure = state.config_failed.get(pool)
    return {
        "replacement": None if retirement is None else {
            "old_slot": retirement.slot,
            "old_pid": retirement.pid,
            "new_slot": retirement.replacement,
            "origin": retirement.origin,
            "reason": retirement.reason,
            "since_s": retirement.since_s,
            "age_s": round(max(0.0, now_s - retirement.since_s), 3),
            "step": _step(retirement, _slot_states(observation)),
        },
        "restart": None if restart is None else {
            "started_s": restart.started_s,
            "owner_pid": restart.owner_pid,
            "replaced": restart.replaced,
            "remaining": len(restart.old),
            "failed": restart.failed,
        },
        "config_change_failed": None if failure is None else {
            "why": failure.why,
            "at_s": failure.at_s,
            "retry_in_s": round(max(0.0, failure.at_s + CONFIG_RETRY_S - now_s), 3),
        },
        "replacements_unknown": replacements.problem,
    }  # fmt: skip


def replacement_notes(
    replacements: Replacements, pools: Mapping[str, object], observation: Observation
) -> list[str]:
    """Lines under status's table: one per replacement, restart and held-back configuration
    of the pools shown; or why the file cannot be read."""
    if replacements.problem is not None:
        return [f"replacements in progress unknown: {replacements.problem}"]
    lines = []
    for pool in pools:
        row = pool_replacement(replacements, pool, observation)
        step, restart, failure = row["replacement"], row["restart"], row["config_change_failed"]
        if step is not None:
            new = step["new_slot"] or "(a new slot)"
            why = LABELS[step["origin"]]
            if step["origin"] != "restart":
                why += f": {step['reason']}"
            lines.append(
                f"replacing in {pool}: {step['old_slot']} (pid {step['old_pid']}) -> {new}, "
                f"{why}, since {_clock(step['since_s'])} ({step['age_s']:.0f}s): {step['step']}"
            )
        if restart is not None:
            done = f"{restart['replaced']} replaced, {restart['remaining']} to go"
            if restart["failed"] is not None:
                lines.append(f"restart of {pool} stopped ({done}): {restart['failed']}")
            else:
                lines.append(
                    f"restart of {pool} since {_clock(restart['started_s'])}: {done} "
                    f"(autoscaler restart pid {restart['owner_pid']})"
                )
        if failure is not None:
            lines.append(
                f"configuration change of {pool} failed at {_clock(failure['at_s'])}: "
                f"{failure['why']}; next try in {failure['retry_in_s']:.0f}s or at the next "
                "policy edit"
            )
    return lines


def waiting_notes(waiting_for_room: Mapping[str, str]) -> list[str]:
    """Lines for the replacements the daemon holds back for memory room (published with its
    decision: daemon/published.py), not in the file as they have not started."""
    return [f"waiting for memory room in {pool}: {why}" for pool, why in waiting_for_room.items()]


def _step(retirement: Retirement, states: Mapping[str, str]) -> str:
    """Where the replacement stands, from the file and the slots' states in this sample."""
    new = retirement.replacement
    old_state = states.get(retirement.slot)
    new_state = states.get(new) if new is not None else None
    if retirement.cancel:
        return "cancelled: the next apply undoes the surge"
    if old_state == "STOPPING":
        return "the old one finishes its job"
    if new is None:
        return "the next apply adds the new slot"
    if new_state == "RUNNING":
        return "the new one runs: the next apply stops the old one (it finishes its job first)"
    return f"waiting for the new one to run ({new_state or 'not started yet'})"


def _slot_states(observation: Observation) -> dict[str, str]:
    return {usage.slot: usage.state for usage in observation.slots}


def _clock(at_s: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at_s))


def _check(state: ReplaceState) -> None:
    """The fields status does arithmetic or text with have their types (a hand-edited or
    foreign file could hold anything): TypeError naming the field otherwise."""
    numbers = [
        *((f"retiring.{p}.since_s", r.since_s) for p, r in state.retiring.items()),
        *((f"restarts.{p}.started_s", r.started_s) for p, r in state.restarts.items()),
        *((f"config_failed.{p}.at_s", f.at_s) for p, f in state.config_failed.items()),
    ]
    for name, value in numbers:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{name} is not a number: {value!r}")
    for pool, r in state.retiring.items():
        if not isinstance(r.slot, str) or not isinstance(r.replacement, str | None):
            raise TypeError(f"retiring.{pool}: slot names are not text")
        if r.origin not in LABELS:
            raise TypeError(f"retiring.{pool}.origin is not one of {sorted(LABELS)}")
    for pool, restart in state.restarts.items():
        if not isinstance(restart.old, dict):
            raise TypeError(f"restarts.{pool}.old is not an object")
