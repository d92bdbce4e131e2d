"""Faults stay per pool: each pool's sections are checked on their own, and a pool whose
sections would be (or were) refused keeps the ones the live file has for it.

supervisord refuses a whole file for one bad section (a log directory that does not exist, an
unknown user, an unset %(ENV_X)s), so one pool's mistake would freeze every pool. The guard
renders the file pool by pool: a pool that Supervisor's parser refuses, or that supervisord
refused at a reread (held, with a backoff of its own, until its policy changes), is rendered
from its sections in the live file (none if it is new) and reported by pool with the reason.

When the live sections are refused too (the pool's log directory was deleted while it ran),
keeping them would make supervisord refuse the whole file again: the pool is left out of the
file instead, and its serving slots stay in the layout, so they keep running as they are
(never stopped, removed or added). Once its sections pass again they are written back as
they were, and supervisord sees no change for them: nothing restarts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path

from autoscaler.act.reconcile import SERVING, Layout, Slot, pool_of_slot
from autoscaler.backoff import Backoff
from autoscaler.policy.model import Policy
from autoscaler.supervisord.include_file import SupervisorFile, SupervisorFileError, slot_texts
from autoscaler.supervisord.render import assemble, pool_block, render_pool
from autoscaler.supervisord.slots import parse_slot

# A slot section named in Supervisor's messages: "... in section 'program:mail-worker_00'".
_SECTION = re.compile(r"program:([^'\"\]\s]+)")


def with_policy_origin(message: str, policies: Mapping[str, Policy]) -> str:
    """Supervisor names the generated section; say which policy file the operator must edit."""
    named = named_slot(message, policies)
    pool = pool_of_slot(policies, named) if named is not None else None
    if pool is None:
        return message
    files: Mapping[str, Path] = getattr(policies, "files", {})
    where = files.get(pool, f"{pool}.toml")
    fix = f"fix `command` or [supervisor] in {where}"
    if "does not exist" in message:  # a log directory: deleted, or a typo in the policy
        fix = f"create the directory, or {fix}"
    return f"{message} [the slot is pool {pool}'s: {fix}]"


def named_slot(message: str, policies: Mapping[str, Policy]) -> str | None:
    """The first slot of a policy that the message names ("for 'program:x_00.command'" is
    the option, "in section 'program:x_00'" the section: either will do)."""
    for match in _SECTION.finditer(message):
        name = match.group(1)
        for candidate in (name, name.rsplit(".", 1)[0]):
            if pool_of_slot(policies, candidate) is not None:
                return candidate
    return None


class _Held:
    """A pool whose new sections supervisord refused (`leave_out`: its live ones too)."""

    def __init__(self, *, policy: Policy, reason: str, backoff: Backoff, leave_out: bool) -> None:
        self.policy = policy
        self.reason = reason
        self.backoff = backoff
        self.leave_out = leave_out


class PoolGuard:
    """Renders the include file pool by pool and remembers the pools supervisord refused."""

    def __init__(
        self,
        *,
        file: SupervisorFile,
        clock: Callable[[], float],
        retry_initial_s: float,
        retry_max_s: float,
    ) -> None:
        self.file = file
        self._clock = clock
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._held: dict[str, _Held] = {}

    def follow(self, policies: Mapping[str, Policy]) -> None:
        """New policies: a held pool whose policy changed is tried again at once."""
        self._held = {
            pool: held for pool, held in self._held.items() if policies.get(pool) == held.policy
        }

    def render(
        self,
        policies: Mapping[str, Policy],
        old_text: str | None,
        layout: Layout,
        slots: Mapping[str, Slot],
        verbatim: Mapping[str, str] | None = None,
    ) -> tuple[str, dict[str, str]]:
        """The file for `layout`, each pool checked on its own: a refused or held pool keeps
        the sections the live file has for it (or, when those are refused too, is left out
        and keeps its serving slots), and `layout` is changed to match. `verbatim`:
        slot -> section written as it is (render_pool).
        Returns (text, pool -> why it was not applied)."""
        old_sections = slot_texts(old_text or "")
        blocks: dict[str, str] = {}
        refused: dict[str, str] = {}
        for pool, indices in layout.indices.items():
            policy = policies[pool]
            held = self._held.get(pool)
            leave_out = False
            if held is not None and held.backoff.remaining_s() > 0:
                reason, leave_out = held.reason, held.leave_out
            else:
                block = render_pool(pool, policy, indices, verbatim)
                refusal = self._refusal(block, policies)
                if refusal is None:
                    blocks[pool] = block
                    continue
                reason = refusal
            kept = {
                parsed.index: section
                for name, section in old_sections.items()
                if (parsed := parse_slot(name)) is not None and parsed.program == policy.program
            }
            block = pool_block(pool, policy, [kept[i] for i in sorted(kept)])
            if not leave_out:
                # Its live sections are refused now too (its log directory was deleted), or
                # slots of it serve without one (left out before): keep what serves instead.
                leave_out = self._refusal(block, policies) is not None or any(
                    s.pool == pool and s.state in SERVING and s.index not in kept
                    for s in slots.values()
                )
            if leave_out:
                refused[pool] = self._leave_out(pool, reason, layout, slots)
                continue
            layout.indices[pool] = tuple(sorted(kept))
            blocks[pool] = block
            refused[pool] = (
                f"{reason}; keeping its {len(kept)} running slot(s) as they are"
                if kept
                else f"{reason}; none of its slots is added until this is fixed"
            )
        return assemble(blocks), refused

    def _refusal(self, block: str, policies: Mapping[str, Policy]) -> str | None:
        """Why Supervisor's parser refuses a pool's block (None: it passes)."""
        try:
            self.file.check(block)
        except SupervisorFileError as exc:
            return with_policy_origin(str(exc), policies)
        return None

    def _leave_out(self, pool: str, reason: str, layout: Layout, slots: Mapping[str, Slot]) -> str:
        """Leave the pool's sections out of the file; its serving slots stay as they are."""
        mine = [s for s in slots.values() if s.pool == pool and s.process is not None]
        serving = sorted(s.index for s in mine if s.state in SERVING)
        layout.indices[pool] = tuple(serving)
        adopted = {layout.adopted.pop(s.name, None) for s in mine}  # not adopted: left out
        layout.notes = [note for note in layout.notes if note not in adopted]
        return (
            f"{reason}; its {len(serving)} serving slot(s) keep running as they are, none is "
            f"added, and its sections are left out of {self.file.path} until this is fixed "
            "(supervisord refuses the whole file for one bad section)"
        )

    def refused_pool(
        self,
        policies: Mapping[str, Policy],
        message: str,
        old_text: str | None,
        new_text: str,
    ) -> tuple[str, bool] | None:
        """The pool whose section supervisord's refusal names, and whether its sections
        must be left out: the refused section is one the live file had already (the world
        changed under it, e.g. its log directory was deleted), or the pool was held already
        and its kept sections are refused too. None: the refusal is no pool's."""
        name = named_slot(message, policies)
        if name is None:
            return None
        pool = pool_of_slot(policies, name)
        new = slot_texts(new_text).get(name)
        if pool is None or new is None:
            return None
        unchanged = slot_texts(old_text or "").get(name) == new
        return pool, unchanged or self._is_held(pool)

    def hold(self, pool: str, policy: Policy, reason: str, *, leave_out: bool) -> None:
        """supervisord refused the pool's sections: keep its old ones (or, `leave_out`, none
        of them) for a backoff."""
        held = self._held.get(pool)
        if held is None or held.policy != policy:
            backoff = Backoff(
                initial_s=self._retry_initial_s, max_s=self._retry_max_s, clock=self._clock
            )
            held = self._held[pool] = _Held(
                policy=policy, reason=reason, backoff=backoff, leave_out=leave_out
            )
        held.reason = reason
        held.leave_out = leave_out
        held.backoff.failed()

    def loaded(self, refused: Mapping[str, str]) -> None:
        """supervisord loaded the file: pools not refused in it are no longer held."""
        self._held = {pool: held for pool, held in self._held.items() if pool in refused}

    def _is_held(self, pool: str) -> bool:
        held = self._held.get(pool)
        return held is not None and held.backoff.remaining_s() > 0
