"""A pool's work over one tick: from its slots' log lines, or estimated from Redis alone.

Pure functions over numbers; the Observer keeps the state between ticks and calls these.

- Logs: completions, failures and run times are counted from the lines; busy workers are
  the slots whose log shows a job in hand.
- Redis only (logs unreadable): busy workers are the reserved jobs; completions are
  estimated by Little's law, busy x interval / run time, using the pool's last run time
  measured from logs, else the policy's `expected_run_time_s`. Run times stay None: Redis
  does not measure them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from autoscaler.laravel.queue_sample import QueueSample
from autoscaler.observe.estimators import run_time_stats
from autoscaler.observe.logtail import QueueWork, SlotWork
from autoscaler.observe.observation import WorkSample


def work_from_logs(slots: Iterable[SlotWork], *, busy_workers: float | None) -> WorkSample:
    """Sum the slots' counts; mean and p95 over every run time they stated."""
    completions = failures = 0
    run_times: list[float] = []
    for slot in slots:
        completions += slot.completions
        failures += slot.failures
        run_times.extend(slot.run_times_s)
    mean, p95 = run_time_stats(np.asarray(run_times, dtype=np.float64))
    return WorkSample(
        completions=completions,
        failures=failures,
        run_time_mean_s=mean,
        run_time_p95_s=p95,
        busy_workers=busy_workers,
        source="logs",
    )


def little_completions(*, busy_workers: float, interval_s: float, run_time_s: float) -> float:
    """Jobs finished in an interval by Little's law: busy workers each finish one per run time."""
    if run_time_s <= 0 or interval_s <= 0:
        return 0.0
    return max(0.0, busy_workers) * interval_s / run_time_s


def queued(sample: QueueSample) -> int:
    """Jobs not yet finished that a worker could hold or take: pending, reserved, due delayed."""
    return sample.pending + sample.reserved + sample.delayed_due


def split_by_weight(
    total: float, weights: Mapping[str, float], order: Sequence[str]
) -> dict[str, float]:
    """Share `total` out in proportion to `weights`; all to the first of `order` when all are 0."""
    positive = {q: max(0.0, weights.get(q, 0.0)) for q in order}
    whole = sum(positive.values())
    if whole <= 0:
        return {q: (total if i == 0 else 0.0) for i, q in enumerate(order)}
    return {q: total * w / whole for q, w in positive.items()}


@dataclass(slots=True, kw_only=True)
class QueueTally:
    """One queue's share of a pool's work in one tick (shares can be fractional)."""

    completions: float = 0.0
    failures: float = 0.0
    run_times_s: list[float] = field(default_factory=list)


def attribute_to_queues(
    slots: Iterable[SlotWork],
    *,
    queues: Sequence[str],
    weights: Mapping[str, float],
) -> dict[str, QueueTally]:
    """Per-queue work: what the lines labelled, plus a share of the unlabelled by `weights`.

    Plain `queue:work` output does not name the queue, so in a pool consuming `high,default`
    the unlabelled completions are shared in proportion to each queue's reserved jobs (its
    busy workers: with similar run times, throughput follows them), else all go to its first
    queue. Unlabelled run times stand for every queue that got a share.
    """
    tallies = {q: QueueTally() for q in queues}
    unlabelled = QueueTally()
    for slot in slots:
        for queue, work in slot.by_queue.items():
            if queue in tallies:
                _add(tallies[queue], work, share=1.0)
        _add(unlabelled, slot.unlabeled, share=1.0)
    if unlabelled.completions:
        for queue, share in split_by_weight(1.0, weights, queues).items():
            if share > 0:
                _add(tallies[queue], unlabelled, share=share)
    return tallies


def _add(into: QueueTally, work: QueueWork | QueueTally, *, share: float) -> None:
    into.completions += share * work.completions
    into.failures += share * work.failures
    into.run_times_s.extend(work.run_times_s)
