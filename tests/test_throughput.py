"""A pool's work from slot counts, and the Redis-only estimate: hand-computed cases."""

from __future__ import annotations

import pytest

from autoscaler.laravel.queue_sample import QueueSample
from autoscaler.observe.logtail import QueueWork, SlotWork
from autoscaler.observe.throughput import (
    attribute_to_queues,
    little_completions,
    queued,
    split_by_weight,
    work_from_logs,
)


def slot(completions: int, failures: int, run_times: list[float], *, busy: bool) -> SlotWork:
    return SlotWork(
        completions=completions,
        failures=failures,
        run_times_s=run_times,
        unlabeled=QueueWork(completions=completions, failures=failures, run_times_s=run_times),
        in_flight=busy,
    )


def test_work_from_logs_sums_slots() -> None:
    work = work_from_logs(
        [slot(2, 0, [1.0, 3.0], busy=True), slot(2, 1, [2.0, 10.0], busy=False)],
        busy_workers=1.0,
    )
    assert (work.completions, work.failures, work.busy_workers, work.source) == (4, 1, 1.0, "logs")
    assert work.run_time_mean_s == 4.0
    assert work.run_time_p95_s == pytest.approx(8.95)  # numpy's linear interpolation
    empty = work_from_logs([], busy_workers=0.0)
    assert (empty.completions, empty.run_time_mean_s, empty.run_time_p95_s) == (0, None, None)


def test_little_completions() -> None:
    assert little_completions(busy_workers=3, interval_s=10, run_time_s=2) == 15.0
    assert little_completions(busy_workers=1.5, interval_s=5, run_time_s=10) == 0.75
    assert little_completions(busy_workers=3, interval_s=0, run_time_s=2) == 0.0
    assert little_completions(busy_workers=-1, interval_s=5, run_time_s=1) == 0.0


def test_queued_counts_due_delayed_only() -> None:
    sample = QueueSample(
        queue="q",
        pending=4,
        reserved=2,
        delayed=10,
        delayed_due=3,
        oldest_wait_s=None,
        oldest_wait_source="empty",
    )
    assert queued(sample) == 9


def test_split_by_weight() -> None:
    assert split_by_weight(10, {"high": 3, "default": 1}, ["high", "default"]) == {
        "high": 7.5,
        "default": 2.5,
    }
    assert split_by_weight(4, {}, ["high", "default"]) == {"high": 4, "default": 0.0}


def test_attribution_keeps_labels_and_shares_the_rest() -> None:
    labelled = SlotWork(
        completions=3,
        failures=1,
        run_times_s=[1.0, 1.0, 1.0],
        by_queue={"default": QueueWork(completions=3, failures=1, run_times_s=[1.0, 1.0, 1.0])},
    )
    plain = slot(4, 0, [2.0, 2.0, 2.0, 2.0], busy=False)
    tallies = attribute_to_queues(
        [labelled, plain], queues=["high", "default"], weights={"high": 3.0, "default": 1.0}
    )
    assert tallies["high"].completions == 3.0  # 3/4 of the 4 unlabelled
    assert tallies["default"].completions == 4.0  # its 3 labelled + 1/4 of 4
    assert tallies["default"].failures == 1.0
    assert tallies["high"].run_times_s == [2.0] * 4
    assert tallies["default"].run_times_s == [1.0] * 3 + [2.0] * 4
    total = sum(t.completions for t in tallies.values())
    assert total == labelled.completions + plain.completions
