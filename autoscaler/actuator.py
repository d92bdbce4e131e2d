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

import time
import xmlrpc.client
from collections.abc import Callable, Collection, Mapping
from typing import Any

from loguru import logger

from autoscaler.apply_report import ApplyPlan, ApplyReport, SlotProblem
from autoscaler.observation import WorkerCounts
from autoscaler.policy import Policy
from autoscaler.reconcile import (
    SERVING,
    Layout,
    Slot,
    SlotChange,
    choose_layout,
    our_slots,
    predicted_changes,
    slot_changes,
)
from autoscaler.render import render
from autoscaler.settings import Settings
from autoscaler.slots import parse_slot, pool_of_programs, slot_name
from autoscaler.supervisor_file import (
    SupervisorFile,
    SupervisorFileError,
    section_names,
    sections_of,
)
from autoscaler.supervisor_rpc import (
    Faults,
    ProcessInfo,
    SupervisorClient,
    SupervisorUnavailable,
    fault_name,
)

# Faults that mean the call's goal is already met.
_BENIGN = {
    "add": {Faults.ALREADY_ADDED},
    "remove": {Faults.BAD_NAME},
    "stop": {Faults.BAD_NAME, Faults.NOT_RUNNING},
    "start": {Faults.ALREADY_STARTED},
}
SUPERVISOR_DEFAULT_STOPWAITSECS = 10


class ApplyError(Exception):
    """An apply could not finish; the message says why and what was rolled back."""

    def __init__(self, message: str, *, rolled_back: bool = False) -> None:
        super().__init__(message)
        self.rolled_back = rolled_back


class Backoff:
    """Exponential retry delay after failures: initial, x2 each time, capped."""

    def __init__(self, *, initial_s: float, max_s: float, clock: Callable[[], float]) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self._clock = clock
        self.failures = 0
        self._retry_at: float | None = None

    def remaining_s(self) -> float:
        if self._retry_at is None:
            return 0.0
        return max(0.0, self._retry_at - self._clock())

    def failed(self) -> float:
        delay = min(self.max_s, self.initial_s * 2.0**self.failures)
        self.failures += 1
        self._retry_at = self._clock() + delay
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self._retry_at = None


