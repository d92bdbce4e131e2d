"""Fleet members on a real redis-server, ticked by hand with built observations: the lease,
the epoch fence, holding without an assignment, and the fleet-wide decision's split.

The daemons themselves (three supervisords, three `autoscaler run`) are in
test_fleet_e2e.py; here every step is deterministic because the test says when each host ticks.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import pytest
import redis

from autoscaler.decide.plan import ControllerState, MemoryBudget
from autoscaler.fleet.assignment import Assignment, AssignmentReader, Fence, publish
from autoscaler.fleet.keys import FleetKeys
from autoscaler.fleet.lease import Lease, LeaseView
from autoscaler.fleet.member import FleetMember
from autoscaler.fleet.status import fleet_status
from autoscaler.laravel.queue_sample import QueueSample
from autoscaler.observe.observation import Observation, PoolObservation, WorkSample
from autoscaler.policy.model import Policy
from autoscaler.supervisord.slots import WorkerCounts
from autoscaler.testing.stack import RedisServer
from tests.decide_helpers import make_policy

KEYS = FleetKeys("shop")


def keep(lease: Lease, floor: int = 0) -> LeaseView:
    pipe = lease.client.pipeline(transaction=False)
    lease.queue_keep(pipe, epoch_floor=floor)
    return LeaseView.of(pipe.execute()[0])


def expire(client: redis.Redis, key: str) -> None:
    client.pexpire(key, 1)
    deadline = time.monotonic() + 10
    while client.exists(key) and time.monotonic() < deadline:
        time.sleep(0.01)


def test_lease_take_renew_observe_and_expire(redis_client: redis.Redis) -> None:
    a = Lease(client=redis_client, keys=KEYS, host="a", ttl_ms=60_000)
    b = Lease(client=redis_client, keys=KEYS, host="b", ttl_ms=60_000)
    assert keep(a) == LeaseView(held=True, acquired=True, epoch=1, leader="a")
    assert keep(b) == LeaseView(held=False, acquired=False, epoch=1, leader="a")
    assert keep(a) == LeaseView(held=True, acquired=False, epoch=1, leader="a")
    assert not b.release(), "only the holder's token releases"
    expire(redis_client, KEYS.lease)
    assert keep(b) == LeaseView(held=True, acquired=True, epoch=2, leader="b")
    assert keep(a) == LeaseView(held=False, acquired=False, epoch=2, leader="b")
    assert b.release() and keep(a).epoch == 3, "each new leader gets a higher epoch"


def test_epoch_survives_a_redis_that_lost_its_data(redis_client: redis.Redis) -> None:
    a = Lease(client=redis_client, keys=KEYS, host="a", ttl_ms=60_000)
    redis_client.hset(KEYS.hosts, "c", '{"epoch_seen": 9}')
    assert keep(a, floor=4).epoch == 10, "above what a heartbeat saw"
    redis_client.flushall()
    assert keep(a, floor=10).epoch == 11, "above what this host saw"


def assignment(epoch: int, leader: str, count: int) -> Assignment:
    return Assignment(epoch=epoch, leader=leader, at_s=time.time(), hosts={"h": {"p": count}})


def test_reader_keeps_the_newest_admitted_entry(redis_client: redis.Redis) -> None:
    fence = Fence()
    reader = AssignmentReader(client=redis_client, keys=KEYS, fence=fence)

    def read() -> list[Assignment]:
        pipe = redis_client.pipeline(transaction=False)
        reader.queue_read(pipe)
        return reader.take(pipe.execute()[0])

    publish(redis_client, KEYS, assignment(1, "a", 3))
    publish(redis_client, KEYS, assignment(1, "a", 4))
    assert [a.hosts["h"]["p"] for a in read()] == [4], "the first read takes the newest only"
    publish(redis_client, KEYS, assignment(2, "b", 5))
    publish(redis_client, KEYS, assignment(1, "a", 9))  # the old leader, after its successor
    assert [a.epoch for a in read()] == [2]
    assert reader.current is not None and reader.current.hosts == {"h": {"p": 5}}
    assert [a.leader for a in fence.ignored] == ["a"] and fence.epoch_seen == 2
    assert read() == [], "nothing new"


# -- members ticked by hand -------------------------------------------------------------------

POLICIES: dict[str, Policy] = {
    "burst": make_policy(
        "burst", min_processes=2, static_processes=2, max_processes=12, memory_per_worker_mb=100
    ),
}


def observation(pending: int, workers: int | None) -> Observation:
    queue = QueueSample(queue="burst", pending=pending, reserved=0, delayed=0, delayed_due=0,
                        oldest_wait_s=60.0 if pending else None,
                        oldest_wait_source="createdAt" if pending else "empty")  # fmt: skip
    work = WorkSample(completions=0, failures=0, run_time_mean_s=None, run_time_p95_s=None,
                      busy_workers=0.0, source="logs", arrivals=0.0)  # fmt: skip
    return Observation(
        at_s=time.time(),
        interval_s=1.0,
        pools={
            "burst": PoolObservation(
                pool="burst",
                queues=(queue,),
                work=work,
                workers=None
                if workers is None
                else WorkerCounts(running=workers, starting=0, draining=0),
            )
        },
        memory_available_mb=100_000.0,
    )


class Host:
    def __init__(
        self, client: redis.Redis, name: str, budget_mb: float = 1000.0, *, may_lead: bool = True
    ) -> None:
        self.member = FleetMember(
            client=client, fleet="shop", host=name, interval_s=1.0, may_lead=may_lead
        )
        self.budget = MemoryBudget(budget_mb=budget_mb)
        self.state = ControllerState()
        self.runs = 0  # what this host's supervisord would run after applying its plan
        self.supervisor_down = False

    def tick(self, pending: int = 0, policies: Mapping[str, Policy] = POLICIES) -> int:
        seen = None if self.supervisor_down else self.runs
        plan, self.state = self.member.plan(
            observation(pending, seen), policies, self.state, budget=self.budget
        )
        if not self.supervisor_down:  # the controller applies nothing then
            self.runs = plan.counts()["burst"]
        return self.runs


@pytest.fixture
def hosts(redis_client: redis.Redis) -> list[Host]:
    return [Host(redis_client, "h1"), Host(redis_client, "h2"), Host(redis_client, "h3", 250.0)]


def round_of(hosts: list[Host], pending: int = 0) -> list[int]:
    return [h.tick(pending) for h in hosts]


def test_at_rest_the_fleet_runs_the_minimum_spread(hosts: list[Host]) -> None:
    for _ in range(3):
        counts = round_of(hosts)
    assert sum(counts) == 2 and max(counts) == 1, counts
    status = fleet_status(hosts[0].member.client, "shop", now_s=time.time())
    assert status["leader"] == "h1" and status["epoch"] == 1
    assert [h["host"] for h in status["hosts"]] == ["h1", "h2", "h3"]
    assert all(h["alive"] for h in status["hosts"])


def test_a_burst_is_spread_and_the_small_host_gets_fewer(hosts: list[Host]) -> None:
    round_of(hosts)
    for _ in range(3):
        counts = round_of(hosts, pending=500)
    assert sum(counts) == 12 and counts[2] == 2, counts  # h3's 250 MB hold two of 100 MB


def test_without_a_fresh_assignment_a_host_holds(own_redis: RedisServer) -> None:
    client = own_redis.client()
    # Another host holds the lease and never publishes (it hangs): nobody assigns anything.
    client.set(KEYS.lease, '{"host": "hung", "token": "x", "epoch": 7}', px=60_000)
    host = Host(client, "h1")
    host.runs = 5  # slots it adopted
    assert host.tick(pending=500) == 5, "no assignment: hold, whatever the queue says"
    assert host.tick(pending=0) == 5, "... and never scale down on missing data"
    assert host.member.leader == "hung" and host.member.fence.epoch_seen == 7
    own_redis.stop()
    assert host.tick(pending=0) == 5, "Redis down: hold"
    assert host.member.leading_epoch is None


def test_a_stale_leader_is_fenced(redis_client: redis.Redis) -> None:
    """h1 leads, then is paused past its lease and its heartbeat (it does not tick); h2 takes
    over and gives h1's share to h2 and h3; h1 resumes and publishes on the strength of its old
    lease, with h1 in it: the hosts ignore it. Without the fence h3 would apply it."""
    hosts = [Host(redis_client, name, budget_mb=2000.0) for name in ("h1", "h2", "h3")]
    h1, h2, h3 = hosts
    for _ in range(3):
        round_of(hosts, pending=500)
    assert h1.member.leading_epoch == 1 and [h.runs for h in hosts] == [4, 4, 4]
    expire(redis_client, KEYS.lease)  # h1 is paused past its lease ...
    expire(redis_client, KEYS.alive("h1"))  # ... and its heartbeat
    for _ in range(3):
        h2.tick(pending=500)  # takes over (epoch 2) and splits the 12 over h2 and h3
        h3.tick(pending=500)
    assert h2.member.leading_epoch == 2 and [h2.runs, h3.runs] == [6, 6]
    h1.tick(pending=500)  # resumed: publishes epoch 1 (4 each), then finds it lost the lease
    assert h1.member.leading_epoch is None and h1.member.leader == "h2"
    assert h3.tick(pending=500) == 6, "h3 applied the stale leader's assignment"
    current = h3.member.reader.current
    assert current is not None and (current.epoch, current.leader) == (2, "h2")
    h1.tick(pending=500)  # h1 follows h2 now, and gets a share again
    h2.tick(pending=500)
    assert h1.tick(pending=500) > 0 and h1.member.reader.current.epoch == 2  # type: ignore[union-attr]


def test_a_dry_run_host_never_leads(redis_client: redis.Redis) -> None:
    """A dry run changes nothing: leading would drive the other hosts."""
    dry = Host(redis_client, "dry", may_lead=False)
    dry.runs = 2
    for _ in range(3):
        assert dry.tick(pending=500) == 2
    assert redis_client.get(KEYS.lease) is None and dry.member.leader is None
    live = Host(redis_client, "live")
    live.tick(pending=500)
    dry.tick(pending=500)
    assert live.member.leading_epoch == 1 and dry.member.leader == "live"


def test_a_host_that_cannot_read_its_supervisord_holds_and_the_rest_scale(
    redis_client: redis.Redis,
) -> None:
    hosts = [Host(redis_client, name, budget_mb=2000.0) for name in ("h1", "h2", "h3")]
    for _ in range(3):
        round_of(hosts)
    h2 = hosts[1]
    held = h2.runs
    h2.supervisor_down = True
    for _ in range(4):
        counts = round_of(hosts, pending=500)
    assert counts[1] == held, "the host without its supervisord holds"
    assert counts[0] + counts[2] == 12, "the others serve the burst (none of h2's counted)"
