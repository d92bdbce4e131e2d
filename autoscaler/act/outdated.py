"""Slots that run an older configuration than their policy renders now: a policy edit changed
the command, the environment, a log path or another option of the slot's section.

Such a slot keeps its section in the live file, byte for byte, for as long as it runs: then
supervisord sees nothing changed for it (no restart, even by a `supervisorctl update` typed by
hand), and the Replacer (act/retire.py) replaces it surge-first: a new slot with the new section
starts, and the old one is stopped (it finishes its job) only once the new one is RUNNING. The
live file is the record of which slots are outdated: a restarted autoscaler finds the same ones.

Slots that do not serve (BACKOFF, FATAL, stopped, draining) are not kept: they get the new
section at once and are re-added with it (reconcile's `changed` path), as nothing is lost.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from autoscaler.act.reconcile import Slot
from autoscaler.policy.model import Policy
from autoscaler.supervisord.include_file import sections_of, slot_texts
from autoscaler.supervisord.render import render_slot

KEEP_STATES = frozenset({"STARTING", "RUNNING"})  # serving, or about to


@dataclass(frozen=True, slots=True, kw_only=True)
class Outdated:
    """The outdated slots of one apply, and what each pool's policy renders now."""

    sections: dict[str, str] = field(default_factory=dict)  # slot -> its live section (kept)
    pools: dict[str, list[str]] = field(default_factory=dict)  # pool -> its outdated slots
    reasons: dict[str, str] = field(default_factory=dict)  # slot -> what changed, for people
    wanted: dict[str, str] = field(default_factory=dict)  # pool -> config_digest(policy)


def config_digest(policy: Policy) -> str:
    """Names the configuration a policy renders (equal digests: the same sections)."""
    return hashlib.sha256(render_slot(policy, 0).encode()).hexdigest()[:16]


def find_outdated(
    policies: Mapping[str, Policy],
    live_text: str | None,
    slots: Mapping[str, Slot],
    paused: Collection[str] = (),
) -> Outdated:
    """Slots in the live file, STARTING or RUNNING, whose section differs from the one their
    policy renders for them now. Paused pools have none (their slots all go)."""
    live = slot_texts(live_text or "")
    found = Outdated(wanted={pool: config_digest(policy) for pool, policy in policies.items()})
    for name in sorted(slots):
        slot = slots[name]
        if slot.pool is None or slot.pool in paused or slot.state not in KEEP_STATES:
            continue
        text = live.get(name) if slot.in_file else None
        if text is None:
            continue
        rendered = render_slot(policies[slot.pool], slot.index)
        if text == rendered:
            continue
        found.sections[name] = text
        found.pools.setdefault(slot.pool, []).append(name)
        found.reasons[name] = _what_changed(name, text, rendered)
    return found


def _what_changed(name: str, old: str, new: str) -> str:
    before = sections_of(old).get(name, {})
    after = sections_of(new).get(name, {})
    keys = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return f"configuration changed: {', '.join(keys) if keys else 'formatting'}"
