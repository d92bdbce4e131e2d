"""A rate trace of live traffic (docs/design.md, "Trace format"), built tick by tick.

Each tick's per-queue flows (autoscaler.observe.flow_balance.QueueFlow) become one row per queue:
`time_s,queue,arrivals,service_s`. `time_s` is the bucket's start in seconds since the
recording started; `arrivals` the jobs that arrived in the bucket by flow balance, as whole
numbers (fractions carried to the next bucket, so totals stay exact); `service_s` the mean
run time of the jobs that finished in it, or the last one measured (at first the policy's
`expected_run_time_s`) when none did or their run time was not logged.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from autoscaler.fileio import write_atomic, write_atomic_bytes
from autoscaler.observe.flow_balance import QueueFlow
from autoscaler.policy.model import Policy

COLUMNS = ("time_s", "queue", "arrivals", "service_s")


@dataclass(frozen=True, slots=True)
class TraceRow:
    time_s: float
    queue: str
    arrivals: int
    service_s: float


class TraceRecorder:
    """Rows for every queue of every policy, in policy order within a bucket."""

    def __init__(self, *, policies: Mapping[str, Policy], started_at_s: float) -> None:
        self.started_at_s = started_at_s
        self.queues: list[str] = [q for policy in policies.values() for q in policy.queues]
        self._service_s = {
            q: policy.expected_run_time_s for policy in policies.values() for q in policy.queues
        }
        self._carry: dict[str, float] = {}
        self.rows: list[TraceRow] = []
        self.sources: dict[str, set[str]] = {}  # pool -> work sources seen
        self.gaps: list[str] = []  # ticks that could not be balanced, for the header

    def add(self, *, at_s: float, flows: Mapping[str, QueueFlow], problem: str | None) -> int:
        """Add the rows of one tick; returns how many. `problem` explains a tick without flows."""
        added = 0
        for queue in self.queues:
            flow = flows.get(queue)
            if flow is None or flow.arrivals is None:
                continue
            self.sources.setdefault(flow.pool, set()).add(flow.source)
            carry = self._carry.get(queue, 0.0) + flow.arrivals
            whole = max(0, round(carry))
            self._carry[queue] = carry - whole
            mean = flow.run_time_mean_s
            if mean is not None:
                self._service_s[queue] = mean
            start = max(0.0, at_s - flow.interval_s - self.started_at_s)
            self.rows.append(
                TraceRow(
                    time_s=round(start, 3),
                    queue=queue,
                    arrivals=whole,
                    service_s=round(self._service_s[queue], 6),
                )
            )
            added += 1
        if not added and problem:
            self.gaps.append(f"t={at_s - self.started_at_s:.1f}s: {problem}")
        return added

    def render(self, header: Sequence[str]) -> str:
        lines = [f"# {line}" if line else "#" for line in header]
        if self.gaps:
            lines.append(f"# gaps ({len(self.gaps)}; the bucket after a gap spans it):")
            lines.extend(f"#   {gap}" for gap in self.gaps[:20])
        lines.append(",".join(COLUMNS))
        rows = sorted(self.rows, key=lambda r: r.time_s)  # stable: policy order within a bucket
        lines.extend(f"{r.time_s:g},{r.queue},{r.arrivals},{r.service_s:g}" for r in rows)
        return "\n".join(lines) + "\n"

    def write(self, path: Path, header: Sequence[str]) -> None:
        """Write atomically; gzip when the name ends in `.gz`."""
        text = self.render(header)
        if path.suffix == ".gz":
            write_atomic_bytes(path, gzip.compress(text.encode("utf-8"), mtime=0))
        else:
            write_atomic(path, text)
