"""Apply worker counts to Supervisor: `supervisorctl update` over XML-RPC, without blocking
and without restarting the slots that stay.

Level-based and idempotent: every apply compares what is wanted with what the file says and
what supervisord runs, and changes only the difference. A converged system costs one read
(getAllProcessInfo): no write, no reread, no state-changing call. The actuator decides
nothing: counts come from `decide` or from the operator.

One apply:
1. read the running processes and the live file; choose the slots (reconcile.choose_layout);
2. render the file pool by pool (pool_guard): a pool whose sections Supervisor's parser would
   refuse keeps the sections the live file has for it, or, when those are refused too (its
   log directory was deleted), is left out while its serving slots run on (it is reported,
   the others go on); write it atomically if it differs, keeping the previous version;
3. reread (reloadConfig) when the file was written or an earlier reread is unfinished; if
   supervisord refuses one pool's section, hold that pool back and reread the rest; if it
   refuses for another reason, roll the file back, reread again, report;
4. in one round trip (system.multicall): remove drained slots, add new ones, stop dropped
   ones (SIGTERM, the job finishes; removed on a later apply once stopped), start slots that
   stopped outside autoscaler or went FATAL (with a retry backoff), replace changed slots;
5. report what was done, what drains, and what needs an operator (FATAL, BACKOFF, stuck).
supervisord down or refusing: a clear error, and the next attempts back off (never a crash).
"""

from __future__ import annotations

import time
import xmlrpc.client
from collections.abc import Callable, Collection, Mapping

from loguru import logger

from autoscaler.act.apply_report import ApplyPlan, ApplyReport, SlotProblem
from autoscaler.act.outdated import find_outdated
from autoscaler.act.pool_guard import PoolGuard, with_policy_origin
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
from autoscaler.act.retire import Replacer
from autoscaler.act.retire_state import STATE_NAME
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
)
from autoscaler.supervisord.paused import PausedFileError, read_paused
from autoscaler.supervisord.rpc import (
    ProcessInfo,
    SupervisorClient,
    SupervisorUnavailable,
    fault_name,
)
from autoscaler.supervisord.slots import slot_name

# Slots with a job in flight, stopped last on scale-down: their names, or a function of the
# processes the apply reads (a caller that finds them in the workers' logs then needs no
# getAllProcessInfo of its own); None: unknown, the highest index goes first.
BusySlots = Collection[str] | Callable[[list[ProcessInfo]], Collection[str]] | None


class ApplyError(Exception):
    """An apply could not finish; the message says why and what was rolled back."""

    def __init__(self, message: str, *, rolled_back: bool = False) -> None:
        super().__init__(message)
        self.rolled_back = rolled_back


