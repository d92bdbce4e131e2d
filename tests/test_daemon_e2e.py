"""The real daemon (`autoscaler run` in a subprocess) on a real stack: redis-server,
supervisord and fake Laravel workers (autoscaler/testing/sandbox.py).

Nothing here asserts on elapsed time: conditions are awaited with generous deadlines, and
"within two ticks" is counted in the daemon's own tick log lines.
"""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from autoscaler.supervisord.rpc import SupervisorClient, SupervisorUnavailable
from autoscaler.testing.sandbox import Sandbox, SandboxPool
from autoscaler.testing.stack import free_port
from tests.conftest import require_binary

DEADLINE_S = 90.0
BURST = SandboxPool(
    name="burst",
    queues=("burst",),
    min_processes=1,
    static_processes=1,
    max_processes=5,
    slo_wait_s=4.0,
    run_time_s=0.5,
    slo_knobs={"scale_down_window_s": 3.0, "startup_s": 1.5},
)
QUIET = SandboxPool(name="quiet", queues=("high", "quiet"), max_processes=2, slo_wait_s=30.0)


def wait_for(condition: Callable[[], object], what: str, timeout_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for: {what}")


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    require_binary("redis-server")
    require_binary("supervisord")
    box = Sandbox(tmp_path.resolve() / "s", pools=(BURST, QUIET)).start()
    yield box
    box.stop()


class DaemonProcess:
    def __init__(self, sandbox: Sandbox, log: Path, **env: str) -> None:
        self.log = log
        self.handle = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "autoscaler", "run"],
            env=sandbox.env(AUTOSCALER_LOG_LEVEL="DEBUG", **env),
            stdout=self.handle,
            stderr=subprocess.STDOUT,
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def ticks(self) -> int:
        return len(re.findall(r"\| tick \d+", self.text()))

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(60)
        self.handle.close()
        return code


def slots(sandbox: Sandbox, pool: str) -> dict[str, tuple[str, int]]:
    """Slot name -> (state, pid) for a sandbox pool, from supervisord."""
    client = SupervisorClient(sandbox.supervisord.url)
    try:
        return {
            p.name: (p.statename, p.pid)
            for p in client.processes()
            if p.name.startswith(f"sandbox-{pool}_")
        }
    except SupervisorUnavailable:
        return {}
    finally:
        client.close()


def running(sandbox: Sandbox, pool: str) -> int:
    return sum(1 for state, _ in slots(sandbox, pool).values() if state == "RUNNING")


def test_burst_scales_up_drains_and_scales_down(sandbox: Sandbox, tmp_path: Path) -> None:
    daemon = DaemonProcess(sandbox, tmp_path / "daemon.log")
    try:
        wait_for(lambda: running(sandbox, "burst") == 1, "the static slot runs")
        wait_for(lambda: daemon.ticks() >= 2, "two ticks")
        ticks_before = daemon.ticks()
        ids = sandbox.push("burst", 80, run_s=0.5)  # 40 s of work for one worker, SLO 4 s
        wait_for(lambda: re.search(r"burst 1 -> [2-5]:", daemon.text()), "a scale-up decision")
        text = daemon.text()
        decided_at = text.index(re.search(r"burst 1 -> [2-5]:", text).group(0))  # type: ignore[union-attr]
        ticks_to_decide = len(re.findall(r"\| tick \d+", text[:decided_at])) - ticks_before
        assert ticks_to_decide <= 2, f"scale-up came {ticks_to_decide} ticks after the burst"
        wait_for(lambda: running(sandbox, "burst") >= 3, "the added workers run")
        wait_for(lambda: len(sandbox.finished_jobs()) >= len(ids), "the backlog drains")
        wait_for(lambda: running(sandbox, "burst") == 1, "back down to min after the window")
        assert not re.search(r"quiet \d+ -> [2-9]", daemon.text()), "the idle pool grew"
    finally:
        assert daemon.stop() == 0
    finished = collections.Counter(sandbox.finished_jobs())
    assert set(finished) == set(ids), "a job was lost"
    assert max(finished.values()) == 1, "a job ran twice"
    # SIGTERM leaves the workers running
    assert running(sandbox, "burst") == 1 and running(sandbox, "quiet") == 1


