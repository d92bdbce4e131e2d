"""The fleet's observation keeps what decide needs from every host's heartbeat."""

from __future__ import annotations

from autoscaler.fleet.combine import fleet_observation
from autoscaler.fleet.heartbeat import Heartbeat, PoolReport
from autoscaler.observe.observation import Observation, PoolObservation
from autoscaler.supervisord.slots import WorkerCounts
from tests.decide_helpers import pool_obs


def _host(name: str, counts: WorkerCounts) -> Heartbeat:
    return Heartbeat(
        host=name,
        at_s=100.0,
        interval_s=5.0,
        memory_budget_mb=1000.0,
        memory_reserve_mb=0.0,
        memory_available_mb=None,
        epoch_seen=1,
        pools={"q": PoolReport(workers=counts, work=None)},
    )


def test_crashing_slots_survive_the_heartbeat_and_add_up_over_hosts() -> None:
    a = WorkerCounts(running=2, starting=0, draining=0, failed=1, crashing=2)
    b = WorkerCounts(running=1, starting=1, draining=1, failed=0, crashing=1)
    hosts = [Heartbeat.from_json(_host(n, c).to_json()) for n, c in (("a", a), ("b", b))]
    assert hosts[0].pools["q"].workers == a  # every field, crashing included, round-trips
    own = Observation(at_s=100.0, interval_s=5.0, pools={"q": pool_obs("q")})
    fleet = fleet_observation(own, hosts)
    pool: PoolObservation = fleet.pools["q"]
    assert pool.workers == WorkerCounts(running=3, starting=1, draining=1, failed=1, crashing=3)
