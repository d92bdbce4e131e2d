"""CPU time and round trips of one sampler tick, for 7 and for 500 queues.

Starts a throwaway redis-server, fills every queue the way Laravel does (pending jobs with
createdAt, one reserved, delayed due and not due), then times `QueueSampler.sample()`:
CPU time of this process (what the daemon spends per tick), wall time, round trips counted
on the client's connection and commands counted by the server. Side by side, the same reads
sent one command at a time show what the pipeline saves. Medians over the repeats.

    python3 tests/benchmarks/bench_sampler.py [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import redis

from autoscaler.laravel.sampler import COMMANDS_PER_QUEUE, QueueKeys, QueueSampler
from autoscaler.testing.laravel import later, make_payload, pop, push
from autoscaler.testing.roundtrips import counting_client
from autoscaler.testing.stack import RedisServer

PREFIX = "laravel_database_"
SIZES = (7, 500)


def fill(client: redis.Redis, queues: list[str]) -> None:
    now = time.time()
    for queue in queues:
        for index in range(3):
            push(client, PREFIX, queue, make_payload(created_at=now - 10 * index))
        pop(client, PREFIX, queue)
        later(client, PREFIX, queue, make_payload(), now - 1)
        later(client, PREFIX, queue, make_payload(), now + 3600)


def one_at_a_time(client: redis.Redis, keys: list[QueueKeys], now_s: float) -> None:
    """The same six reads per queue without a pipeline: one round trip each."""
    for key in keys:
        client.llen(key.pending)
        client.zcard(key.reserved)
        client.zcard(key.delayed)
        client.zcount(key.delayed, "-inf", now_s)
        client.lindex(key.pending, 0)
        client.lindex(key.pending, -1)


def server_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    names = ("llen", "zcard", "zcount", "lindex")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in names)


def bench(server: RedisServer, size: int, repeats: int) -> None:
    admin = server.client()
    admin.flushall()
    queues = [f"queue-{index:03d}" for index in range(size)]
    fill(admin, queues)
    client, counter = counting_client(server.url)
    client.ping()
    sampler = QueueSampler(client, prefix=PREFIX, queues=queues)
    sampler.sample(time.time())  # warm: first-seen memory, connection
    cpu, wall, trips = [], [], []
    admin.config_resetstat()
    for _ in range(repeats):
        counter.reset()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        sample = sampler.sample(time.time())
        cpu.append(time.process_time() - cpu0)
        wall.append(time.perf_counter() - wall0)
        trips.append(counter.round_trips)
        assert sample.available and len(sample.queues) == size
    commands = server_calls(admin) / repeats
    naive_wall, naive_trips = [], []
    for _ in range(max(3, repeats // 5)):
        counter.reset()
        wall0 = time.perf_counter()
        one_at_a_time(client, sampler.keys, time.time())
        naive_wall.append(time.perf_counter() - wall0)
        naive_trips.append(counter.round_trips)
    med_wall, med_naive = statistics.median(wall), statistics.median(naive_wall)
    print(
        f"{size:4d} queues: cpu {statistics.median(cpu) * 1000:7.2f} ms/tick, "
        f"wall {med_wall * 1000:7.2f} ms, round trips {statistics.median(trips):.0f}, "
        f"server commands {commands:.0f} (= {COMMANDS_PER_QUEUE} x {size}) | "
        f"one command at a time: wall {med_naive * 1000:7.2f} ms, "
        f"round trips {statistics.median(naive_trips):.0f}, "
        f"pipeline {med_naive / med_wall:.1f}x faster"
    )
    client.close()
    admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        server = RedisServer(Path(directory)).start()
        try:
            print(f"redis-server on {server.url}; medians over {args.repeats} ticks")
            for size in SIZES:
                bench(server, size, args.repeats)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