def test_redis_outage_holds_every_count(sandbox: Sandbox, tmp_path: Path) -> None:
    daemon = DaemonProcess(sandbox, tmp_path / "daemon.log")
    try:
        sandbox.push("burst", 200, run_s=0.5)
        wait_for(lambda: running(sandbox, "burst") >= 3, "scaled up")
        sandbox.redis.stop()
        held = running(sandbox, "burst")
        wait_for(lambda: "redis unavailable" in daemon.text(), "the outage is noticed")
        outage_ticks = daemon.ticks()
        deadline = time.monotonic() + DEADLINE_S
        # Longer than the scale-down window: a daemon trusting missing data would scale down.
        while daemon.ticks() < outage_ticks + 8 and time.monotonic() < deadline:
            assert len(slots(sandbox, "burst")) >= held, "scaled down while Redis was away"
            time.sleep(0.3)
        assert daemon.text().count("redis unavailable") == 1, "logged more than once"
        sandbox.redis.start()
        wait_for(lambda: "redis is back" in daemon.text(), "the recovery is noticed")
        ids = sandbox.push("quiet", 3, run_s=0.1)
        wait_for(lambda: set(ids) <= set(sandbox.finished_jobs()), "normal service after")
        wait_for(lambda: running(sandbox, "burst") == 1, "scales down once it can see again")
    finally:
        assert daemon.stop() == 0


def test_a_queue_key_of_another_type_holds_only_its_pool(sandbox: Sandbox, tmp_path: Path) -> None:
    daemon = DaemonProcess(sandbox, tmp_path / "daemon.log")
    try:
        wait_for(lambda: daemon.ticks() >= 2, "running")
        sandbox.client().set("laravel_database_queues:high", "not a list")  # quiet reads it
        wait_for(lambda: "redis: holding quiet:" in daemon.text(), "only quiet is held")
        assert "holding every count" not in daemon.text()
        ids = sandbox.push("burst", 40, run_s=0.5)  # the other pool is still served
        wait_for(lambda: running(sandbox, "burst") >= 2, "burst still scales")
        wait_for(lambda: set(ids) <= set(sandbox.finished_jobs()), "burst drains")
        sandbox.client().delete("laravel_database_queues:high")
        wait_for(lambda: "redis is back" in daemon.text(), "the recovery is noticed")
    finally:
        assert daemon.stop() == 0


def test_supervisord_restart_adopts_slots(sandbox: Sandbox, tmp_path: Path) -> None:
    daemon = DaemonProcess(sandbox, tmp_path / "daemon.log", AUTOSCALER_INTERVAL_S="2")
    try:
        sandbox.push("burst", 150, run_s=0.5)
        wait_for(lambda: running(sandbox, "burst") >= 3, "scaled up")
        sandbox.supervisord.restart()
        restarted_at = daemon.ticks()
        wait_for(lambda: daemon.ticks() >= restarted_at + 3, "the daemon ticks on")
        wait_for(lambda: running(sandbox, "burst") >= 2, "slots run again")
        names = list(slots(sandbox, "burst"))
        assert len(names) == len(set(names))
        pids = {pid for _state, pid in slots(sandbox, "burst").values() if pid}
        assert len(pids) == len([1 for s, _ in slots(sandbox, "burst").values() if s == "RUNNING"])
        wait_for(lambda: sandbox.client().llen("laravel_database_queues:burst") == 0, "drained")
    finally:
        assert daemon.stop() == 0
    finished = collections.Counter(sandbox.finished_jobs())
    assert max(finished.values()) == 1, "a job ran twice"


