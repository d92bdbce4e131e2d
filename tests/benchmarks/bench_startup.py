"""How long a new worker slot takes to serve: addProcessGroup -> its first job popped.

Runs a real supervisord and redis-server (autoscaler.testing.stack) and a worker, as the
actuator adds a slot: a job is already waiting, the slot's program file is written, then
reloadConfig + addProcessGroup (supervisord starts the process); the clock stops when the job
leaves the list. docs/simulator.md says which figure the simulator's default start-up delay
(AUTOSCALER_SIMULATE_STARTUP_S) uses.

    python3 tests/benchmarks/bench_startup.py [--runs 9] [--worker laravel|standin] [--boot-s 0]

`--worker laravel` (the default when PHP and Debian's Laravel are installed) runs the real
`php artisan queue:work` of autoscaler/data/laravel_app, which boots Laravel before its first
pop; `standin` runs the Python stand-in, which only imports redis (`--boot-s` adds a delay).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis

from autoscaler.testing.laravel import QueueKeys, make_payload, push
from autoscaler.testing.laravel_app import LaravelApp, missing_php
from autoscaler.testing.stack import RedisServer, Supervisord

PREFIX = "laravel_database_"
QUEUE = "bench"


def program(name: str, command: str, startsecs: int, environment: str) -> str:
    return (
        f"[program:{name}]\n"
        f"command={command}\n{environment}"
        f"startsecs={startsecs}\nstopasgroup=true\nkillasgroup=true\nstopwaitsecs=10\n"
        "autorestart=true\n"
    )


class Worker:
    """The worker to start: its command, `environment=` line, and how to queue one job."""

    def __init__(self, kind: str, redis_url: str, boot_s: float, runtime: Path) -> None:
        self.kind = kind
        self.app = LaravelApp(redis_url, PREFIX, runtime_dir=runtime)
        if kind == "laravel":
            self.app.run_artisan("--version")  # Laravel's manifests, built once as on a host
            env = ",".join(f'{key}="{value}"' for key, value in self.app.env().items())
            self.command = self.app.worker_command(QUEUE, sleep_s=3)
            self.environment = f"environment={env}\n"
        else:
            self.command = (
                f"{sys.executable} -m autoscaler.testing.worker --redis-url {redis_url} "
                f"--queue={QUEUE} --sleep 3 --boot-s {boot_s}"
            )
            self.environment = ""

    def queue_one(self, client: redis.Redis, run: int) -> None:
        if self.kind == "laravel":
            self.app.push(QUEUE, 1)
        else:
            push(client, PREFIX, QUEUE, make_payload(job_id=f"j{run}", run_s=0.0))


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
    parser.add_argument(
        "--worker",
        choices=("laravel", "standin"),
        default="laravel" if missing_php() is None else "standin",
    )
    parser.add_argument("--boot-s", type=float, default=0.0, help="stand-in boot delay, s")
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
            worker = Worker(args.worker, redis_server.url, args.boot_s, base / "app")
            to_pop: list[float] = []
            to_running: list[float] = []
            for run in range(args.runs):
                name = f"w_{run:02d}"
                conf = supervisord.include_dir / f"{name}.conf"
                conf.write_text(program(name, worker.command, args.startsecs, worker.environment))
                worker.queue_one(client, run)
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
    what = (
        "real Laravel 8 `php artisan queue:work`"
        if args.worker == "laravel"
        else f"stand-in worker, boot {args.boot_s:g} s"
    )
    print(f"runs: {args.runs}, {what}, startsecs {args.startsecs}")
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
