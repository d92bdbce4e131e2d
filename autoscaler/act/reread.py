"""Have supervisord reread the include file (reloadConfig), and roll it back when refused.

A refusal that names one pool's sections holds that pool back (pool_guard) and the rest is
reread again; any other refusal puts the previous file back, rereads that, and raises
ApplyError. The refused text is kept beside the live file for the operator.
"""

from __future__ import annotations

import xmlrpc.client
from collections.abc import Callable, Mapping

from loguru import logger

from autoscaler.act.apply_report import ApplyReport
from autoscaler.act.planner import Planned
from autoscaler.act.pool_guard import PoolGuard
from autoscaler.act.reconcile import Layout, Slot
from autoscaler.policy.model import Policy
from autoscaler.supervisord.include_file import SupervisorFile, brief
from autoscaler.supervisord.rpc import SupervisorClient, fault_name


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


class Rereader:
    """reloadConfig for the actuator, with the per-pool hold and the rollback."""

    def __init__(self, *, client: SupervisorClient, file: SupervisorFile, guard: PoolGuard) -> None:
        self.client = client
        self.file = file
        self._guard = guard

    def reread_by_pool(
        self,
        policies: Mapping[str, Policy],
        old_text: str | None,
        planned: Planned,
        *,
        report: ApplyReport,
        replan: Callable[[], Planned],
    ) -> tuple[set[str], Layout, dict[str, Slot]]:
        """Reread; a refusal that names one pool's section holds that pool back (its last
        good sections are put back, `replan` renders that) and the rest is reread again, at
        most twice per pool (its last good sections, then none). Returns the changed groups
        and the layout finally loaded."""
        plan, layout, slots = planned
        for _attempt in range(2 * len(policies) + 1):
            try:
                changed = self.reread(policies, old_text, plan.new_text, wrote=report.wrote_file)
                break
            except _PoolRefused as refused:
                pool = refused.pool
                self._guard.hold(pool, policies[pool], refused.reason, leave_out=refused.leave_out)
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

    def reread(
        self, policies: Mapping[str, Policy], old_text: str | None, new_text: str, *, wrote: bool
    ) -> set[str]:
        """reloadConfig; on refusal roll the file back (if this apply wrote it) and reread
        the previous version, then raise ApplyError. Returns the changed groups."""
        try:
            return set(self.client.reload_config().changed)
        except xmlrpc.client.Fault as fault:
            why = f"{fault_name(fault.faultCode)}: {brief(fault.faultString)}"
            base = old_text
            if not wrote and self.file.pending():
                base = self.file.previous_version()  # what the unfinished write changed
            refused = self._guard.refused_pool(policies, fault.faultString, base, new_text)
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
