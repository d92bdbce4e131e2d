"""Apply worker counts to Supervisor: `supervisorctl update` over XML-RPC, without blocking
and without restarting the slots that stay.

Level-based and idempotent: every apply compares what is wanted with what the file says and
what supervisord runs, and changes only the difference. A converged system costs one read
(getAllProcessInfo): no write, no reread, no state-changing call. The actuator decides
nothing: counts come from `decide` or from the operator.

One apply:
1. read the running processes and the live file; choose the slots (planner, with
   reconcile.choose_layout);
2. render the file pool by pool (planner, pool_guard): a pool whose sections Supervisor's
   parser would refuse keeps the sections the live file has for it, or, when those are
   refused too (its log directory was deleted), is left out while its serving slots run on
   (it is reported, the others go on); write it atomically if it differs, keeping the
   previous version;
3. reread (reloadConfig, reread) when the file was written or an earlier reread is
   unfinished; if supervisord refuses one pool's section, hold that pool back and reread the
   rest; if it refuses for another reason, roll the file back, reread again, report;
4. in one round trip (system.multicall, slot_calls): remove drained slots, add new ones,
   stop dropped ones (SIGTERM, the job finishes; removed on a later apply once stopped),
   start slots that stopped outside autoscaler or went FATAL (with a retry backoff), replace
   changed slots;
5. report what was done, what drains, and what needs an operator (FATAL, BACKOFF, stuck;
   slot_watch, logged once by apply_log).
supervisord down or refusing: a clear error, and the next attempts back off (never a crash).
"""

from __future__ import annotations

import time
import xmlrpc.client
from collections.abc import Callable, Collection, Mapping

from loguru import logger

from autoscaler.act.apply_log import ApplyLog, counts_text, log_calls
from autoscaler.act.apply_report import ApplyPlan, ApplyReport, SlotProblem
from autoscaler.act.planner import Planned, plan_apply, preview_changes, target_slots
from autoscaler.act.pool_guard import PoolGuard, with_policy_origin
from autoscaler.act.reconcile import (
    Slot,
    SlotChange,
    our_slots,
    pool_members,
    pool_of_slot,
    slot_changes,
)
from autoscaler.act.reread import ApplyError, Rereader
from autoscaler.act.retire import Replacer
from autoscaler.act.retire_state import STATE_NAME
from autoscaler.act.slot_calls import execute, is_unknown_name
from autoscaler.act.slot_watch import SlotWatch
from autoscaler.act.surge_room import DeclaredRoom
from autoscaler.backoff import Backoff
from autoscaler.policy.model import Policy
from autoscaler.settings import Settings
from autoscaler.supervisord.include_file import SupervisorFile, SupervisorFileError, section_names
from autoscaler.supervisord.rpc import (
    ProcessInfo,
    SupervisorClient,
    SupervisorUnavailable,
    fault_name,
)

# Slots with a job in flight, stopped last on scale-down: their names, or a function of the
# processes the apply reads (a caller that finds them in the workers' logs then needs no
# getAllProcessInfo of its own); None: unknown, the highest index goes first.
BusySlots = Collection[str] | Callable[[list[ProcessInfo]], Collection[str]] | None


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
        self._rereader = Rereader(client=client, file=file, guard=self._guard)
        self._log = ApplyLog()
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
        replacer = Replacer(
            path=file.state_dir / STATE_NAME,
            declared_room=DeclaredRoom(settings.usable_memory_mb),
        )
        return cls(
            client=SupervisorClient.from_settings(settings),
            file=file,
            policies=policies,
            replacer=replacer,
        )

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
        planned = self._plan(old_text, processes, desired, busy, check=True)
        plan = planned[0]
        if plan.problem is None:
            plan.changes = preview_changes(
                self.policies, planned, busy=busy, hold=self._watch.held()
            )
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
        self._log.refusals(report.refused)
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
            logger.info(f"wrote {self.file.path}: {counts_text(plan.before, plan.after)}")
        changed: set[str] = set()
        if report.wrote_file or self.file.pending():
            changed, layout, slots = self._rereader.reread_by_pool(
                self.policies,
                old_text,
                (plan, layout, slots),
                report=report,
                replan=lambda: self._plan(old_text, processes, desired, busy),
            )
        target = target_slots(self.policies, layout)
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
            changed = self._rereader.reread(self.policies, old_text, plan.new_text, wrote=False)
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
        self._log.problems(review.problems)
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
    ) -> Planned:
        return plan_apply(
            policies=self.policies,
            file=self.file,
            replacer=self.replacer,
            guard=self._guard,
            old_text=old_text,
            processes=processes,
            desired=desired,
            busy=busy,
            check=check,
        )

    def _track_retiring(self, slots: Mapping[str, Slot], done: list[SlotChange]) -> None:
        """Slots of removed pools, from their stop until supervisord no longer has them (a
        stopped group left behind would be started by `supervisorctl start all`)."""
        retiring = set(self.file.retiring())
        retiring |= {c.slot for c in done if c.action == "stop" and c.pool is None}
        retiring -= {c.slot for c in done if c.action == "remove"}
        retiring &= {name for name, slot in slots.items() if slot.process is not None}
        self.file.set_retiring(retiring)

    def _execute(
        self, changes: list[SlotChange]
    ) -> tuple[list[SlotChange], list[tuple[SlotChange, str]]]:
        done, failed = execute(self.client, changes) if changes else ([], [])
        log_calls(done, failed)
        return done, failed


def _resolve(busy_slots: BusySlots, processes: list[ProcessInfo]) -> Collection[str] | None:
    return busy_slots(processes) if callable(busy_slots) else busy_slots
