"""The real daemon with real Laravel 8 workers: `php artisan queue:work` of the app in
autoscaler/data/laravel_app under a real supervisord, on a real redis-server.

Every job the app runs appends a line to Redis (`runs`), so each test counts every run of every
job. Nothing here asserts on elapsed time: conditions are awaited with generous deadlines (a
loaded 2-core machine boots PHP slowly).
"""

from __future__ import annotations

import collections
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoscaler.bundled import laravel_app_dir
from autoscaler.supervisord.rpc import SupervisorClient, SupervisorUnavailable
from autoscaler.testing.sandbox import PREFIX, Sandbox, SandboxPool
from tests.conftest import require_binary, require_php
from tests.test_daemon_e2e import DaemonProcess, running, slots, wait_for

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


MEMORY = SandboxPool(
    name="memory",
    queues=("memory",),
    max_processes=1,
    slo_wait_s=60.0,
    worker_args="--memory=48",  # each job keeps 64 MB: the worker exits 12 after it
)


def start_sandbox(root: Path, *pools: SandboxPool, app_dir: Path | None = None) -> Sandbox:
    require_binary("redis-server")
    require_binary("supervisord")
    require_php()
    return Sandbox(root, pools=pools, worker="laravel", app_dir=app_dir).start()


@pytest.fixture
def laravel(tmp_path: Path) -> Iterator[Sandbox]:
    box = start_sandbox(tmp_path.resolve() / "s", WORK)
    yield box
    box.stop()


