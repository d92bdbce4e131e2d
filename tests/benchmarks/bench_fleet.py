"""The fleet's cost per tick: Redis commands for the leader and for a host, the leader's tick
time, and the bytes each tick moves, for 50 hosts x 20 pools on a real redis-server.

One real FleetMember leads, one real FleetMember follows; the other 48 hosts are simulated as
their heartbeats (written before every tick, as their daemons would). Commands are counted by
Redis itself (INFO's total_commands_processed around the call) and by the member. Prints
medians over the ticks.

    python3 tests/benchmarks/bench_fleet.py [--hosts 50] [--pools 20] [--ticks 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from loguru import logger  # noqa: E402

from autoscaler.decide.plan import ControllerState, MemoryBudget  # noqa: E402
from autoscaler.fleet.heartbeat import heartbeat_of  # noqa: E402
from autoscaler.fleet.keys import FleetKeys  # noqa: E402
from autoscaler.fleet.member import FleetMember  # noqa: E402
from autoscaler.laravel.queue_sample import QueueSample  # noqa: E402
from autoscaler.observe.observation import Observation, PoolObservation, WorkSample  # noqa: E402
from autoscaler.policy.model import Policy  # noqa: E402
from autoscaler.supervisord.slots import WorkerCounts  # noqa: E402
from autoscaler.testing.stack import RedisServer  # noqa: E402

INTERVAL_S = 5.0
BUDGET = MemoryBudget(budget_mb=8192.0)


def policies(count: int) -> dict[str, Policy]:
    return {
        f"pool{i:02d}": Policy.model_validate(
            {
                "queues": [f"pool{i:02d}"],
                "program": f"pool{i:02d}-worker",
                "command": f"php artisan queue:work redis --queue=pool{i:02d}",
                "min_processes": 2,
                "static_processes": 2,
                "max_processes": 200,
                "memory_per_worker_mb": 128,
                "priority": i % 5,
                "slo": {"wait_s": 30.0},
            }
        )
        for i in range(count)
    }


def observation(pools: dict[str, Policy], tick: int, workers: int) -> Observation:
    """A busy fleet whose backlog moves every tick, so decide and the split have work."""
    observed = {}
    for index, pool in enumerate(pools):
        pending = (tick * 7 + index * 13) % 400
        queue = QueueSample(
            queue=pool, pending=pending, reserved=workers, delayed=0, delayed_due=0,
            oldest_wait_s=float(pending % 90), oldest_wait_source="createdAt",
        )  # fmt: skip
        work = WorkSample(
            completions=workers * 3, failures=0, run_time_mean_s=1.5, run_time_p95_s=3.0,
            busy_workers=float(workers), source="logs", arrivals=float(workers * 3 + pending % 5),
        )  # fmt: skip
        observed[pool] = PoolObservation(
            pool=pool, queues=(queue,), work=work,
            workers=WorkerCounts(running=workers, starting=0, draining=0),
        )  # fmt: skip
    return Observation(
        at_s=time.time(), interval_s=INTERVAL_S, pools=observed, memory_available_mb=16000.0
    )


def commands(client: object) -> int:
    return int(client.info("stats")["total_commands_processed"])  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--pools", type=int, default=20)
    parser.add_argument("--ticks", type=int, default=200)
    args = parser.parse_args()
    logger.remove()
    pool_set = policies(args.pools)
    keys = FleetKeys("bench")
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp) / "redis").start()
        client = server.client()
        try:
            leader = FleetMember(client=server.client(), fleet="bench", host="host00",
                                 interval_s=INTERVAL_S)  # fmt: skip
            follower = FleetMember(client=server.client(), fleet="bench", host="host01",
                                   interval_s=INTERVAL_S)  # fmt: skip
            states = {"leader": ControllerState(), "follower": ControllerState()}
            simulated = [f"host{i:02d}" for i in range(2, args.hosts)]
            times: dict[str, list[float]] = {"leader": [], "follower": []}
            ops: dict[str, list[int]] = {"leader": [], "follower": []}
            member_ops: dict[str, list[int]] = {"leader": [], "follower": []}
            for tick in range(args.ticks + 5):
                obs = observation(pool_set, tick, workers=3)
                pipe = client.pipeline(transaction=False)
                for host in simulated:  # the other daemons' heartbeats
                    seen = leader.fence.epoch_seen
                    beat = heartbeat_of(obs, host=host, budget=BUDGET, epoch_seen=seen,
                                        assigned=None)  # fmt: skip
                    pipe.hset(keys.hosts, host, beat.to_json())
                    pipe.set(keys.alive(host), 1, px=leader.ttl_ms)
                pipe.execute()
                for name, member in (("leader", leader), ("follower", follower)):
                    before_cmds, before_ops = commands(client), member.ops
                    started = time.perf_counter()
                    _, states[name] = member.plan(obs, pool_set, states[name], budget=BUDGET)
                    elapsed = time.perf_counter() - started
                    if tick >= 5:  # the first ticks elect the leader
                        times[name].append(elapsed)
                        ops[name].append(commands(client) - before_cmds - 1)  # minus INFO
                        member_ops[name].append(member.ops - before_ops)
            assert leader.leading_epoch is not None and follower.leading_epoch is None
            entry = client.xrevrange(keys.assignments, count=1)[0][1]
            heartbeat_bytes = len(client.hget(keys.hosts, "host00") or b"")
            assignment_bytes = sum(len(k) + len(v) for k, v in entry.items())
        finally:
            client.close()
            server.stop()
    print(f"fleet of {args.hosts} hosts x {args.pools} pools, medians over {args.ticks} ticks")
    for name in ("leader", "follower"):
        print(
            f"{name:<9} tick {statistics.median(times[name]) * 1e3:7.2f} ms   "
            f"Redis commands {statistics.median(ops[name]):4.0f} "
            f"(as counted by the member: {statistics.median(member_ops[name]):.0f})"
        )
    print(f"heartbeat {heartbeat_bytes} bytes per host per tick; "
          f"assignment entry {assignment_bytes} bytes per tick, read by every host")  # fmt: skip


if __name__ == "__main__":
    main()
