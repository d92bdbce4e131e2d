"""A pool's work over one tick (completions, failures, run times, busy workers), from its slot
logs when they are usable, else estimated from Redis's in-flight counts by Little's law."""

from __future__ import annotations

from collections.abc import Mapping

from autoscaler.laravel.queue_sample import QueueSample
from autoscaler.observe.observation import WorkSample
from autoscaler.observe.slot_logs import PoolLogs
from autoscaler.observe.throughput import (
    QueueTally,
    attribute_to_queues,
    little_completions,
    work_from_logs,
)
from autoscaler.policy.model import Policy


class WorkEstimator:
    """Keeps, per pool, the last run time the logs gave and the fraction of a completion
    Little's law left over, for the ticks after."""

    def __init__(self) -> None:
        self._run_mean_s: dict[str, float] = {}
        self._carry: dict[str, float] = {}

    def work(
        self,
        pool: str,
        policy: Policy,
        queues: tuple[QueueSample, ...] | None,
        logs: PoolLogs,
        *,
        interval_s: float,
        reserved_before: Mapping[str, int],
    ) -> tuple[WorkSample | None, dict[str, QueueTally] | None]:
        """The pool's work and each queue's share of it. `reserved_before`: each queue's jobs
        in flight at the last tick."""
        reserved_now = {q.queue: q.reserved for q in queues} if queues is not None else {}
        if logs.usable:
            considered = (
                [logs.works[p] for p in logs.live]
                if logs.supervisor_known
                else [w for w in logs.works.values() if w.exists]
            )
            busy = float(sum(1 for w in considered if w.in_flight))
            work = work_from_logs(logs.works.values(), busy_workers=busy)
            if work.run_time_mean_s is not None:
                self._run_mean_s[pool] = work.run_time_mean_s
            weights = {q: float(reserved_before.get(q, r) + r) for q, r in reserved_now.items()}
            tallies = attribute_to_queues(
                logs.works.values(), queues=policy.queues, weights=weights
            )
            return work, tallies
        if queues is None:
            return None, None
        run_time_s = self._run_mean_s.get(pool, policy.expected_run_time_s)
        tallies = {}
        for q in queues:
            busy_q = (reserved_before.get(q.queue, q.reserved) + q.reserved) / 2.0
            estimate = little_completions(
                busy_workers=busy_q, interval_s=interval_s, run_time_s=run_time_s
            )
            tallies[q.queue] = QueueTally(completions=estimate)
        carry = self._carry.get(pool, 0.0) + sum(t.completions for t in tallies.values())
        completions = int(carry)
        self._carry[pool] = carry - completions
        work = WorkSample(
            completions=completions,
            failures=0,
            run_time_mean_s=None,
            run_time_p95_s=None,
            busy_workers=float(sum(q.reserved for q in queues)),
            source="redis",
        )
        return work, tallies
