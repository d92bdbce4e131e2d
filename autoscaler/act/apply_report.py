"""What an apply would do (ApplyPlan) and what it did (ApplyReport): data, no I/O."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from autoscaler.act.reconcile import KILLED, SlotChange
from autoscaler.supervisord.slots import WorkerCounts


@dataclass(frozen=True, slots=True, kw_only=True)
class SlotProblem:
    """A slot that needs an operator's eye: FATAL, BACKOFF, stuck STOPPING, a refused call."""

    slot: str
    pool: str | None
    state: str
    detail: str

    def __str__(self) -> str:
        return f"{self.slot} {self.state}: {self.detail}"


@dataclass(slots=True, kw_only=True)
class ApplyPlan:
    """The next apply, computed without touching anything."""

    path: str
    old_text: str | None
    new_text: str
    before: dict[str, int]  # slots per pool now (in the file or serving)
    after: dict[str, int]  # slots per pool once applied
    changes: list[SlotChange]
    notes: list[str]  # drift found and how it is repaired
    problem: str | None = None  # the new text would be refused: it is never written
    refused: dict[str, str] = field(default_factory=dict)  # pool -> why it keeps its slots
    # slot -> what changed: slots running an older configuration, replaced surge-first
    replacing: dict[str, str] = field(default_factory=dict)

    @property
    def file_changed(self) -> bool:
        return self.old_text != self.new_text

    def diff(self) -> str:
        """A unified diff of the live file against the new text ('' when identical)."""
        if not self.file_changed:
            return ""
        old = (self.old_text or "").splitlines(keepends=True)
        new = self.new_text.splitlines(keepends=True)
        label = self.path if self.old_text is not None else "/dev/null"
        return "".join(difflib.unified_diff(old, new, fromfile=label, tofile=self.path))

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.path,
            "file_changed": self.file_changed,
            "diff": self.diff(),
            "before": self.before,
            "after": self.after,
            "changes": [change_json(c) for c in self.changes],
            "notes": self.notes,
            "problem": self.problem,
            "refused": self.refused,
            "replacing": self.replacing,
        }


@dataclass(slots=True, kw_only=True)
class ApplyReport:
    """What one apply did. `error` set: it stopped early (nothing or part done; see changes)."""

    before: dict[str, int] = field(default_factory=dict)
    after: dict[str, int] = field(default_factory=dict)
    changes: list[SlotChange] = field(default_factory=list)  # calls that succeeded
    notes: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # pool -> why it was not applied
    problems: list[SlotProblem] = field(default_factory=list)
    counts: dict[str, WorkerCounts] = field(default_factory=dict)  # after this apply
    draining: list[str] = field(default_factory=list)  # slots finishing their job (memory!)
    wrote_file: bool = False
    reread: bool = False
    rolled_back: bool = False
    pending: bool = False  # a reread or a replacement is still to finish
    replacing: list[str] = field(default_factory=list)  # pools with outdated slots to replace
    settled: bool = False  # every wanted slot RUNNING
    error: str | None = None
    retry_in_s: float | None = None  # when error: the next attempt waits this long
    skipped: bool = False  # not attempted: still backing off after an error
    unreachable: bool = False  # the error is supervisord not answering (worth retrying soon)

    @property
    def ok(self) -> bool:
        return self.error is None

    def killed(self) -> list[SlotChange]:
        """Slots removed after supervisord SIGKILLed them: their job may be cut short."""
        return [c for c in self.changes if c.action == "remove" and c.reason.endswith(KILLED)]

    @property
    def converged(self) -> bool:
        """Nothing was or is left to do: no write, no call, nothing draining or pending."""
        return (
            self.ok
            and self.settled
            and not self.changes
            and not self.wrote_file
            and not self.draining
            and not self.pending
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "error": self.error,
            "retry_in_s": self.retry_in_s,
            "skipped": self.skipped,
            "before": self.before,
            "after": self.after,
            "wrote_file": self.wrote_file,
            "reread": self.reread,
            "rolled_back": self.rolled_back,
            "changes": [change_json(c) for c in self.changes],
            "notes": self.notes,
            "refused": self.refused,
            "problems": [
                {"slot": p.slot, "pool": p.pool, "state": p.state, "detail": p.detail}
                for p in self.problems
            ],
            "counts": {
                pool: {
                    "running": c.running,
                    "starting": c.starting,
                    "draining": c.draining,
                    "failed": c.failed,
                }
                for pool, c in self.counts.items()
            },
            "draining": self.draining,
            "pending": self.pending,
            "replacing": self.replacing,
            "converged": self.converged,
        }


def change_json(change: SlotChange) -> dict[str, Any]:
    """One slot change as the JSON outputs show it."""
    return {
        "slot": change.slot,
        "pool": change.pool,
        "action": change.action,
        "reason": change.reason,
    }
