"""The memory budget: mins first, then priority and distance from the SLO; draining counts."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.decide.budget import allocate


@dataclass
class Const:
    min_processes: int
    memory_mb: float
    priority: int
    slo_wait_s: float = 30.0  # short: never deferred (DEFER_SLACK_S)


@dataclass
class Want:
    pool: str
    const: Const
    wanted: int
    current: int = 0
    draining: int = 0
    idle: int = 0  # of `current`
    urgency: float = 0.0
    fixed: bool = False
    workers_known: bool = True
    keep_up: int = 0  # 0: all of `wanted` keeps up
    granted: int = 0
    cap: str = ""

    @property
    def memory_mb(self) -> float:
        return self.const.memory_mb


def want(
    pool: str,
    wanted: int,
    *,
    low: int = 1,
    mb: float = 100,
    priority: int = 100,
    slo_wait_s: float = 30.0,
    **kw: object,
) -> Want:
    const = Const(low, mb, priority, slo_wait_s)
    return Want(pool=pool, const=const, wanted=wanted, **kw)  # type: ignore[arg-type]


def test_everything_fits() -> None:
    claims = [want("a", 3, current=3), want("b", 2, current=2)]
    planned, peak = allocate(claims, 1000)
    assert [c.granted for c in claims] == [3, 2]
    assert planned == peak == 500
    assert all(c.cap == "" for c in claims)


def test_a_batch_pool_with_slack_waits_for_a_pool_about_to_be_late() -> None:
    """Earliest deadline first: a long-SLO pool whose oldest job has more than DEFER_SLACK_S
    left takes no keep-up share; a short-SLO pool near its SLO catches up first, even at a
    lower priority. Once the batch pool's slack is used up, its keep-up comes first again."""

    def claims(batch_urgency: float) -> list[Want]:
        return [
            want("crawl", 4, priority=200, slo_wait_s=300, keep_up=4, urgency=batch_urgency),
            want("gift", 6, priority=300, slo_wait_s=15, keep_up=3, urgency=0.9, current=3),
        ]

    early = claims(0.5)  # 150 s left
    allocate(early, 700)
    assert [c.granted for c in early] == [1, 6]  # crawl keeps its min; gift gets all it wants
    late = claims(0.9)  # 30 s left: no longer deferred
    allocate(late, 700)
    assert [c.granted for c in late] == [4, 3]


def test_keeping_up_by_priority_before_catching_up_by_lateness() -> None:
    claims = [
        # a burst on the top pool: 2 keep up with its arrivals, 8 more would drain it
        want("gift", 10, priority=100, keep_up=2, urgency=0.5, current=2),
        # a busy low-priority pool past its SLO: 4 keep up, 2 more catch up
        want("chat", 6, priority=300, keep_up=4, urgency=3.0, current=4),
        want("mail", 3, priority=400, keep_up=3, urgency=0.0, current=1),
    ]
    allocate(claims, 1200)  # 12 workers: mins 3, keep-up +1 +3 +2, catch-up: chat, gift
    granted = {c.pool: c.granted for c in claims}
    assert granted == {"gift": 3, "chat": 6, "mail": 3}
    assert claims[0].cap == "budget"


def test_priority_then_distance_from_the_slo() -> None:
    claims = [
        want("low", 5, priority=300, current=5),
        want("high", 5, priority=100, current=5),
        want("mid_calm", 5, priority=200, urgency=0.1, current=5),
        want("mid_late", 5, priority=200, urgency=2.0, current=5),
    ]
    allocate(claims, 1200)  # 12 workers: mins take 4, then 8 more
    granted = {c.pool: c.granted for c in claims}
    assert granted == {"high": 5, "mid_late": 5, "mid_calm": 1, "low": 1}
    assert {c.pool for c in claims if c.cap == "budget"} == {"mid_calm", "low"}


def test_every_pool_keeps_its_min_even_over_the_budget() -> None:
    claims = [want("a", 5, low=3, current=3), want("b", 5, low=3, current=3)]
    planned, _ = allocate(claims, 400)
    assert [c.granted for c in claims] == [3, 3]
    assert planned == 600


def test_draining_workers_hold_memory_until_they_exit() -> None:
    claims = [want("a", 6, current=2, draining=3)]
    planned, _ = allocate(claims, 600)
    assert claims[0].granted == 3
    assert planned == 600


def test_scale_up_waits_for_the_memory_a_scale_down_frees() -> None:
    # b wants 4 of a's 5 workers' memory, but a's stopped workers still hold it this tick
    claims = [
        want("a", 1, priority=300, current=5),
        want("b", 5, priority=100, current=1),
    ]
    _, peak = allocate(claims, 600)
    granted = {c.pool: c.granted for c in claims}
    assert granted == {"a": 1, "b": 1}
    assert claims[1].cap == "draining"
    assert peak == 600
    # next tick a's workers are draining: still no room
    claims = [
        want("a", 1, priority=300, current=1, draining=4),
        want("b", 5, priority=100, current=1),
    ]
    allocate(claims, 600)
    assert claims[1].granted == 1
    # once they exited, b gets its five
    claims = [want("a", 1, priority=300, current=1), want("b", 5, priority=100, current=1)]
    allocate(claims, 600)
    assert claims[1].granted == 5


