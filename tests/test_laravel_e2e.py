"""The real daemon with real Laravel 8 workers: `php artisan queue:work` of the app in
autoscaler/data/laravel_app under a real supervisord, on a real redis-server.

Every job the app runs appends a line to Redis (`runs`), so each test counts every run of every
job. Nothing here asserts on elapsed time: conditions are awaited with generous deadlines (a
loaded 2-core machine boots PHP slowly).
"""

from __future__ import annotations

import collections
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoscaler.testing.sandbox import Sandbox, SandboxPool
from tests.conftest import require_binary, require_php
from tests.test_daemon_e2e import DaemonProcess, running, wait_for

DEADLINE_S = 150.0
WORK = SandboxPool(
    name="work",
    queues=("work",),
    min_processes=1,
    static_processes=1,
    max_processes=5,
    slo_wait_s=4.0,
    run_time_s=0.3,
    slo_knobs={"scale_down_window_s": 3.0, "startup_s": 1.5},
)


@pytest.fixture
def laravel(tmp_path: Path) -> Iterator[Sandbox]:
    require_binary("redis-server")
    require_binary("supervisord")
    require_php()
    box = Sandbox(tmp_path.resolve() / "s", pools=(WORK,), worker="laravel").start()
    yield box
    box.stop()


def log_text(sandbox: Sandbox, pool: str) -> str:
    return "".join(p.read_text(errors="replace") for p in sorted(sandbox.log_dir.glob(f"{pool}*")))


def test_burst_scales_up_drains_every_job_exactly_once(laravel: Sandbox, tmp_path: Path) -> None:
    daemon = DaemonProcess(laravel, tmp_path / "daemon.log")
    try:
        wait_for(lambda: running(laravel, "work") == 1, "the static slot runs", DEADLINE_S)
        jobs = laravel.app.push("work", 120, seconds=0.3)  # 36 s for one worker, SLO 4 s
        wait_for(lambda: re.search(r"work 1 -> [2-5]:", daemon.text()), "a scale-up", DEADLINE_S)
        wait_for(lambda: running(laravel, "work") >= 3, "the added workers run", DEADLINE_S)
        wait_for(lambda: len(laravel.finished_jobs()) >= len(jobs), "the burst drains", DEADLINE_S)
        wait_for(lambda: running(laravel, "work") == 1, "back down to min", DEADLINE_S)
    finally:
        assert daemon.stop() == 0
    runs = collections.Counter(laravel.finished_jobs())
    assert set(runs) == {job.id for job in jobs}, "a job was lost"
    assert max(runs.values()) == 1, "a job ran twice"
    pids = {run["pid"] for run in laravel.app.runs(laravel.client())}
    assert len(pids) >= 3, "the added workers took jobs"
    # the real worker's own lines (Laravel 8: `[date][id] Processing:` / `Processed:`)
    assert re.search(r"\]\[\w{32}\] Processed:  App\\Jobs\\Work", log_text(laravel, "work"))