class Actuator:
    """Moves Supervisor to a count per pool. `apply` every tick; `plan` touches nothing."""

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
        self.policies = policies
        self._clock = clock
        self.backoff = Backoff(initial_s=retry_initial_s, max_s=retry_max_s, clock=clock)
        self._fatal_retry_s = fatal_retry_s
        self._fatal_retry_max_s = fatal_retry_max_s
        self._fatal_next: dict[str, tuple[float, float]] = {}  # slot -> (retry at, delay)
        self._stop_grace_s = stop_grace_s
        self._stopping_since: dict[str, tuple[float, int]] = {}  # slot -> (since, stopwaitsecs)
        self._lock_timeout_s = lock_timeout_s
        self._last_error: str | None = None
        self._logged_problems: set[str] = set()

    @classmethod
    def from_settings(cls, settings: Settings, policies: Mapping[str, Policy]) -> Actuator:
        password = settings.supervisor_password
        client = SupervisorClient(
            settings.supervisor_url,
            username=settings.supervisor_username,
            password=password.get_secret_value() if password is not None else None,
            timeout_s=settings.supervisor_timeout_s,
        )
        file = SupervisorFile(
            path=settings.include_file,
            state_dir=settings.state_dir,
            backups=settings.include_backups,
        )
        return cls(client=client, file=file, policies=policies)

    # -- reading ---------------------------------------------------------------------------
    def file_counts(self) -> dict[str, int]:
        """Slots per pool in the live file (what the last apply wanted): a restarted daemon
        starts from these instead of the static counts."""
        owner = pool_of_programs(self.policies)
        counts = dict.fromkeys(self.policies, 0)
        for name in section_names(self.file.read() or ""):
            parsed = parse_slot(name)
            pool = owner.get(parsed.program) if parsed is not None else None
            if pool is not None:
                counts[pool] += 1
        return counts

    def plan(
        self, desired: Mapping[str, int] | None = None, *, busy_slots: Collection[str] | None = None
    ) -> ApplyPlan:
        """What the next apply would do, from one read of supervisord and of the file.
        `desired`: counts for some pools; the others keep what the file holds."""
        processes = self.client.processes()
        old_text = self.file.read()
        plan, layout, slots = self._plan(old_text, processes, desired, busy_slots)
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
                busy_slots=busy_slots,
                hold=self._held(),
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
        self, desired: Mapping[str, int] | None = None, *, busy_slots: Collection[str] | None = None
    ) -> ApplyReport:
        """Move Supervisor towards `desired` (pool -> slots; pools left out keep what the file
        holds). `busy_slots`: slots with a job in flight, stopped last on scale-down (None:
        unknown, so the highest index goes first).
        Never raises for supervisord or file trouble: the report's `error` says what failed,
        and until `retry_in_s` has passed further calls return at once (backoff)."""
        wait_s = self.backoff.remaining_s()
        if wait_s > 0:
            return ApplyReport(error=self._last_error, retry_in_s=wait_s, skipped=True)
        report = ApplyReport()
        try:
            with self.file.locked(timeout_s=self._lock_timeout_s):
                self._apply_locked(desired, busy_slots, report)
        except ApplyError as exc:
            report.error, report.rolled_back = str(exc), exc.rolled_back
        except (SupervisorUnavailable, SupervisorFileError) as exc:
            report.error = str(exc)
        except xmlrpc.client.Fault as fault:
            report.error = (
                f"supervisord refused: {fault_name(fault.faultCode)}: {fault.faultString}"
            )
        if report.error is not None:
            report.retry_in_s = self.backoff.failed()
            if report.error != self._last_error:
                logger.error(
                    f"apply failed: {report.error} (next attempt in {report.retry_in_s:g}s)"
                )
            self._last_error = report.error
        else:
            if self._last_error is not None:
                logger.info("apply works again after the error above")
            self._last_error = None
            self.backoff.succeeded()
        return report

    def _apply_locked(
        self, desired: Mapping[str, int] | None, busy: Collection[str] | None, report: ApplyReport
    ) -> None:
        processes = self.client.processes()
        old_text = self.file.read()
        plan, layout, slots = self._plan(old_text, processes, desired, busy, check=False)
        report.before, report.after, report.notes = plan.before, plan.after, plan.notes
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
            changed = self._reread(old_text, plan.new_text, wrote=report.wrote_file)
            report.reread = True
        target = self._target(layout)
        changes = slot_changes(
            self.policies,
            slots,
            layout,
            target=target,
            changed=changed,
            busy_slots=busy,
            hold=self._held(),
        )
        done, failed = self._execute(changes)
        unloaded = [c for c, p in failed if c.action == "add" and "BAD_NAME" in p.detail]
        if unloaded and not report.reread:
            # The slots' configuration is not loaded (supervisord restarted with an older
            # file, or someone ran reread by hand): reread, then add them once more.
            changed = self._reread(old_text, plan.new_text, wrote=False)
            report.reread = True
            failed = [(c, p) for c, p in failed if c not in unloaded]
            more, more_failed = self._execute(unloaded)
            done += more
            failed += more_failed
            unloaded = [c for c, p in more_failed if "BAD_NAME" in p.detail]
        report.changes = done
        report.problems = [p for _c, p in failed]
        replaced = {c.slot for c in done if c.action == "replace"}
        if report.reread and not (changed & target) - replaced and not unloaded:
            self.file.clear_pending()
        report.pending = self.file.pending()
        self._finish_report(report, slots, target, done)
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
        check: bool = True,
    ) -> tuple[ApplyPlan, Layout, dict[str, Slot]]:
        slots = our_slots(self.policies, section_names(old_text or ""), processes)
        layout = choose_layout(self.policies, slots, desired, busy)
        text = render(self.policies, layout.indices)
        problem: str | None = None
        if check and text != old_text:
            try:
                self.file.check(text)
            except SupervisorFileError as exc:
                problem = str(exc)
        plan = ApplyPlan(
            path=str(self.file.path),
            old_text=old_text,
            new_text=text,
            before=layout.before,
            after=layout.counts(),
            changes=[],
            notes=layout.notes,
            problem=problem,
        )
        return plan, layout, slots

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
            why = f"{fault_name(fault.faultCode)}: {' '.join(fault.faultString.split())}"
            if not wrote:
                raise ApplyError(f"supervisord cannot reread its configuration ({why})") from None
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

    def _execute(
        self, changes: list[SlotChange]
    ) -> tuple[list[SlotChange], list[tuple[SlotChange, SlotProblem]]]:
        """All calls in one round trip: removals, additions, stops, starts."""
        order = {"remove": 0, "replace": 1, "add": 2, "stop": 3, "start": 4}
        ordered = sorted(changes, key=lambda c: (order[c.action], c.slot))
        calls: list[tuple[str, tuple[Any, ...]]] = []
        owners: list[tuple[SlotChange, str]] = []
        for change in ordered:
            for step in _steps(change):
                calls.append(_call(step, change.slot))
                owners.append((change, step))
        results = self.client.multicall(calls) if calls else []
        failures: dict[SlotChange, str] = {}
        for (change, step), result in zip(owners, results, strict=True):
            problem = _failure(step, result)
            if problem is not None and change not in failures:
                failures[change] = f"{step} refused: {problem}"
        done: list[SlotChange] = []
        failed: list[tuple[SlotChange, SlotProblem]] = []
        now = self._clock()
        for change in ordered:
            if change in failures:
                detail = failures[change]
                logger.error(f"{change.slot}: {change.action} failed: {detail}")
                failed.append(
                    (
                        change,
                        SlotProblem(slot=change.slot, pool=change.pool, state="?", detail=detail),
                    )
                )
                continue
            logger.info(f"{change.action} {change.slot}: {change.reason}")
            done.append(change)
            if change.action == "stop":
                stopwait = self._stopwaitsecs(change.pool)
                self._stopping_since.setdefault(change.slot, (now, stopwait))
            if change.action == "start" and change.reason.startswith("FATAL"):
                _at, delay = self._fatal_next.get(change.slot, (0.0, self._fatal_retry_s / 2))
                delay = min(self._fatal_retry_max_s, delay * 2)
                self._fatal_next[change.slot] = (now + delay, delay)
        return done, failed

    def _stopwaitsecs(self, pool: str | None) -> int:
        if pool is not None and pool in self.policies:
            return self.policies[pool].stopwaitsecs
        return SUPERVISOR_DEFAULT_STOPWAITSECS

    def _held(self) -> set[str]:
        now = self._clock()
        return {slot for slot, (at, _delay) in self._fatal_next.items() if at > now}

    def _finish_report(
        self,
        report: ApplyReport,
        slots: Mapping[str, Slot],
        target: Collection[str],
        done: list[SlotChange],
    ) -> None:
        """Counts after this apply (draining included), and the slots that need an eye."""
        acted = {c.slot: c.action for c in done}
        counts = {pool: WorkerCounts(running=0, starting=0, draining=0) for pool in self.policies}
        now = self._clock()
        settled = True
        for name in sorted(set(slots) | set(target)):
            slot = slots.get(name)
            state = slot.state if slot is not None else "ABSENT"
            pool = slot.pool if slot is not None else _pool_of(self.policies, name)
            action = acted.get(name)
            if action in ("add", "start", "replace"):
                state = "STARTING"
            elif action == "stop":
                state = "STOPPING"
            elif action == "remove":
                continue
            if name in target and state != "RUNNING":
                settled = False
            if state == "STOPPING":
                report.draining.append(name)
            tally = counts.get(pool) if pool is not None else None
            if tally is not None and (name in target or state == "STOPPING"):
                _count(tally, state)
            if state == "STOPPING":
                stopwait = self._stopwaitsecs(pool)
                self._stopping_since.setdefault(name, (now, stopwait))
            problem = self._problem(name, pool, state, slot, now)
            if problem is not None:
                report.problems.append(problem)
        for name in list(self._stopping_since):
            if name not in report.draining:
                del self._stopping_since[name]
        for name in list(self._fatal_next):
            slot = slots.get(name)
            if slot is None or slot.state == "RUNNING":
                del self._fatal_next[name]
        report.counts = counts
        report.settled = settled
        for problem in report.problems:
            key = f"{problem.slot}:{problem.state}"
            if problem.state != "?" and key not in self._logged_problems:
                logger.warning(f"slot {problem}")
        self._logged_problems = {f"{p.slot}:{p.state}" for p in report.problems}

    def _problem(
        self, name: str, pool: str | None, state: str, slot: Slot | None, now: float
    ) -> SlotProblem | None:
        info = slot.process if slot is not None else None
        if state in ("FATAL", "BACKOFF") and info is not None:
            detail = info.spawnerr or f"exit status {info.exitstatus}"
            if state == "FATAL" and name in self._fatal_next:
                retry_at = self._fatal_next[name][0]
                detail += f"; next start attempt in {max(0.0, retry_at - now):.0f}s"
            return SlotProblem(slot=name, pool=pool, state=state, detail=detail)
        if state != "STOPPING" or name not in self._stopping_since:
            return None
        since, stopwait = self._stopping_since[name]
        stuck_s = now - since
        if stuck_s > stopwait + self._stop_grace_s:
            return SlotProblem(
                slot=name,
                pool=pool,
                state="STOPPING",
                detail=f"stuck for {stuck_s:.0f}s, past stopwaitsecs={stopwait}: SIGKILL did "
                "not end it (a process in uninterruptible sleep?)",
            )
        return None