def test_one_active_daemon_and_takeover(sandbox: Sandbox, tmp_path: Path) -> None:
    # Both ask for the same metrics port, as two daemons from one settings file would: only
    # the active one may bind it.
    port = str(free_port())
    first = DaemonProcess(sandbox, tmp_path / "first.log", AUTOSCALER_METRICS_PORT=port)
    second: DaemonProcess | None = None
    try:
        wait_for(lambda: "active:" in first.text(), "the first daemon is active")
        second = DaemonProcess(sandbox, tmp_path / "second.log", AUTOSCALER_METRICS_PORT=port)
        wait_for(lambda: "standby: pid" in second.text(), "the second waits as standby")
        once = subprocess.run(
            [sys.executable, "-m", "autoscaler", "run", "--once"],
            env=sandbox.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert once.returncode == 1 and "another daemon is active" in once.stderr
        wait_for(lambda: second.ticks() == 0 and "standby: pid" in second.text(), "still waits")
        assert "active:" not in second.text() and second.process.poll() is None
        first.stop(signal.SIGKILL)  # dies without cleanup
        wait_for(lambda: "taking over" in second.text(), "the standby takes over")
        sandbox.push("burst", 80, run_s=0.5)
        wait_for(lambda: re.search(r"burst \d+ -> [2-5]:", second.text()), "the new one acts")
        wait_for(lambda: "autoscaler_workers{" in scrape(port), "the new one serves metrics")
    finally:
        first.stop()
        if second is not None:
            assert second.stop() == 0


def scrape(port: str) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            return str(reply.read().decode())
    except OSError:
        return ""


def test_invalid_policy_edit_keeps_last_valid(sandbox: Sandbox, tmp_path: Path) -> None:
    daemon = DaemonProcess(sandbox, tmp_path / "daemon.log")
    path = sandbox.policies_dir / "burst.toml"
    try:
        wait_for(lambda: daemon.ticks() >= 2, "running")
        good = path.read_text()
        path.write_text(good.replace("max_processes = 5", "max_processes = 0"))
        wait_for(lambda: "invalid policy, keeping the last valid ones" in daemon.text(), "reported")
        assert "max_processes" in daemon.text() and "ALERT policy_invalid" in daemon.text()
        sandbox.push("burst", 80, run_s=0.5)  # the old policy (max 5) still rules
        wait_for(lambda: running(sandbox, "burst") >= 2, "still scaling by the last valid policy")
        path.write_text(good.replace("max_processes = 5", "max_processes = 4"))
        os.kill(daemon.process.pid, signal.SIGHUP)
        wait_for(lambda: "policies reloaded" in daemon.text(), "the fixed policy is loaded")
        assert daemon.process.poll() is None
    finally:
        assert daemon.stop() == 0


def test_sighup_reloads_at_once(sandbox: Sandbox, tmp_path: Path) -> None:
    # A tick every 10 minutes: only SIGHUP can make the edit take effect within the test.
    daemon = DaemonProcess(sandbox, tmp_path / "daemon.log", AUTOSCALER_INTERVAL_S="600")
    path = sandbox.policies_dir / "burst.toml"
    try:
        wait_for(lambda: daemon.ticks() == 1, "the first tick")
        path.write_text(path.read_text().replace("max_processes = 5", "max_processes = 4"))
        os.kill(daemon.process.pid, signal.SIGHUP)
        wait_for(lambda: "policies reloaded" in daemon.text(), "reloaded on SIGHUP")
        wait_for(lambda: daemon.ticks() == 2, "a tick with the new policies")
    finally:
        assert daemon.stop() == 0


def test_dry_run_changes_nothing(sandbox: Sandbox, tmp_path: Path) -> None:
    log = tmp_path / "dry.log"
    with log.open("wb") as out:
        code = subprocess.run(
            [sys.executable, "-m", "autoscaler", "run", "--once", "--dry-run"],
            env=sandbox.env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=120,
        ).returncode
    assert code == 0
    text = log.read_text()
    assert "dry run: would apply" in text and "+[program:sandbox-burst_00]" in text
    assert not sandbox.include_file.exists()
    assert slots(sandbox, "burst") == {}
    sandbox.redis.stop()  # a tick that held every count is not a success
    once = subprocess.run(
        [sys.executable, "-m", "autoscaler", "run", "--once", "--dry-run"],
        env=sandbox.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert once.returncode == 1 and "redis unavailable" in once.stderr
