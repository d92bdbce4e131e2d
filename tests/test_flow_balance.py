"""Flow balance between ticks (observe/flow_balance.py): arrivals = completions + growth of
the queue, with the observer reading the workers' logs before Redis."""

from __future__ import annotations

from autoscaler.laravel.queue_sample import QueueSample
from autoscaler.observe.flow_balance import FlowBalance, QueueFlow
from autoscaler.observe.throughput import QueueTally
from tests.act_helpers import make_policy

POLICY = make_policy(queues=["emails"])


def tick(balance: FlowBalance, at_s: float, queued: int, completions: float) -> float | None:
    sample = QueueSample(
        queue="emails",
        pending=queued,
        reserved=0,
        delayed=0,
        delayed_due=0,
        oldest_wait_s=None,
        oldest_wait_source="empty",
    )
    flows: dict[str, QueueFlow] = {}
    return balance.balance(
        "emails",
        POLICY,
        queues=(sample,),
        tallies={"emails": QueueTally(completions=completions)},
        work=None,
        now_s=at_s,
        flows=flows,
    )


def test_a_job_ending_between_the_log_read_and_the_redis_read_is_counted_once() -> None:
    """Six jobs arrive; one ends after the logs were read but before Redis was: that tick it
    is in neither (the queue dropped, no completion yet), the next its completion shows."""
    balance = FlowBalance()
    assert tick(balance, 0.0, queued=0, completions=0) is None  # the first balance point
    seen = [
        tick(balance, 1.0, queued=6, completions=0),  # six arrived
        tick(balance, 2.0, queued=4, completions=1),  # two left, one completion logged so far
        tick(balance, 3.0, queued=4, completions=1),  # the other one's completion shows now
        tick(balance, 4.0, queued=0, completions=4),
    ]
    assert seen == [6.0, 0.0, 0.0, 0.0]  # clamped and forgotten, the late completion was +1


def test_a_job_deleted_by_hand_is_no_arrival_and_shaves_one_interval_at_most() -> None:
    balance = FlowBalance()
    tick(balance, 0.0, queued=100, completions=0)
    assert tick(balance, 1.0, queued=0, completions=0) == 0.0  # 100 deleted by hand
    assert tick(balance, 2.0, queued=0, completions=3) == 0.0  # owed: taken from these
    assert tick(balance, 3.0, queued=0, completions=3) == 3.0  # and never again
