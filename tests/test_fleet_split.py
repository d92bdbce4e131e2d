"""The split of each pool's fleet-wide count over hosts (autoscaler/fleet/split.py): a table of
scenarios, then properties that must hold for any input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoscaler.fleet.split import HostRoom, PoolNeed, split


def room(host: str, limit_mb: float = 1000.0, **current: int) -> HostRoom:
    return HostRoom(host=host, limit_mb=limit_mb, current=current)


def need(pool: str, count: int, memory_mb: float = 100.0, priority: int = 100) -> PoolNeed:
    return PoolNeed(pool=pool, count=count, memory_mb=memory_mb, priority=priority)


CASES = [
    pytest.param(
        [need("a", 2)], [room("h1"), room("h2"), room("h3")],
        {"h1": {"a": 1}, "h2": {"a": 1}, "h3": {"a": 0}}, {}, 0,
        id="at rest: the minimum spread over two hosts, one each",
    ),
    pytest.param(
        [need("a", 9)], [room("h1", a=1), room("h2", a=1), room("h3")],
        {"h1": {"a": 3}, "h2": {"a": 3}, "h3": {"a": 3}}, {}, 0,
        id="a burst grows the pool on every host",
    ),
    pytest.param(
        [need("a", 2)], [room("h1", a=3), room("h2", a=3), room("h3", a=3)],
        {"h1": {"a": 1}, "h2": {"a": 1}, "h3": {"a": 0}}, {}, 0,
        id="a drain shrinks the hosts that run the most (ties: the last by name)",
    ),
    pytest.param(
        [need("a", 6)], [room("h1", a=3), room("h2", a=3)],
        {"h1": {"a": 3}, "h2": {"a": 3}}, {}, 0,
        id="a lost host's share (h3 gone) already fits: nothing moves",
    ),
    pytest.param(
        [need("a", 9)], [room("h1", a=3), room("h2", a=3)],
        {"h1": {"a": 5}, "h2": {"a": 4}}, {}, 0,
        id="a lost host's share moves to the others",
    ),
    pytest.param(
        [need("a", 6)], [room("h1", a=3), room("h2", a=3), room("h3")],
        {"h1": {"a": 2}, "h2": {"a": 2}, "h3": {"a": 2}}, {}, 2,
        id="a new host gets a share: two workers move, no more",
    ),
    pytest.param(
        [need("a", 7)], [room("h1", a=3), room("h2", a=2), room("h3", a=2)],
        {"h1": {"a": 3}, "h2": {"a": 2}, "h3": {"a": 2}}, {}, 0,
        id="within one worker across hosts: nothing moves",
    ),
    pytest.param(
        [need("a", 6)], [room("big", 1000.0), room("small", 200.0)],
        {"big": {"a": 4}, "small": {"a": 2}}, {}, 0,
        id="a host with a small budget gets fewer workers",
    ),
    pytest.param(
        [need("a", 4, memory_mb=300.0)], [room("big", 1000.0), room("small", 200.0)],
        {"big": {"a": 3}, "small": {"a": 0}}, {"a": 1}, 0,
        id="a pool above a host's budget goes elsewhere; what fits nowhere is unplaced",
    ),
    pytest.param(
        [need("low", 3, priority=200), need("high", 3, priority=1)], [room("h1", 400.0)],
        {"h1": {"low": 1, "high": 3}}, {"low": 2}, 0,
        id="under memory pressure the important pool is placed first",
    ),
    pytest.param(
        [need("a", 3)], [room("h1", 250.0, a=3), room("h2", 1000.0)],
        {"h1": {"a": 2}, "h2": {"a": 1}}, {}, 0,
        id="a host over its (lowered) budget gives workers to the others",
    ),
    pytest.param(
        [need("a", 2)], [HostRoom(host="h1", limit_mb=300.0, draining_mb=200.0), room("h2")],
        {"h1": {"a": 1}, "h2": {"a": 1}}, {}, 0,
        id="draining workers still hold memory",
    ),
    pytest.param(
        [need("a", 2), need("b", 1, priority=200)],
        [HostRoom(host="h1", limit_mb=300.0, draining_mb=100.0, current={"a": 2, "b": 1})],
        {"h1": {"a": 2, "b": 1}}, {}, 0,
        id="draining workers never cut what a host runs (issue 19: the count flapped)",
    ),
    pytest.param(
        [need("a", 3)],
        [HostRoom(host="h1", limit_mb=300.0, draining_mb=100.0, current={"a": 2})],
        {"h1": {"a": 2}}, {"a": 1}, 0,
        id="draining workers hold back what a host would be given",
    ),
    pytest.param(
        [need("a", 0)], [room("h1", a=1), room("h2")],
        {"h1": {"a": 0}, "h2": {"a": 0}}, {}, 0,
        id="zero is zero everywhere",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("needs", "hosts", "expected", "unplaced", "moved"), CASES)
def test_split_table(
    needs: list[PoolNeed],
    hosts: list[HostRoom],
    expected: dict[str, dict[str, int]],
    unplaced: dict[str, int],
    moved: int,
) -> None:
    result = split(needs, hosts)
    assert result.hosts == expected
    assert result.unplaced == unplaced
    assert result.moved == moved


def test_split_is_stable_when_fed_its_own_output() -> None:
    """The leader feeds the last split back as `current`: a converged fleet moves nothing."""
    needs = [need("a", 7), need("b", 2, memory_mb=50.0), need("c", 5, memory_mb=250.0)]
    hosts = [room("h1", 900.0), room("h2", 1200.0), room("h3", 500.0)]
    first = split(needs, hosts)
    again = split(needs, [room(h.host, h.limit_mb, **first.hosts[h.host]) for h in hosts])
    assert again.hosts == first.hosts
    assert again.moved == 0


HOSTS = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=2000), st.lists(st.integers(0, 6), min_size=3, max_size=3)
    ),
    min_size=1,
    max_size=5,
)


@given(
    counts=st.lists(st.integers(0, 12), min_size=3, max_size=3),
    memories=st.lists(st.sampled_from([50.0, 100.0, 300.0]), min_size=3, max_size=3),
    hosts=HOSTS,
)
def test_split_properties(
    counts: list[int], memories: list[float], hosts: list[tuple[float, list[int]]]
) -> None:
    pools = ["a", "b", "c"]
    needs = [
        need(p, n, m, priority=i)
        for i, (p, n, m) in enumerate(zip(pools, counts, memories, strict=True))
    ]
    rooms = [
        room(f"h{i}", limit, **dict(zip(pools, current, strict=True)))
        for i, (limit, current) in enumerate(hosts)
    ]
    result = split(needs, rooms)
    for host in rooms:
        used = sum(result.hosts[host.host][n.pool] * n.memory_mb for n in needs)
        assert used <= host.limit_mb + 1e-6, "a host got more than fits its memory"
    for n in needs:
        placed = sum(result.hosts[h.host][n.pool] for h in rooms)
        assert placed + result.unplaced.get(n.pool, 0) == n.count
        if result.unplaced.get(n.pool):
            assert all(
                host.limit_mb - sum(result.hosts[host.host][m.pool] * m.memory_mb for m in needs)
                < n.memory_mb
                for host in rooms
            ), "a worker was left unplaced beside a host with room"


def test_a_spread_that_frees_room_lets_a_big_worker_in() -> None:
    """Found by the property test: spreading `b` off the big host makes room there for the
    second `c`, which the growth step had found no room for."""
    needs = [need("b", 3, 100.0, priority=1), need("c", 2, 300.0, priority=2)]
    result = split(needs, [room("h0", 100.0), room("h1", 800.0, b=3)])
    assert result.hosts == {"h0": {"b": 1, "c": 0}, "h1": {"b": 2, "c": 2}}
    assert result.unplaced == {} and result.moved == 1
