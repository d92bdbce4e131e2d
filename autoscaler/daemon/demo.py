"""`autoscaler demo`: the real daemon on a throwaway real stack, scaling a burst live.

Starts redis-server and supervisord in a temp directory, two pools of fake Laravel workers,
and the daemon in this process; pushes a burst onto one queue and prints, every second, what
the daemon sees and does; then stops everything it started and removes the directory.
"""

from __future__ import annotations

import json
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
from autoscaler.testing.sandbox import PREFIX, Sandbox, SandboxPool

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


def run_demo(
    *, burst_jobs: int = 150, max_duration_s: float = 90.0, keep: bool = False, out: TextIO
) -> int:
    root = Path(tempfile.mkdtemp(prefix="autoscaler-demo-"))
    sandbox = Sandbox(root, pools=(EXCHANGE, MAIL))
    daemon: Daemon | None = None
    thread: threading.Thread | None = None
    configure_logging(level="INFO", json_lines=False)
    try:
        print(f"starting redis-server, supervisord and the daemon in {root} ...", file=out)
        sandbox.start()
        daemon = Daemon(settings=sandbox.settings(interval_s=1.0, summary_interval_s=3600))
        thread = threading.Thread(target=daemon.run, name="daemon", daemon=True)
        thread.start()
        started = time.monotonic()
        print(HEADER, file=out)
        _show(sandbox, out, seconds=3, started=started)
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
            _show(sandbox, out, seconds=1, started=started)
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


HEADER = f"{'t':>5}  {'pool':<20} {'waiting':>7} {'oldest':>7} {'workers':>7}"


def _show(sandbox: Sandbox, out: TextIO, *, seconds: int, started: float) -> None:
    """Print one line per pool, once a second, `seconds` times."""
    client = sandbox.client()
    try:
        for _ in range(seconds):
            workers = _workers(sandbox)
            now = time.time()
            for pool in (EXCHANGE, MAIL):
                key = QueueKeys.of(PREFIX, pool.queues[0]).queue
                head = client.lindex(key, 0)
                oldest = f"{now - json.loads(head)['createdAt']:.0f}s" if head else "-"
                print(
                    f"{time.monotonic() - started:5.0f}  {pool.name:<20} "
                    f"{int(client.llen(key)):>7} {oldest:>7} {workers.get(pool.name, 0):>7}",
                    file=out,
                    flush=True,
                )
            time.sleep(1.0)
    finally:
        client.close()
