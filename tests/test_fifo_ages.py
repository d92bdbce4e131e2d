"""FIFO accounting of job ages (autoscaler/laravel/fifo.py), tick by tick on plain numbers.

A list is modelled here exactly: the test knows when every job arrived, so the estimate is
checked against the true age of the oldest waiting job.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import pytest

from autoscaler.daemon.agefile import AGES_FILE, restore_ages, save_ages
from autoscaler.laravel.fifo import FifoAges

TICK_S = 1.0


class TrueList:
    """A Laravel list with known arrival times: RPUSH, LPUSH, LPOP."""

    def __init__(self) -> None:
        self.jobs: deque[tuple[str, float]] = deque()
        self.serial = 0

    def rpush(self, at_s: float, count: int = 1) -> None:
        for _ in range(count):
            self.serial += 1
            self.jobs.append((f"j{self.serial}", at_s))

    def lpush(self, at_s: float) -> None:
        self.serial += 1
        self.jobs.appendleft((f"j{self.serial}", at_s))

    def pop(self, count: int) -> None:
        for _ in range(min(count, len(self.jobs))):
            self.jobs.popleft()

    @property
    def tail(self) -> str | None:
        return self.jobs[-1][0] if self.jobs else None

    def oldest_age(self, now_s: float) -> float | None:
        return now_s - min(at for _, at in self.jobs) if self.jobs else None


def test_a_burst_drained_with_the_same_tail_is_within_half_a_tick() -> None:
    ages, jobs = FifoAges(), TrueList()
    assert ages.update("q", now_s=0.0, length=0, tail=None).source == "empty"
    jobs.rpush(0.4, 600)  # a burst between two ticks
    now = 1.0
    while jobs.jobs:
        result = ages.update("q", now_s=now, length=len(jobs.jobs), tail=jobs.tail)
        assert result.source == "fifo"
        truth = jobs.oldest_age(now)
        assert truth is not None and result.age_s is not None
        assert abs(result.age_s - truth) <= TICK_S / 2  # pops exact: the tail stays
        jobs.pop(70)  # the workers, between ticks; no hint needed: the tail stays
        now += TICK_S
    assert ages.update("q", now_s=now, length=0, tail=None).age_s is None


def test_a_steady_stream_with_pop_counts_is_within_half_a_tick() -> None:
    ages, jobs = FifoAges(), TrueList()
    ages.update("q", now_s=0.0, length=0, tail=None)
    now = 0.0
    for tick in range(1, 60):
        arrivals = 30 if tick < 30 else 5
        for index in range(arrivals):
            jobs.rpush(now + (index + 0.5) / arrivals)
        before = len(jobs.jobs)
        jobs.pop(12)
        now = float(tick)
        hint = before - len(jobs.jobs)
        result = ages.update("q", now_s=now, length=len(jobs.jobs), tail=jobs.tail, pops_hint=hint)
        truth = jobs.oldest_age(now)
        if truth is None:
            assert result.age_s is None
            continue
        assert result.source == "fifo" and result.age_s is not None
        assert abs(result.age_s - truth) <= TICK_S / 2  # pops counted right: half a tick


def test_a_wrong_pop_hint_is_corrected_by_the_length() -> None:
    ages = FifoAges()
    ages.update("q", now_s=0.0, length=0, tail=None)
    ages.update("q", now_s=1.0, length=10, tail="a")
    # the hint says 50 were taken from a list of 10: no more than 10 can go, and 4 remain
    result = ages.update("q", now_s=2.0, length=4, tail="b", pops_hint=50)
    assert sum(c.left for c in ages.cohorts("q")) == 4
    assert result.source == "fifo" and result.age_s is not None and result.age_s <= 2.0


def test_jobs_queued_before_the_first_look_are_a_lower_bound() -> None:
    ages = FifoAges()
    assert ages.update("q", now_s=100.0, length=50, tail="t").source == "first_seen"
    result = ages.update("q", now_s=105.0, length=40, tail="t")
    assert (result.age_s, result.source) == (5.0, "first_seen")
    # once every one of them has gone, the ages are FIFO estimates again
    ages.update("q", now_s=106.0, length=45, tail="u", pops_hint=40)
    result = ages.update("q", now_s=107.0, length=44, tail="u")
    assert result.source == "fifo"


def test_lpushed_jobs_do_not_hide_older_ones() -> None:
    ages, jobs = FifoAges(), TrueList()
    ages.update("q", now_s=0.0, length=0, tail=None)
    jobs.rpush(0.5, 20)
    ages.update("q", now_s=1.0, length=20, tail=jobs.tail)
    jobs.lpush(9.5)  # pushed to the front: taken first, but not the oldest
    result = ages.update("q", now_s=10.0, length=len(jobs.jobs), tail=jobs.tail)
    truth = jobs.oldest_age(10.0)
    assert truth is not None and result.age_s is not None
    assert abs(result.age_s - truth) <= TICK_S
    assert result.arrivals == 1 and result.pops == 0
    jobs.pop(1)  # the LPUSHed job goes first
    result = ages.update("q", now_s=11.0, length=len(jobs.jobs), tail=jobs.tail)
    assert result.age_s == pytest.approx(11.0 - 0.5, abs=TICK_S)


def test_cohorts_are_bounded() -> None:
    ages = FifoAges(max_cohorts=8)
    ages.update("q", now_s=0.0, length=0, tail=None)
    for tick in range(1, 100):
        ages.update("q", now_s=float(tick), length=tick, tail=f"t{tick}", pops_hint=0)
    cohorts = ages.cohorts("q")
    assert len(cohorts) == 8 and sum(c.left for c in cohorts) == 99
    assert cohorts[0].start_s == 0.0  # the oldest arrival is kept through merges


def test_forget_starts_over() -> None:
    ages = FifoAges()
    ages.update("q", now_s=0.0, length=3, tail="a")
    ages.forget("q")
    assert ages.cohorts("q") == []
    assert ages.update("q", now_s=5.0, length=3, tail="a").source == "first_seen"


def test_a_restart_keeps_lists_whose_tail_stayed_and_restarts_the_others(tmp_path: Path) -> None:
    before = FifoAges()
    for queue in ("same", "pushed"):
        before.update(queue, now_s=0.0, length=0, tail=None)
        before.update(queue, now_s=1.0, length=100, tail="t1")  # arrived in (0, 1]
    save_ages(before, tmp_path)
    after = FifoAges()
    restore_ages(after, tmp_path)
    # the daemon was away 9 s: 40 jobs left "same"; "pushed" got new jobs behind its tail
    same = after.update("same", now_s=10.0, length=60, tail="t1")
    assert same.source == "fifo" and same.pops == 40
    assert same.age_s == pytest.approx(10.0 - 0.5)  # the middle of (0, 1]
    pushed = after.update("pushed", now_s=10.0, length=120, tail="t2")
    assert (pushed.age_s, pushed.source) == (0.0, "first_seen")


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '{"version": 1, "queues": {}}',
        '{"version": 2, "queues": {"q": {"length": 5, "tail": "t", "at_s": 1, "cohorts": []}}}',
        '{"version": 2, "queues": {"q": {"length": "x"}}}',
        '{"version": 2, "queues": []}',
        '{"version": 2, "queues": {"q": {"length": 1, "tail": "t", "at_s": 1, '
        '"cohorts": [[0, 1, 1, 1]]}}}',
    ],
)
def test_a_bad_ages_file_only_starts_the_ages_over(tmp_path: Path, text: str) -> None:
    (tmp_path / AGES_FILE).write_text(text)
    ages = FifoAges()
    restore_ages(ages, tmp_path)  # logs a warning, never raises
    assert ages.cohorts("q") == []
    assert ages.update("q", now_s=1.0, length=5, tail="t").source == "first_seen"
