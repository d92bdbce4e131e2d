"""CPU cost of measuring every worker's memory and CPU each tick: 7 pools x 16 workers.

Starts 112 real processes standing in for workers, once without children (supervisord runs
`php artisan queue:work` itself) and once with a child for half of them (a shell wrapper, or a
job's subprocess), hands `ProcessMeter.measure` the process list
supervisord would report for them, and times it in this process's CPU time (what the daemon
spends per tick). Two numbers, medians over the ticks: a tick that only reads the known
processes, and a tick that also rebuilds the parent map to find new children (every
CHILDREN_EVERY_TICKS ticks, or when a worker PID is new); and the average over a cycle, which
is what a tick costs in the long run. The target is <= 5 ms of CPU per tick.

    python3 tests/benchmarks/bench_process_memory.py [--ticks N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time

import psutil

from autoscaler.observe.process_memory import CHILDREN_EVERY_TICKS, ProcessMeter
from autoscaler.supervisord.rpc import ProcessInfo

POOLS = 7
WORKERS = 16
RUNNING = 20


def start_workers(*, with_children: bool) -> list[subprocess.Popen[bytes]]:
    workers = []
    for index in range(POOLS * WORKERS):
        # `exec sleep` keeps the pid; the background sleep is its child (a wrapper's php).
        child = with_children and index % 2 == 1
        script = "sleep 600 & exec sleep 600" if child else "exec sleep 600"
        workers.append(subprocess.Popen(["sh", "-c", script]))
    time.sleep(0.5)  # let every shell exec
    return workers


def process_list(workers: list[subprocess.Popen[bytes]]) -> list[ProcessInfo]:
    now = int(time.time())
    infos = []
    for index, worker in enumerate(workers):
        pool, slot = divmod(index, WORKERS)
        name = f"pool{pool}-worker_{slot:02d}"
        infos.append(
            ProcessInfo(
                name=name,
                group=name,
                state=RUNNING,
                pid=worker.pid,
                start_s=now - 60,
                now_s=now,
                stdout_logfile="",
                spawnerr="",
                exitstatus=0,
            )
        )
    return infos


def run(workers: list[subprocess.Popen[bytes]], ticks: int, children: int) -> str:
    infos = process_list(workers)
    owners = {f"pool{p}-worker": f"pool{p}" for p in range(POOLS)}
    meter = ProcessMeter()
    meter.measure(infos, owners)  # handles created, first parent map
    plain: list[float] = []
    rebuild: list[float] = []
    for tick in range(1, ticks + 1):
        started = time.process_time()
        usages = meter.measure(infos, owners)
        spent_ms = (time.process_time() - started) * 1000
        (rebuild if tick % CHILDREN_EVERY_TICKS == 0 else plain).append(spent_ms)
    assert len(usages) == POOLS * WORKERS and all(u.rss_mb for u in usages)
    assert sum(u.children for u in usages) == children
    plain_ms = statistics.median(plain)
    rebuild_ms = statistics.median(rebuild)
    cycle_ms = ((CHILDREN_EVERY_TICKS - 1) * plain_ms + rebuild_ms) / CHILDREN_EVERY_TICKS
    return (
        f"{plain_ms:8.2f} ms {rebuild_ms:8.2f} ms {cycle_ms:8.2f} ms"
        f"   ({len(psutil.pids())} processes on the host)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=120)
    args = parser.parse_args()
    print(
        f"CPU per tick measuring {POOLS} pools x {WORKERS} workers, medians over "
        f"{args.ticks} ticks; the parent map is rebuilt every {CHILDREN_EVERY_TICKS} ticks"
    )
    print(f"{'':34}{'plain tick':>11}{'rebuild':>12}{'per tick':>12}  (target <= 5 ms)")
    for label, with_children in (
        ("workers without children", False),
        ("half the workers with a child", True),
    ):
        workers = start_workers(with_children=with_children)
        try:
            children = POOLS * WORKERS // 2 if with_children else 0
            print(f"{label:34}{run(workers, args.ticks, children)}")
        finally:
            for worker in workers:
                for child in psutil.Process(worker.pid).children(recursive=True):
                    child.kill()
                worker.kill()
                worker.wait()


if __name__ == "__main__":
    main()