def _steps(change: SlotChange) -> list[str]:
    return ["remove", "add"] if change.action == "replace" else [change.action]


def _call(step: str, slot: str) -> tuple[str, tuple[Any, ...]]:
    if step == "add":
        return "addProcessGroup", (slot,)
    if step == "remove":
        return "removeProcessGroup", (slot,)
    if step == "stop":
        # stopProcess on the group's only process, not stopProcessGroup: the same SIGTERM,
        # but stopProcessGroup answers through a deferred that supervisord resolves on its
        # next main-loop pass, up to a second later (measured with tests/benchmarks).
        return "stopProcess", (f"{slot}:{slot}", False)
    return "startProcess", (f"{slot}:{slot}", False)


def _failure(step: str, result: Any) -> str | None:
    """None when the call reached its goal, else what went wrong."""
    if isinstance(result, xmlrpc.client.Fault):
        if result.faultCode in _BENIGN.get(step, set()):
            return None
        return f"{fault_name(result.faultCode)}: {result.faultString}"
    return None


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


def _pool_of(policies: Mapping[str, Policy], name: str) -> str | None:
    parsed = parse_slot(name)
    return pool_of_programs(policies).get(parsed.program) if parsed is not None else None


def _counts_text(before: Mapping[str, int], after: Mapping[str, int]) -> str:
    moved = [f"{pool} {before.get(pool, 0)} -> {n}" for pool, n in after.items()]
    moved = [m for m, (pool, n) in zip(moved, after.items(), strict=True) if before.get(pool) != n]
    return ", ".join(moved) if moved else "same counts, new content"
