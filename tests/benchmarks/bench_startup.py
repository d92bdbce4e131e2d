"""How long a new worker slot takes to serve: addProcessGroup -> its first job popped.

Runs a real supervisord and redis-server (autoscaler.testing.stack) and the fake Laravel
worker, as the actuator adds a slot: a job is already waiting, the slot's program file is
written, then reloadConfig + addProcessGroup; the clock stops when the job leaves the list.
The median is the simulator's default start-up delay (AUTOSCALER_SIMULATE_STARTUP_S).

    python3 tests/benchmarks/bench_startup.py [--runs 9] [--boot-s 0]

`--boot-s` adds the framework's boot time inside the fake worker (a real `php artisan
queue:work` boots Laravel before its first pop; the fake worker only imports redis).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from autoscaler.testing.laravel import QueueKeys, make_payload, push
from autoscaler.testing.stack import RedisServer, Supervisord

PREFIX = "laravel_database_"
QUEUE = "bench"


def program(name: str, redis_url: str, boot_s: float, startsecs: int) -> str:
    return (
        f"[program:{name}]\n"
        f"command={sys.executable} -m autoscaler.testing.worker --redis-url {redis_url} "
        f"--queue={QUEUE} --sleep 3 --boot-s {boot_s}\n"
        f"startsecs={startsecs}\nstopasgroup=true\nkillasgroup=true\nstopwaitsecs=10\n"
        "autorestart=true\n"
    )


def wait_for(check: object, timeout_s: float = 30.0) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return time.monotonic()
        time.sleep(0.005)
    raise TimeoutError("condition not met within 30 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--boot-s", type=float, default=0.0)
    parser.add_argument("--startsecs", type=int, default=1, help="as the policies' default")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        base = Path(tmp)
        redis_server = RedisServer(base / "redis").start()
        supervisord = Supervisord(base / "sv").start()
        try:
            client = redis_server.client()
            proxy = supervisord.proxy()
            keys = QueueKeys.of(PREFIX, QUEUE)
            to_pop: list[float] = []
            to_running: list[float] = []
            for run in range(args.runs):
                name = f"w_{run:02d}"
                conf = supervisord.include_dir / f"{name}.conf"
                conf.write_text(program(name, redis_server.url, args.boot_s, args.startsecs))
                push(client, PREFIX, QUEUE, make_payload(job_id=f"j{run}", run_s=0.0))
                proxy.supervisor.reloadConfig()
                start = time.monotonic()
                proxy.supervisor.addProcessGroup(name)
                popped = wait_for(lambda: client.llen(keys.queue) == 0)
                running = wait_for(
                    lambda n=name: (
                        proxy.supervisor.getProcessInfo(f"{n}:{n}")["statename"] == "RUNNING"
                    )
                )
                to_pop.append(popped - start)
                to_running.append(running - start)
                proxy.supervisor.stopProcessGroup(name, True)
                proxy.supervisor.removeProcessGroup(name)
                conf.unlink()
                proxy.supervisor.reloadConfig()
        finally:
            supervisord.stop()
            redis_server.stop()
    print(f"runs: {args.runs}, fake worker boot {args.boot_s:g} s, startsecs {args.startsecs}")
    print(
        "addProcessGroup -> first job popped: median "
        f"{statistics.median(to_pop):.3f} s (min {min(to_pop):.3f}, max {max(to_pop):.3f})"
    )
    print(
        "addProcessGroup -> RUNNING:          median "
        f"{statistics.median(to_running):.3f} s (min {min(to_running):.3f}, "
        f"max {max(to_running):.3f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
