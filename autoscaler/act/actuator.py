"""Apply worker counts to Supervisor: `supervisorctl update` over XML-RPC, without blocking
and without restarting the slots that stay.

Level-based and idempotent: every apply compares what is wanted with what the file says and
what supervisord runs, and changes only the difference. A converged system costs one read
(getAllProcessInfo): no write, no reread, no state-changing call. The actuator decides
nothing: counts come from `decide` or from the operator.

One apply:
1. read the running processes and the live file; choose the slots (reconcile.choose_layout);
2. render the file; refuse it if Supervisor's parser would (it never reaches the live file);
   write it atomically if it differs, keeping the previous version;
3. reread (reloadConfig) when the file was written or an earlier reread is unfinished; if
   supervisord refuses, roll the file back, reread again, report;
4. in one round trip (system.multicall): remove drained slots, add new ones, stop dropped
   ones (SIGTERM, the job finishes; removed on a later apply once stopped), start slots that
   stopped outside autoscaler or went FATAL (with a retry backoff), replace changed slots;
5. report what was done, what drains, and what needs an operator (FATAL, BACKOFF, stuck).
supervisord down or refusing: a clear error, and the next attempts back off (never a crash).
"""

from __future__ import annotations

import re
import time
import xmlrpc.client
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

from loguru import logger

from autoscaler.act.apply_report import ApplyPlan, ApplyReport, SlotProblem
from autoscaler.act.reconcile import (
    KILLED,
    Layout,
    Slot,
    SlotChange,
    choose_layout,
    our_slots,
    pool_members,
    pool_of_slot,
    predicted_changes,
    slot_changes,
)
from autoscaler.act.slot_calls import execute, is_unknown_name
from autoscaler.act.slot_watch import SlotWatch
from autoscaler.backoff import Backoff
from autoscaler.policy.model import Policy
from autoscaler.settings import Settings
from autoscaler.supervisord.include_file import (
    SupervisorFile,
    SupervisorFileError,
    brief,
    section_names,
    sections_of,
    slot_texts,
)
from autoscaler.supervisord.render import assemble, pool_block, render_pool
from autoscaler.supervisord.rpc import (
    ProcessInfo,
    SupervisorClient,
    SupervisorUnavailable,
    fault_name,
)
from autoscaler.supervisord.slots import parse_slot, slot_name

# Slots with a job in flight, stopped last on scale-down: their names, or a function of the
# processes the apply reads (a caller that finds them in the workers' logs then needs no
# getAllProcessInfo of its own); None: unknown, the highest index goes first.
BusySlots = Collection[str] | Callable[[list[ProcessInfo]], Collection[str]] | None


# A slot section named in Supervisor's messages: "... in section 'program:mail-worker_00'".
_SECTION = re.compile(r"program:([^'\"\]\s]+)")


def with_policy_origin(message: str, policies: Mapping[str, Policy]) -> str:
    """Supervisor names the generated section; say which policy file the operator must edit."""
    named = _named_slot(message, policies)
    pool = pool_of_slot(policies, named) if named is not None else None
    if pool is None:
        return message
    files: Mapping[str, Path] = getattr(policies, "files", {})
    where = files.get(pool, f"{pool}.toml")
    return f"{message} [the slot is pool {pool}'s: fix `command` or [supervisor] in {where}]"


def _named_slot(message: str, policies: Mapping[str, Policy]) -> str | None:
    """The first slot of a policy that the message names ("for 'program:x_00.command'" is
    the option, "in section 'program:x_00'" the section: either will do)."""
    for match in _SECTION.finditer(message):
        name = match.group(1)
        for candidate in (name, name.rsplit(".", 1)[0]):
            if pool_of_slot(policies, candidate) is not None:
                return candidate
    return None


class ApplyError(Exception):
    """An apply could not finish; the message says why and what was rolled back."""

    def __init__(self, message: str, *, rolled_back: bool = False) -> None:
        super().__init__(message)
        self.rolled_back = rolled_back


class _PoolRefused(Exception):
    """supervisord refused a reread because of one pool's sections."""

    def __init__(self, pool: str, reason: str) -> None:
        super().__init__(reason)
        self.pool = pool
        self.reason = reason