class _PoolRefused(Exception):
    """supervisord refused a reread because of one pool's sections (`leave_out`: sections
    the live file had already, so keeping them would not help)."""

    def __init__(self, pool: str, reason: str, *, leave_out: bool) -> None:
        super().__init__(reason)
        self.pool = pool
        self.reason = reason
        self.leave_out = leave_out


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
        replacer: Replacer | None = None,
    ) -> None:
        self.client = client
        # Surge-first replacements (recycling, `autoscaler restart`): act/retire.py.
        self.replacer = replacer or Replacer(path=file.state_dir / STATE_NAME)
        self.file = file
        self.backoff = Backoff(initial_s=retry_initial_s, max_s=retry_max_s, clock=clock)
        self._guard = PoolGuard(
            file=file, clock=clock, retry_initial_s=retry_initial_s, retry_max_s=retry_max_s
        )
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
        self._guard.follow(policies)
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
        self.replacer.checkpoint()  # before the file names a surge slot
        try:
            report.wrote_file = self.file.write(plan.new_text)  # checks before writing
        except SupervisorFileError as exc:
            raise SupervisorFileError(f"not applied, the live file is unchanged: {exc}") from None
        if report.wrote_file:
            logger.info(f"wrote {self.file.path}: {_counts_text(plan.before, plan.after)}")
        changed: set[str] = set()
        if report.wrote_file or self.file.pending():
            changed, layout, slots = self._reread_by_pool(
                old_text,
                (plan, layout, slots),
                report=report,
                replan=lambda: self._plan(old_text, processes, desired, busy),
            )
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
        self._track_retiring(slots, done)
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
        self.replacer.settle(slots, done)
        replaced = {c.slot for c in done if c.action == "replace"}
        if report.reread and not (changed & target) - replaced and not unloaded:
            self.file.clear_pending()
        # A refused pool keeps its sections: its replacements wait until it is fixed.
        report.replacing = sorted(self.replacer.replacing - set(report.refused))
        report.pending = self.file.pending() or bool(report.replacing)
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
        retiring = self.file.retiring()
        slots = our_slots(self.policies, section_names(old_text or ""), processes, retiring)
        try:
            paused = read_paused(self.file.state_dir)
        except PausedFileError as exc:  # never guess: restarting a paused pool is worse
            raise SupervisorFileError(f"not applied: {exc}") from None
        # Slots running an older configuration keep their sections until replaced.
        outdated = find_outdated(self.policies, old_text, slots, set(paused))
        surge = self.replacer.adjust(self.policies, slots, desired, busy, outdated, log=not check)
        layout = choose_layout(
            self.policies,
            slots,
            surge.desired,
            busy,
            set(paused),
            retire_first=surge.retire_first,
            surge=surge.surge,
        )
        text, refused = self._guard.render(
            self.policies, old_text, layout, slots, outdated.sections
        )
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
            replacing=dict(outdated.reasons),
        )
        return plan, layout, slots

    def _track_retiring(self, slots: Mapping[str, Slot], done: list[SlotChange]) -> None:
        """Slots of removed pools, from their stop until supervisord no longer has them (a
        stopped group left behind would be started by `supervisorctl start all`)."""
        retiring = set(self.file.retiring())
        retiring |= {c.slot for c in done if c.action == "stop" and c.pool is None}
        retiring -= {c.slot for c in done if c.action == "remove"}
        retiring &= {name for name, slot in slots.items() if slot.process is not None}
        self.file.set_retiring(retiring)

    def _target(self, layout: Layout) -> set[str]:
        return {
            slot_name(self.policies[pool].program, index)
            for pool, indices in layout.indices.items()
            for index in indices
        }

    def _reread_by_pool(
        self,
        old_text: str | None,
        planned: tuple[ApplyPlan, Layout, dict[str, Slot]],
        *,
        report: ApplyReport,
        replan: Callable[[], tuple[ApplyPlan, Layout, dict[str, Slot]]],
    ) -> tuple[set[str], Layout, dict[str, Slot]]:
        """Reread; a refusal that names one pool's section holds that pool back (its last
        good sections are put back, `replan` renders that) and the rest is reread again, at
        most twice per pool (its last good sections, then none). Returns the changed groups
        and the layout finally loaded."""
        plan, layout, slots = planned
        for _attempt in range(2 * len(self.policies) + 1):
            try:
                changed = self._reread(old_text, plan.new_text, wrote=report.wrote_file)
                break
            except _PoolRefused as refused:
                pool = refused.pool
                self._guard.hold(
                    pool, self.policies[pool], refused.reason, leave_out=refused.leave_out
                )
                self.file.save_rejected(plan.new_text)
                plan, layout, slots = replan()
                self.file.restore(plan.new_text)  # the refused text was never loaded
                report.wrote_file = True
                report.after, report.refused = plan.after, plan.refused
        else:
            raise ApplyError("supervisord refused every pool's sections in turn")
        report.reread = True
        self._guard.loaded(report.refused)
        return changed, layout, slots

    def _reread(self, old_text: str | None, new_text: str, *, wrote: bool) -> set[str]:
        """reloadConfig; on refusal roll the file back (if this apply wrote it) and reread
        the previous version, then raise ApplyError. Returns the changed groups."""
        try:
            return set(self.client.reload_config().changed)
        except xmlrpc.client.Fault as fault:
            why = f"{fault_name(fault.faultCode)}: {brief(fault.faultString)}"
            base = old_text
            if not wrote and self.file.pending():
                base = self.file.previous_version()  # what the unfinished write changed
            refused = self._guard.refused_pool(self.policies, fault.faultString, base, new_text)
            if refused is not None and (wrote or refused[1]):
                # One pool's sections: hold that pool, apply the others. A section no write
                # changed (a log directory deleted under a running pool) is refused whoever
                # wrote last; one an unfinished earlier write changed is rolled back below.
                pool, leave_out = refused
                raise _PoolRefused(
                    pool, f"supervisord refused pool {pool}'s sections ({why})", leave_out=leave_out
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
