"""`autoscaler demo`: the real daemon on a throwaway real stack, scaling a burst live.

Starts redis-server and supervisord in a temp directory, two pools of workers, and the
daemon in this process; pushes a burst onto one queue and prints, every second, what the
daemon sees and does; then stops everything it started and removes the directory.

The workers are real `php artisan queue:work` of a minimal Laravel 8 app (shipped in
autoscaler/data/laravel_app) when PHP and Debian's Laravel are installed, else the Python
stand-in (autoscaler/testing/worker.py); the first line says which.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import TextIO

from loguru import logger

from autoscaler.daemon.lifecycle import Daemon
from autoscaler.daemon.logsetup import configure_logging
from autoscaler.supervisord.rpc import SupervisorClient, SupervisorUnavailable
from autoscaler.testing.laravel import QueueKeys
from autoscaler.testing.laravel_app import DEBIAN_PACKAGES, missing_php
from autoscaler.testing.sandbox import PREFIX, Sandbox, SandboxPool
from autoscaler.testing.stack import StackError

WORKER_CHOICES = ("auto", "laravel", "standin")

EXCHANGE = SandboxPool(
    name="gift_card_exchange",
    queues=("gift_card_exchange",),
    min_processes=1,
    static_processes=1,
    max_processes=8,
    slo_wait_s=5.0,
    run_time_s=0.6,
    priority=100,
    slo_knobs={"scale_down_window_s": 8.0},
)
MAIL = SandboxPool(
    name="mail", queues=("mail",), max_processes=3, slo_wait_s=30.0, run_time_s=0.3, priority=400
)


def choose_worker(choice: str) -> tuple[str, str]:
    """(sandbox worker, the sentence that says which) for --worker auto/laravel/standin.
    Raises StackError when `laravel` is asked for and cannot run here."""
    problem = missing_php() if choice in ("auto", "laravel") else None
    if choice == "laravel" and problem is not None:
        raise StackError(f"--worker laravel: {problem}")
    if choice != "standin" and problem is None:
        return "laravel", "workers: real Laravel 8 (`php artisan queue:work`, Debian's packages)"
    why = problem or "--worker standin"
    return "standin", (
        f"workers: the Python stand-in for `queue:work` ({why}; for real Laravel workers: "
        f"apt-get install {DEBIAN_PACKAGES})"
    )


def run_demo(
    *,
    burst_jobs: int = 150,
    max_duration_s: float = 90.0,
    keep: bool = False,
    worker: str = "auto",
    out: TextIO,
) -> int:
    kind, which = choose_worker(worker)
    root = Path(tempfile.mkdtemp(prefix="autoscaler-demo-"))
    sandbox = Sandbox(root, pools=(EXCHANGE, MAIL), worker=kind)
    daemon: Daemon | None = None
    thread: threading.Thread | None = None
    configure_logging(level="INFO", json_lines=False)
    try:
        print(f"starting redis-server, supervisord and the daemon in {root} ...", file=out)
        print(which, file=out)
        sandbox.start()
        daemon = Daemon(settings=sandbox.settings(interval_s=1.0, summary_interval_s=3600))
        thread = threading.Thread(target=daemon.run, name="daemon", daemon=True)
        thread.start()
        started = time.monotonic()
        print(HEADER, file=out)
        _show(sandbox, daemon, out, seconds=3, started=started)
        print(
            f"\npushing a burst of {burst_jobs} jobs ({EXCHANGE.run_time_s}s each) onto "
            f"gift_card_exchange (SLO: p95 wait <= {EXCHANGE.slo_wait_s:g}s)\n",
            file=out,
        )
        print(HEADER, file=out)
        sandbox.push("gift_card_exchange", burst_jobs, run_s=EXCHANGE.run_time_s)
        sandbox.push("mail", 5, run_s=MAIL.run_time_s)
        deadline = time.monotonic() + max_duration_s
        while time.monotonic() < deadline:
            _show(sandbox, daemon, out, seconds=1, started=started)
            if _settled(sandbox, burst_jobs + 5):
                break
        done = len(sandbox.finished_jobs())
        print(f"\n{done} jobs finished, each exactly once: "
              f"{len(set(sandbox.finished_jobs())) == done}", file=out)  # fmt: skip
        return 0
    finally:
        if daemon is not None:
            daemon.stop()
        if thread is not None:
            thread.join(30)
        logger.remove()
        sandbox.stop()
        if keep:
            print(f"kept {root}", file=out)
        else:
            shutil.rmtree(root, ignore_errors=True)
        print("stopped everything the demo started", file=out)


def _settled(sandbox: Sandbox, expected_jobs: int) -> bool:
    """All jobs done and the burst pool back at its minimum."""
    workers = _workers(sandbox).get("gift_card_exchange", 0)
    return len(sandbox.finished_jobs()) >= expected_jobs and workers <= EXCHANGE.min_processes


def _workers(sandbox: Sandbox) -> dict[str, int]:
    client = SupervisorClient(sandbox.supervisord.url, timeout_s=2)
    try:
        processes = client.processes()
    except SupervisorUnavailable:
        return {}
    finally:
        client.close()
    counts: dict[str, int] = {}
    for process in processes:
        if process.statename == "RUNNING":
            pool = process.name.removeprefix("sandbox-").rsplit("_", 1)[0]
            counts[pool] = counts.get(pool, 0) + 1
    return counts


HEADER = f"{'t':>5}  {'pool':<20} {'waiting':>7} {'oldest':>7} {'workers':>7}  age from"


def _show(sandbox: Sandbox, daemon: Daemon, out: TextIO, *, seconds: int, started: float) -> None:
    """Print one line per pool, once a second, `seconds` times. `oldest` is what the daemon
    saw at its last tick, and `age from` where that age came from (docs/observing.md)."""
    client = sandbox.client()
    try:
        for _ in range(seconds):
            workers = _workers(sandbox)
            last = daemon.last.observation if daemon.last is not None else None
            for pool in (EXCHANGE, MAIL):
                key = QueueKeys.of(PREFIX, pool.queues[0]).queue
                seen = last.pools.get(pool.name) if last is not None else None
                queues = seen.queues if seen is not None else None
                age = seen.oldest_wait_s if seen is not None else None
                source = queues[0].oldest_wait_source if queues else "-"
                oldest = "-" if age is None else f"{age:.0f}s"
                print(
                    f"{time.monotonic() - started:5.0f}  {pool.name:<20} "
                    f"{int(client.llen(key)):>7} {oldest:>7} {workers.get(pool.name, 0):>7}  "
                    f"{source}",
                    file=out,
                    flush=True,
                )
            time.sleep(1.0)
    finally:
        client.close()