class _Held:
    """A pool whose new sections supervisord refused: until its policy changes or its
    backoff runs out, it keeps its last good sections without asking again."""

    def __init__(self, *, policy: Policy, reason: str, backoff: Backoff) -> None:
        self.policy = policy
        self.reason = reason
        self.backoff = backoff


class Actuator:
    """Moves Supervisor to a count per pool. `apply` every tick; `plan` touches nothing.

    Faults stay per pool: a pool whose sections Supervisor's parser (or supervisord itself)
    refuses keeps its last good sections (none if it is new) and is reported in `refused`;
    every other pool is applied in the same call.
    """

    def __init__(
        self,
        *,
        client: SupervisorClient,
        file: SupervisorFile,
        policies: Mapping[str, Policy],
        clock: Callable[[], float] = time.monotonic,
        retry_initial_s: float = 1.0,
        retry_max_s: float = 60.0,
        fatal_retry_s: float = 30.0,
        fatal_retry_max_s: float = 900.0,
        stop_grace_s: float = 5.0,
        lock_timeout_s: float = 30.0,
    ) -> None:
        self.client = client
        self.file = file
        self._clock = clock
        self._retry_initial_s, self._retry_max_s = retry_initial_s, retry_max_s
        self.backoff = Backoff(initial_s=retry_initial_s, max_s=retry_max_s, clock=clock)
        self._held: dict[str, _Held] = {}
        self._logged_refusals: dict[str, str] = {}
        self._policies: Mapping[str, Policy] = policies
        self._watch = SlotWatch(
            clock=clock,
            fatal_retry_s=fatal_retry_s,
            fatal_retry_max_s=fatal_retry_max_s,
            stop_grace_s=stop_grace_s,
        )
        self._lock_timeout_s = lock_timeout_s
        self._last_error: str | None = None
        self._last_unreachable = False
        self._logged_problems: set[str] = set()

    @property
    def policies(self) -> Mapping[str, Policy]:
        return self._policies

    @policies.setter
    def policies(self, policies: Mapping[str, Policy]) -> None:
        """New policies: an edit may be the fix, so the retry backoff starts over, and pools
        held after a refusal are tried again at once when their policy changed."""
        if dict(policies) != dict(self._policies):
            self.backoff.succeeded()
        self._held = {
            pool: held for pool, held in self._held.items() if policies.get(pool) == held.policy
        }
        self._policies = policies

    @classmethod
    def from_settings(cls, settings: Settings, policies: Mapping[str, Policy]) -> Actuator:
        file = SupervisorFile(
            path=settings.include_file,
            state_dir=settings.state_dir,
            backups=settings.include_backups,
        )
        return cls(client=SupervisorClient.from_settings(settings), file=file, policies=policies)

    # -- reading ---------------------------------------------------------------------------
    def file_counts(self) -> dict[str, int]:
        """Slots per pool in the live file (what the last apply wanted): a restarted daemon
        starts from these instead of the static counts. Pools without a slot in the file
        (autoscaler never ran them) are left out."""
        counts: dict[str, int] = {}
        for name in section_names(self.file.read() or ""):
            pool = pool_of_slot(self.policies, name)
            if pool is not None:
                counts[pool] = counts.get(pool, 0) + 1
        return counts

    def current_counts(self) -> dict[str, int]:
        """Slots per pool now (in the file or serving; draining ones excluded), from one
        read of supervisord and of the file."""
        processes = self.client.processes()
        slots = our_slots(self.policies, section_names(self.file.read() or ""), processes)
        return {pool: len(pool_members(slots, pool)) for pool in self.policies}

    def plan(
        self, desired: Mapping[str, int] | None = None, *, busy_slots: BusySlots = None
    ) -> ApplyPlan:
        """What the next apply would do, from one read of supervisord and of the file.
        `desired`: counts for some pools; the others keep what the file holds."""
        processes = self.client.processes()
        busy = _resolve(busy_slots, processes)
        old_text = self.file.read()
        plan, layout, slots = self._plan(old_text, processes, desired, busy, check=True)
        if plan.problem is None:
            changed = predicted_changes(
                sections_of(old_text or ""), sections_of(plan.new_text), slots
            )
            changes = slot_changes(
                self.policies,
                slots,
                layout,
                target=self._target(layout),
                changed=changed,
                busy_slots=busy,
                hold=self._watch.held(),
            )
            # An apply replaces changed slots one per pool per round; the plan shows them all.
            plan.changes = [c for c in changes if c.slot not in changed] + [
                SlotChange(
                    slot=name,
                    pool=slots[name].pool,
                    action="replace",
                    reason="configuration changed: replaced gracefully, one slot per pool "
                    "at a time",
                )
                for name in sorted(changed)
            ]
        return plan

    # -- applying --------------------------------------------------------------------------
    def apply(
        self, desired: Mapping[str, int] | None = None, *, busy_slots: BusySlots = None
    ) -> ApplyReport:
        """Move Supervisor towards `desired` (pool -> slots; pools left out keep what the file
        holds). `busy_slots`: see BusySlots.
        Never raises for supervisord or file trouble: the report's `error` says what failed,
        and until `retry_in_s` has passed further calls return at once (backoff). A count
        outside a policy's min/max or an unknown pool is the caller's bug: ValueError/KeyError.
        """
        wait_s = self.backoff.remaining_s()
        if wait_s > 0:
            return ApplyReport(
                error=self._last_error,
                retry_in_s=wait_s,
                skipped=True,
                unreachable=self._last_unreachable,
            )
        report = ApplyReport()
        try:
            with self.file.locked(timeout_s=self._lock_timeout_s):
                self._apply_locked(desired, busy_slots, report)
        except ApplyError as exc:
            report.error, report.rolled_back = str(exc), exc.rolled_back
        except SupervisorUnavailable as exc:
            report.error, report.unreachable = str(exc), True
        except SupervisorFileError as exc:
            report.error = str(exc)
        except OSError as exc:
            # A full disk or a read-only directory: the live file is the old one or the new
            # one (atomic writes), never half of one; say the system's own reason.
            report.error = f"cannot update {self.file.path} or its state: {exc}"
        except xmlrpc.client.Fault as fault:
            report.error = (
                f"supervisord refused: {fault_name(fault.faultCode)}: {fault.faultString}"
            )
        self._log_refusals(report.refused)
        if report.error is not None:
            if not report.unreachable:
                report.error = with_policy_origin(report.error, self.policies)
            report.retry_in_s = self.backoff.failed()
            if report.error != self._last_error:
                logger.error(
                    f"apply failed: {report.error} (next attempt in {report.retry_in_s:g}s)"
                )
            self._last_error = report.error
            self._last_unreachable = report.unreachable
        else:
            if self._last_error is not None:
                logger.info("apply works again after the error above")
            self._last_error = None
            self.backoff.succeeded()
        return report

    def _apply_locked(
        self, desired: Mapping[str, int] | None, busy_slots: BusySlots, report: ApplyReport
    ) -> None:
        processes = self.client.processes()
        busy = _resolve(busy_slots, processes)
        old_text = self.file.read()
        plan, layout, slots = self._plan(old_text, processes, desired, busy)
        report.before, report.after, report.notes = plan.before, plan.after, plan.notes
        report.refused = plan.refused
        for note in plan.notes:
            logger.warning(note)
        try:
            report.wrote_file = self.file.write(plan.new_text)  # checks before writing
        except SupervisorFileError as exc:
            raise SupervisorFileError(f"not applied, the live file is unchanged: {exc}") from None
        if report.wrote_file:
            logger.info(f"wrote {self.file.path}: {_counts_text(plan.before, plan.after)}")
        changed: set[str] = set()
        if report.wrote_file or self.file.pending():
            # A refusal that names one pool's section holds that pool back (its last good
            # sections are put back) and the rest is reread again: at most once per pool.
            for _attempt in range(len(self.policies) + 1):
                try:
                    changed = self._reread(old_text, plan.new_text, wrote=report.wrote_file)
                    break
                except _PoolRefused as refused:
                    self._hold(refused.pool, refused.reason)
                    self.file.save_rejected(plan.new_text)
                    plan, layout, slots = self._plan(old_text, processes, desired, busy)
                    self.file.restore(plan.new_text)  # the refused text was never loaded
                    report.after, report.refused = plan.after, plan.refused
            else:
                raise ApplyError("supervisord refused every pool's sections in turn")
            report.reread = True
            self._held = {pool: held for pool, held in self._held.items() if pool in report.refused}
        target = self._target(layout)
        changes = slot_changes(
            self.policies,
            slots,
            layout,
            target=target,
            changed=changed,
            busy_slots=busy,
            hold=self._watch.held(),
        )
        done, failed = self._execute(changes)
        unloaded = [c for c, why in failed if c.action == "add" and is_unknown_name(why)]
        if unloaded and not report.reread:
            # The slots' configuration is not loaded (supervisord restarted with an older
            # file, or someone ran reread by hand): reread, then add them once more.
            changed = self._reread(old_text, plan.new_text, wrote=False)
            report.reread = True
            failed = [(c, why) for c, why in failed if c not in unloaded]
            more, more_failed = self._execute(unloaded)
            done += more
            failed += more_failed
            unloaded = [c for c, why in more_failed if is_unknown_name(why)]
        replaced = {c.slot for c in done if c.action == "replace"}
        if report.reread and not (changed & target) - replaced and not unloaded:
            self.file.clear_pending()
        report.pending = self.file.pending()
        report.changes = done
        review = self._watch.review(self.policies, slots, target, done)
        report.counts, report.draining, report.settled = (
            review.counts,
            review.draining,
            review.settled,
        )
        report.problems = [
            SlotProblem(slot=c.slot, pool=c.pool, state="refused", detail=why) for c, why in failed
        ] + review.problems
        self._log_problems(review.problems)
        if unloaded:
            raise ApplyError(
                f"supervisord does not know {', '.join(c.slot for c in unloaded)} even after "
                f"rereading: is {self.file.path} matched by the [include] files= line of "
                "supervisord.conf?"
            )

    def _plan(
        self,
        old_text: str | None,
        processes: list[ProcessInfo],
        desired: Mapping[str, int] | None,
        busy: Collection[str] | None,
        *,
        check: bool = False,
    ) -> tuple[ApplyPlan, Layout, dict[str, Slot]]:
        """`check`: also check the whole text (each pool's sections are checked anyway)."""
        slots = our_slots(self.policies, section_names(old_text or ""), processes)
        layout = choose_layout(self.policies, slots, desired, busy)
        text, refused = self._render(old_text, layout)
        problem: str | None = None
        if check and text != old_text:
            try:
                self.file.check(text)
            except SupervisorFileError as exc:
                problem = with_policy_origin(str(exc), self.policies)
        plan = ApplyPlan(
            path=str(self.file.path),
            old_text=old_text,
            new_text=text,
            before=layout.before,
            after=layout.counts(),
            changes=[],
            notes=layout.notes,
            problem=problem,
            refused=refused,
        )
        return plan, layout, slots

    def _render(self, old_text: str | None, layout: Layout) -> tuple[str, dict[str, str]]:
        """The file for `layout`, each pool checked on its own: a pool whose sections would be
        refused (or were, by supervisord, and are held) keeps the sections the live file has
        for it, and `layout` is changed to match. Returns (text, pool -> why refused)."""
        old_sections = slot_texts(old_text or "")
        blocks: dict[str, str] = {}
        refused: dict[str, str] = {}
        for pool, indices in layout.indices.items():
            policy = self.policies[pool]
            held = self._held.get(pool)
            if held is not None and held.backoff.remaining_s() > 0:
                reason = held.reason
            else:
                block = render_pool(pool, policy, indices)
                try:
                    self.file.check(block)
                except SupervisorFileError as exc:
                    reason = with_policy_origin(str(exc), self.policies)
                else:
                    blocks[pool] = block
                    continue
            kept = {
                parsed.index: section
                for name, section in old_sections.items()
                if (parsed := parse_slot(name)) is not None and parsed.program == policy.program
            }
            layout.indices[pool] = tuple(sorted(kept))
            blocks[pool] = pool_block(pool, policy, [kept[i] for i in sorted(kept)])
            refused[pool] = (
                f"{reason}; keeping its {len(kept)} running slot(s) as they are"
                if kept
                else f"{reason}; none of its slots is added until this is fixed"
            )
        return assemble(blocks), refused

    def _hold(self, pool: str, reason: str) -> None:
        held = self._held.get(pool)
        if held is None or held.policy != self.policies[pool]:
            backoff = Backoff(
                initial_s=self._retry_initial_s, max_s=self._retry_max_s, clock=self._clock
            )
            held = _Held(policy=self.policies[pool], reason=reason, backoff=backoff)
            self._held[pool] = held
        held.reason = reason
        held.backoff.failed()

    def _target(self, layout: Layout) -> set[str]:
        return {
            slot_name(self.policies[pool].program, index)
            for pool, indices in layout.indices.items()
            for index in indices
        }

    def _reread(self, old_text: str | None, new_text: str, *, wrote: bool) -> set[str]:
        """reloadConfig; on refusal roll the file back (if this apply wrote it) and reread
        the previous version, then raise ApplyError. Returns the changed groups."""
        try:
            return set(self.client.reload_config().changed)
        except xmlrpc.client.Fault as fault:
            why = f"{fault_name(fault.faultCode)}: {brief(fault.faultString)}"
            pool = self._refused_pool(fault.faultString, old_text, new_text)
            if wrote and pool is not None:
                raise _PoolRefused(
                    pool, f"supervisord refused pool {pool}'s sections ({why})"
                ) from None
            if not wrote:
                # Pending: an earlier apply wrote the live file and never saw it reread (it
                # timed out, or autoscaler stopped). Its refusal is that write's: roll it back.
                previous = self.file.previous_version() if self.file.pending() else None
                if previous is None or previous == new_text:
                    raise ApplyError(
                        f"supervisord cannot reread its configuration ({why})"
                    ) from None
                old_text = previous
        self.file.save_rejected(new_text)
        self.file.restore(old_text)
        logger.error(
            f"supervisord refused the new {self.file.path} ({why}); rolled back to the "
            f"previous version (the refused text is kept in {self.file.rejected_path})"
        )
        try:
            self.client.reload_config()
        except xmlrpc.client.Fault as again:
            raise ApplyError(
                f"supervisord cannot reread its configuration ({why}); {self.file.path} was "
                "rolled back, and rereading the previous version fails too "
                f"({' '.join(again.faultString.split())}): the problem is in another file "
                "that supervisord.conf includes",
                rolled_back=True,
            ) from None
        raise ApplyError(
            f"supervisord refused the new {self.file.path} ({why}); rolled back to the "
            f"previous version and reloaded it (refused text: {self.file.rejected_path})",
            rolled_back=True,
        )

    def _refused_pool(self, message: str, old_text: str | None, new_text: str) -> str | None:
        """The pool whose section supervisord names, when this write changed that section."""
        name = _named_slot(message, self.policies)
        if name is None:
            return None
        pool = pool_of_slot(self.policies, name)
        if pool is None or (pool in self._held and self._held[pool].backoff.remaining_s() > 0):
            return None
        old = slot_texts(old_text or "").get(name)
        return pool if old != slot_texts(new_text).get(name) else None

    def _log_refusals(self, refused: Mapping[str, str]) -> None:
        """Log a pool's refusal when it appears or its reason changes, and when it ends."""
        for pool, reason in refused.items():
            if self._logged_refusals.get(pool) != reason:
                logger.error(f"pool {pool} not applied: {reason}")
        for pool in set(self._logged_refusals) - set(refused):
            logger.info(f"pool {pool} applies again")
        self._logged_refusals = dict(refused)

    def _execute(
        self, changes: list[SlotChange]
    ) -> tuple[list[SlotChange], list[tuple[SlotChange, str]]]:
        done, failed = execute(self.client, changes) if changes else ([], [])
        for change in done:
            if change.reason.endswith(KILLED):
                logger.warning(f"{change.action} {change.slot}: {change.reason}")
            else:
                logger.info(f"{change.action} {change.slot}: {change.reason}")
        for change, why in failed:
            logger.error(f"{change.action} {change.slot} failed: {why}")
        return done, failed

    def _log_problems(self, problems: list[SlotProblem]) -> None:
        """Log a slot problem when it appears, not on every tick it lasts."""
        keys = {f"{p.slot}:{p.state}" for p in problems}
        for problem in problems:
            if f"{problem.slot}:{problem.state}" not in self._logged_problems:
                logger.warning(f"slot {problem}")
        self._logged_problems = keys


def _resolve(busy_slots: BusySlots, processes: list[ProcessInfo]) -> Collection[str] | None:
    return busy_slots(processes) if callable(busy_slots) else busy_slots


def _counts_text(before: Mapping[str, int], after: Mapping[str, int]) -> str:
    moved = [f"{pool} {before.get(pool, 0)} -> {n}" for pool, n in after.items()]
    moved = [m for m, (pool, n) in zip(moved, after.items(), strict=True) if before.get(pool) != n]
    return ", ".join(moved) if moved else "same counts, new content"