def test_idle_workers_stopped_free_their_memory_at_once() -> None:
    # a stops 4 workers, 3 of them idle (they exit at once): b may take 3 more now
    claims = [
        want("a", 1, priority=300, current=5, idle=3),
        want("b", 5, priority=100, current=1),
    ]
    _, peak = allocate(claims, 600)
    assert {c.pool: c.granted for c in claims} == {"a": 1, "b": 4}
    assert peak == 600
    # once they exited, b gets its five
    claims = [want("a", 1, priority=300, current=1), want("b", 5, priority=100, current=1)]
    allocate(claims, 600)
    assert claims[1].granted == 5


def test_held_pools_keep_their_count() -> None:
    claims = [
        want("held", 4, current=4, fixed=True),
        want("b", 9, priority=1, current=1),
    ]
    allocate(claims, 800)
    assert claims[0].granted == 4
    assert claims[1].granted == 4


def test_larger_workers_do_not_block_smaller_ones() -> None:
    claims = [want("big", 3, mb=500, priority=1), want("small", 3, mb=100, priority=2)]
    allocate(claims, 1000)  # mins: 600; 400 left: big cannot take 500 more, small takes 2
    assert [c.granted for c in claims] == [1, 3]


@pytest.mark.parametrize("limit", [0.0, 50.0])
def test_nothing_fits(limit: float) -> None:
    claims = [want("a", 3, low=0, current=0)]
    allocate(claims, limit)
    assert claims[0].granted == 0


def test_a_pool_whose_cut_workers_still_drain_is_not_cut_again() -> None:
    """Issue 19.8: the budget cap flapped 6 -> 3 -> 2 -> 3 in 3 s while workers drained: the
    tick after a cut, the cut pool's own draining workers made it cut again."""
    # b scaled down, 3 of its workers drain; a was cut 6 -> 3 last tick, 3 of its drain too
    claims = [
        want("a", 6, priority=300, current=3, draining=3),
        want("b", 1, current=1, draining=3),
    ]
    allocate(claims, 900)
    assert claims[0].granted == 3  # not 2: its own draining workers are no reason to cut
    # once they have exited, a grows back as memory allows
    claims = [want("a", 6, priority=300, current=3), want("b", 1, current=1)]
    allocate(claims, 900)
    assert claims[0].granted == 6


def test_another_pools_draining_workers_never_cut_a_running_pool() -> None:
    """Issue 19.8: the budget cap flapped (6 -> 3 -> ... -> 6) while workers drained: another
    pool's draining workers were charged before the running pools, so a healthy pool was cut
    to make room for memory about to be freed, then given it back once they had exited."""
    # b was scaled down 5 -> 1; 4 of its workers still finish their jobs. a runs its 6.
    claims = [want("a", 6, priority=300, current=6), want("b", 1, current=1, draining=4)]
    allocate(claims, 900)
    assert claims[0].granted == 6  # not cut: the draining memory is about to be freed
    assert claims[0].cap == ""
    # b's workers exit one by one: a's count never moves
    for draining in (2, 0):
        claims = [
            want("a", 6, priority=300, current=6),
            want("b", 1, current=1, draining=draining),
        ]
        allocate(claims, 900)
        assert claims[0].granted == 6


def test_draining_memory_only_delays_additions() -> None:
    # a wants 2 more; b's draining workers hold their memory: a waits, keeping its 6
    claims = [want("a", 8, priority=300, current=6), want("b", 1, current=1, draining=4)]
    _, peak = allocate(claims, 900)
    assert claims[0].granted == 6 and claims[0].cap == "draining"
    assert peak == 1100  # over the limit only by the workers already running
    claims = [want("a", 8, priority=300, current=6), want("b", 1, current=1)]
    allocate(claims, 900)
    assert claims[0].granted == 8


claim_strategy = st.builds(
    want,
    st.sampled_from("abcdef"),
    st.integers(0, 12),
    low=st.integers(0, 3),
    mb=st.sampled_from([50.0, 100.0, 250.0]),
    priority=st.integers(1, 3),
    slo_wait_s=st.sampled_from([10.0, 60.0, 300.0]),
    current=st.integers(0, 12),
    draining=st.integers(0, 6),
    urgency=st.floats(0, 5),
    fixed=st.booleans(),
    workers_known=st.booleans(),
    keep_up=st.integers(0, 12),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(claim_strategy, min_size=1, max_size=5, unique_by=lambda c: c.pool),
       st.floats(0, 3000))  # fmt: skip
def test_draining_workers_never_lower_a_count(claims: list[Want], limit: float) -> None:
    """A pool is never cut to make room for memory that draining workers are about to free:
    with the same wants, draining workers (its own or another pool's) may hold back only what
    a pool would add, never what it runs."""
    for claim in claims:
        claim.wanted = max(claim.wanted, claim.const.min_processes)
        claim.idle = min(claim.idle, claim.current)
    drained = [dataclasses.replace(c, draining=0) for c in claims]
    allocate(claims, limit)
    allocate(drained, limit)
    for claim, calm in zip(claims, drained, strict=True):
        if claim.workers_known:
            assert claim.granted >= min(calm.granted, claim.current), claim.pool
        assert claim.granted <= calm.granted or claim.fixed, claim.pool