def autoscaler(sandbox: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as an operator runs it, configured by the sandbox's AUTOSCALER_* variables."""
    return subprocess.run(
        [sys.executable, "-m", "autoscaler", *args],
        env=sandbox.env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def all_slots(sandbox: Sandbox, program: str) -> list[tuple[str, int]]:
    """(state, pid) of every process whose name starts with `program_`."""
    client = SupervisorClient(sandbox.supervisord.url)
    try:
        return [(p.statename, p.pid) for p in client.processes() if p.name.startswith(program)]
    except SupervisorUnavailable:
        return []
    finally:
        client.close()


def supervisord_log(sandbox: Sandbox) -> str:
    return (sandbox.supervisord.directory / "supervisord.log").read_text(errors="replace")


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


def test_scale_down_mid_job_lets_the_real_worker_finish_it(laravel: Sandbox) -> None:
    assert autoscaler(laravel, "scale", "work", "3", "--wait", "120").returncode == 0
    wait_for(lambda: running(laravel, "work") == 3, "three workers", DEADLINE_S)
    jobs = laravel.app.push("work", 3, seconds=4.0)
    reserved = f"{PREFIX}queues:work:reserved"
    wait_for(lambda: laravel.client().zcard(reserved) == 3, "every worker busy", DEADLINE_S)
    asked_at = time.time()
    result = autoscaler(laravel, "scale", "work", "1", "--wait", "120", "--format", "json")
    assert result.returncode == 0, result.stderr
    stopped = [c["slot"] for c in json.loads(result.stdout)["changes"] if c["action"] == "stop"]
    assert len(stopped) == 2
    wait_for(lambda: len(laravel.finished_jobs()) == 3, "the jobs finish", DEADLINE_S)
    runs = laravel.app.runs(laravel.client())
    assert sorted(r["id"] for r in runs) == sorted(j.id for j in jobs)
    assert all(r["attempts"] == 1 and r["finished"] > asked_at for r in runs)
    assert all(r["finished"] - r["started"] >= 4.0 for r in runs), "a job was cut short"
    log = supervisord_log(laravel)
    for slot in stopped:  # SIGTERM: the worker ended its job, then exited 0
        assert f"stopped: {slot} (exit status 0)" in log
    assert running(laravel, "work") == 1


def test_a_worker_exiting_on_memory_is_restarted_not_failed(tmp_path: Path) -> None:
    box = start_sandbox(tmp_path.resolve() / "s", MEMORY)
    daemon = DaemonProcess(box, tmp_path / "daemon.log")
    try:
        wait_for(lambda: running(box, "memory") == 1, "the worker runs", DEADLINE_S)
        # Each job outlasts startsecs (1 s): the worker was RUNNING when it exits, as a worker
        # that has grown over hours is (one exiting sooner is BACKOFF, "exited too quickly").
        jobs = box.app.push("memory", 3, seconds=1.5, ballast_mb=64)
        wait_for(lambda: len(box.finished_jobs()) == 3, "every job runs", DEADLINE_S)
        wait_for(lambda: running(box, "memory") == 1, "the worker is back", DEADLINE_S)
        ticks = daemon.ticks()
        wait_for(lambda: daemon.ticks() >= ticks + 2, "two more ticks", DEADLINE_S)
    finally:
        assert daemon.stop() == 0
        runs = box.app.runs(box.client())
        log = supervisord_log(box)
        box.stop()
    assert sorted(r["id"] for r in runs) == sorted(j.id for j in jobs)
    assert len({r["pid"] for r in runs}) == 3, "each job ran in a fresh worker"
    assert log.count("(exit status 12; not expected)") >= 2  # Laravel's memory exit
    assert "ALERT" not in daemon.text() and "FATAL" not in log


def test_a_broken_artisan_gives_fatal_slots_and_an_alert_then_recovers(tmp_path: Path) -> None:
    app_dir = tmp_path / "app"
    shutil.copytree(laravel_app_dir(), app_dir)
    artisan = app_dir / "artisan"
    good = artisan.read_text()
    artisan.write_text(good.replace("exit($status);", "exit($status)  // a bad deploy\n"))
    box = start_sandbox(tmp_path.resolve() / "s", WORK, app_dir=app_dir)
    daemon = DaemonProcess(box, tmp_path / "daemon.log", AUTOSCALER_ALERT_INTERVAL_S="5")
    try:
        wait_for(
            lambda: "FATAL" in {state for state, _ in slots(box, "work").values()},
            "the slot goes FATAL",
            DEADLINE_S,
        )
        wait_for(lambda: "ALERT workers_fatal: work" in daemon.text(), "an alert", DEADLINE_S)
        artisan.write_text(good)  # the fix is deployed
        wait_for(lambda: running(box, "work") == 1, "the pool recovers", DEADLINE_S)
        jobs = box.app.push("work", 5, seconds=0.1)
        wait_for(lambda: len(box.finished_jobs()) == 5, "jobs run again", DEADLINE_S)
        assert sorted(box.finished_jobs()) == sorted(j.id for j in jobs)
    finally:
        assert daemon.stop() == 0
        box.stop()


def test_status_reads_throughput_and_run_time_from_the_real_workers_lines(
    laravel: Sandbox,
) -> None:
    assert autoscaler(laravel, "scale", "work", "2", "--wait", "120").returncode == 0
    wait_for(lambda: running(laravel, "work") == 2, "two workers", DEADLINE_S)
    laravel.app.push("work", 32, seconds=1.2)  # about 20 s of work for two workers
    result = autoscaler(laravel, "status", "--format", "json", "--window", "5")
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["work_source"] == "logs", row  # counted from `Processed:` lines
    assert row["completions"] >= 2 and row["throughput_per_min"] > 0
    # Laravel 8 states no run time: it comes from the two lines' whole-second stamps
    assert 0.5 <= row["run_time_mean_s"] <= 2.5
    assert row["workers"] == 2 and row["busy_workers"] >= 1
    # every job was queued before `status` first looked: a lower bound, and named so
    assert row["oldest_wait_source"] == "first_seen" and row["oldest_wait_s"] >= 4.0
    wait_for(lambda: len(laravel.finished_jobs()) == 32, "the jobs finish", DEADLINE_S)


def test_init_from_supervisor_on_the_real_app_gives_policies_that_run(
    laravel: Sandbox, tmp_path: Path
) -> None:
    app, logs = laravel.app, tmp_path / "worker-logs"
    logs.mkdir()
    environment = ",".join(f'{key}="{value}"' for key, value in app.env().items())
    conf = tmp_path / "laravel-worker.conf"
    conf.write_text(
        "[program:laravel-worker]\n"
        "process_name=%(program_name)s_%(process_num)02d\n"
        f"command={app.worker_command('work', sleep_s=1)}\n"
        "autostart=true\nautorestart=true\nnumprocs=2\nstopwaitsecs=30\n"
        f"environment={environment}\n"
        f"stdout_logfile={logs / 'worker.log'}\n"
    )
    policies = tmp_path / "imported"
    made = autoscaler(laravel, "init", "--from-supervisor", str(conf), "--out", str(policies))
    assert made.returncode == 0, made.stderr
    (policy,) = policies.glob("*.toml")
    assert 'queues = ["work"]' in policy.read_text()
    checked = autoscaler(laravel, "check", str(policies))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for old in laravel.policies_dir.glob("*.toml"):
        old.unlink()
    shutil.copy(policy, laravel.policies_dir / policy.name)
    daemon = DaemonProcess(laravel, tmp_path / "daemon.log")
    try:
        wait_for(
            lambda: any(s == "RUNNING" for s, _ in all_slots(laravel, "laravel-worker_")),
            "the imported pool's worker (min_processes 1 on an empty queue)",
            DEADLINE_S,
        )
        jobs = app.push("work", 10, seconds=0.2)
        wait_for(lambda: len(laravel.finished_jobs()) == 10, "the jobs run", DEADLINE_S)
    finally:
        assert daemon.stop() == 0
    assert sorted(laravel.finished_jobs()) == sorted(j.id for j in jobs)
    assert re.search(r"Processed:  App\\Jobs\\Work", "".join(
        p.read_text(errors="replace") for p in logs.glob("worker*.log")
    ))  # fmt: skip
