"""How fast an apply is, next to `supervisorctl update` doing the same change with numprocs.

Two measurements, each on throwaway real supervisords, medians over the repeats:

1. Fake Laravel workers (autoscaler.testing.worker on a throwaway redis-server), one pool
   2 -> 5: time from the start of the apply until all 5 slots are RUNNING, and how long the
   pool had fewer than its 2 workers. Side by side: the numprocs program edited 2 -> 5 and
   `supervisorctl update` (which restarts the whole group).
2. 50 pools x 10 slots (`sleep` programs, startsecs=1), every pool +1 then -1: the wall time
   of one apply (it returns without waiting for any process) and until the new slots run /
   the removed ones are gone, against the wall time of `supervisorctl update` after changing
   numprocs 10 -> 11 -> 10 in 50 programs.

    python3 tests/benchmarks/bench_apply.py [--pools 50] [--slots 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from loguru import logger

from autoscaler.act.actuator import Actuator
from autoscaler.policy.model import Policy
from autoscaler.supervisord.include_file import SupervisorFile
from autoscaler.supervisord.rpc import SupervisorClient
from autoscaler.testing.laravel import QueueKeys, make_payload, push
from autoscaler.testing.stack import RedisServer, Supervisord, find_binary

PREFIX = "laravel_database_"
SLEEP = "/bin/sleep 100000"


def policy(program: str, command: str, *, maximum: int, log: Path) -> Policy:
    return Policy.model_validate(
        {
            "queues": [program],
            "program": program,
            "command": command,
            "min_processes": 0,
            "static_processes": 0,
            "max_processes": maximum,
            "memory_per_worker_mb": 64,
            "priority": 100,
            "slo": {"wait_s": 30},
            "supervisor": {"stdout_logfile": str(log), "stopwaitsecs": 90},
        }
    )


def numprocs_program(program: str, command: str, count: int, log_dir: Path) -> str:
    return (
        f"[program:{program}]\ncommand={command}\nnumprocs={count}\n"
        "process_name=%(program_name)s_%(process_num)02d\nstartsecs=1\nstopsignal=TERM\n"
        "stopwaitsecs=90\nstopasgroup=true\nkillasgroup=true\nredirect_stderr=true\n"
        f"stdout_logfile={log_dir}/%(program_name)s_%(process_num)02d.log\n"
    )


def states(client: SupervisorClient) -> list[str]:
    return [p.statename for p in client.processes()]


def poll(client: SupervisorClient, done: Callable[[list[str]], bool], timeout_s: float) -> float:
    """Seconds until `done(states)` holds, polling every 20 ms."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if done(states(client)):
            return time.monotonic() - start
        time.sleep(0.02)
    raise RuntimeError(f"not reached within {timeout_s:.0f}s")


def apply_until(actuator: Actuator, desired: dict[str, int], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not actuator.apply(desired).converged:
        if time.monotonic() > deadline:
            raise RuntimeError("apply did not converge")
        time.sleep(0.2)


def running_count(client: SupervisorClient) -> int:
    return sum(1 for s in states(client) if s == "RUNNING")


def watch_gap(
    client: SupervisorClient, floor: int, target: int, *, start: float
) -> tuple[float, float]:
    """(seconds from `start` until `target` RUNNING, seconds spent below `floor` RUNNING)."""
    timeout_s = 120.0
    below = 0.0
    last = start
    while time.monotonic() - start < timeout_s:
        count = running_count(client)
        now = time.monotonic()
        if count < floor:
            below += now - last
        last = now
        if count >= target and all(s == "RUNNING" for s in states(client)):
            return now - start, below
        time.sleep(0.02)
    raise RuntimeError("target not reached")


def supervisorctl(sv: Supervisord, *words: str) -> float:
    binary = find_binary("supervisorctl")
    if binary is None:
        raise SystemExit("supervisorctl not found")
    start = time.monotonic()
    subprocess.run([binary, "-c", str(sv.conf_path), *words], check=True, capture_output=True)
    return time.monotonic() - start


def busy_pair(redis: RedisServer, client: SupervisorClient, job_s: float) -> None:
    """Once the previous jobs are done, give both workers a job of `job_s` and wait until
    both hold one."""
    queue = redis.client()
    keys = QueueKeys.of(PREFIX, "mail")

    def in_flight() -> int:
        return int(queue.zcard(keys.reserved)) + int(queue.llen(keys.queue))

    deadline = time.monotonic() + 60
    while in_flight() > 0:
        if time.monotonic() > deadline:
            raise RuntimeError("the previous jobs did not finish")
        time.sleep(0.05)
    for _ in range(2):
        push(queue, PREFIX, "mail", make_payload(run_s=job_s))
    while queue.zcard(keys.reserved) < 2:
        if time.monotonic() > deadline:
            raise RuntimeError("the workers did not take their jobs")
        time.sleep(0.02)


def workers_ours(
    root: Path, redis: RedisServer, repeats: int, job_s: float
) -> list[tuple[float, float]]:
    results = []
    sv = Supervisord(root / "w1").start()
    try:
        logs = root / "w1-logs"
        logs.mkdir()
        pol = {"mail": policy("mail", worker_command(redis), maximum=8, log=logs / "mail.log")}
        client = SupervisorClient(sv.url)
        act = Actuator(
            client=client, file=SupervisorFile(path=sv.include_dir / "w.conf"), policies=pol
        )
        apply_until(act, {"mail": 2})
        for _ in range(repeats):
            busy_pair(redis, client, job_s)
            start = time.monotonic()
            act.apply({"mail": 5})
            results.append(watch_gap(client, 2, 5, start=start))
            apply_until(act, {"mail": 2})
    finally:
        sv.stop()
    return results


def workers_theirs(
    root: Path, redis: RedisServer, repeats: int, job_s: float
) -> list[tuple[float, float]]:
    results = []
    sv = Supervisord(root / "w2").start()
    try:
        logs = root / "w2-logs"
        logs.mkdir()
        conf = sv.include_dir / "w.conf"
        command = worker_command(redis)
        conf.write_text(numprocs_program("mail", command, 2, logs))
        supervisorctl(sv, "update")
        client = SupervisorClient(sv.url)
        poll(client, lambda s: s == ["RUNNING"] * 2, 60)
        for _ in range(repeats):
            busy_pair(redis, client, job_s)
            conf.write_text(numprocs_program("mail", command, 5, logs))
            start = time.monotonic()
            update = subprocess.Popen(
                [str(find_binary("supervisorctl")), "-c", str(sv.conf_path), "update"],
                stdout=subprocess.DEVNULL,
            )
            results.append(watch_gap(client, 2, 5, start=start))
            update.wait(120)
            conf.write_text(numprocs_program("mail", command, 2, logs))
            supervisorctl(sv, "update")
            poll(client, lambda s: s == ["RUNNING"] * 2, 60)
    finally:
        sv.stop()
    return results


def worker_command(redis: RedisServer) -> str:
    return (
        f"{sys.executable} -m autoscaler.testing.worker --redis-url {redis.url} "
        "--queue=mail --sleep=0.1 --timeout=30"
    )


def bench_workers(root: Path, repeats: int, job_s: float) -> None:
    redis = RedisServer(root / "redis").start()
    try:
        ours = workers_ours(root, redis, repeats, job_s)
        theirs = workers_theirs(root, redis, repeats, job_s)
    finally:
        redis.stop()
    med = statistics.median
    print(
        f"1. fake Laravel workers, one pool 2 -> 5 while both workers run a {job_s:g} s job "
        f"(medians of {repeats} runs)"
    )
    print(f"   {'':36} {'autoscaler apply':>17} {'supervisorctl update':>21}")
    print(
        f"   {'apply -> all 5 RUNNING (s)':36} {med(u for u, _ in ours):17.2f} "
        f"{med(u for u, _ in theirs):21.2f}"
    )
    print(
        f"   {'time with < 2 workers RUNNING (s)':36} {med(g for _, g in ours):17.2f} "
        f"{med(g for _, g in theirs):21.2f}"
    )


def many_ours(root: Path, names: list[str], slots: int, repeats: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"up_call": [], "up_running": [], "down_call": [], "gone": []}
    sv = Supervisord(root / "m1").start()
    try:
        logs = root / "m1-logs"
        logs.mkdir()
        pol = {n: policy(n, SLEEP, maximum=slots + 1, log=logs / f"{n}.log") for n in names}
        client = SupervisorClient(sv.url, timeout_s=60)
        act = Actuator(
            client=client, file=SupervisorFile(path=sv.include_dir / "m.conf"), policies=pol
        )
        apply_until(act, dict.fromkeys(names, slots))
        total = len(names) * (slots + 1)
        for _ in range(repeats):
            start = time.monotonic()
            act.apply(dict.fromkeys(names, slots + 1))
            out["up_call"].append(time.monotonic() - start)
            poll(client, lambda s: s.count("RUNNING") == total == len(s), 120)
            out["up_running"].append(time.monotonic() - start)
            start = time.monotonic()
            act.apply(dict.fromkeys(names, slots))
            out["down_call"].append(time.monotonic() - start)
            apply_until(act, dict.fromkeys(names, slots))
            out["gone"].append(time.monotonic() - start)
    finally:
        sv.stop()
    return out


def many_theirs(root: Path, names: list[str], slots: int, repeats: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"up": [], "down": []}
    sv = Supervisord(root / "m2").start()
    try:
        logs = root / "m2-logs"
        logs.mkdir()
        conf = sv.include_dir / "m.conf"

        def write(count: int) -> None:
            conf.write_text("".join(numprocs_program(n, SLEEP, count, logs) for n in names))

        client = SupervisorClient(sv.url, timeout_s=60)
        write(slots)
        supervisorctl(sv, "update")
        poll(client, lambda s: s.count("RUNNING") == len(names) * slots, 300)
        for _ in range(repeats):
            write(slots + 1)
            out["up"].append(supervisorctl(sv, "update"))
            poll(client, lambda s: s.count("RUNNING") == len(names) * (slots + 1), 300)
            write(slots)
            out["down"].append(supervisorctl(sv, "update"))
            poll(client, lambda s: s.count("RUNNING") == len(names) * slots == len(s), 300)
    finally:
        sv.stop()
    return out


def bench_many(root: Path, pools: int, slots: int, repeats: int) -> None:
    names = [f"p{index:02d}" for index in range(pools)]
    ours = many_ours(root, names, slots, repeats)
    theirs = many_theirs(root, names, slots, repeats)
    med = statistics.median
    print(f"\n2. {pools} pools x {slots} slots, every pool +1 then -1 (medians of {repeats} runs)")
    print(f"   {'':40} {'autoscaler apply':>17} {'supervisorctl update':>21} {'ratio':>7}")
    up, down = med(ours["up_call"]), med(ours["down_call"])
    print(
        f"   {'scale up: the call returns (s)':40} {up:17.3f} {med(theirs['up']):21.2f} "
        f"{med(theirs['up']) / up:6.0f}x"
    )
    print(f"   {'scale up: all new slots RUNNING (s)':40} {med(ours['up_running']):17.2f}")
    print(
        f"   {'scale down: the call returns (s)':40} {down:17.3f} {med(theirs['down']):21.2f} "
        f"{med(theirs['down']) / down:6.0f}x"
    )
    print(f"   {'scale down: removed slots gone (s)':40} {med(ours['gone']):17.2f}")
    print(
        f"   (supervisorctl update restarts all {pools * slots}+ workers each time; "
        f"autoscaler starts or stops {pools})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=50)
    parser.add_argument("--slots", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--job-s", type=float, default=3.0, help="job the workers hold")
    args = parser.parse_args()
    logger.remove()  # the actuator's INFO lines would drown the numbers
    with tempfile.TemporaryDirectory(prefix="bench-apply-") as tmp:
        root = Path(tmp)
        bench_workers(root, args.repeats, args.job_s)
        bench_many(root, args.pools, args.slots, args.repeats)


if __name__ == "__main__":
    main()
