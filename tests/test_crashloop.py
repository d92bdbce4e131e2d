"""A crash-looping worker (exit 12 on --memory, restarted at once) is counted per pool from
supervisord's log, logged, alerted above a rate and exported as a metric."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoscaler.daemon.crashloop import CrashWatch
from autoscaler.supervisord.exits import ExitReader, crashes_by_pool, parse_exits
from autoscaler.testing.sandbox import Sandbox, SandboxPool
from autoscaler.testing.stack import free_port
from tests.act_helpers import wait_for
from tests.conftest import require_binary
from tests.decide_helpers import make_policy
from tests.policy_helpers import write_policy
from tests.test_daemon_e2e import DaemonProcess

LOG = """\
2026-01-01 12:00:00,100 INFO spawned: 'mail-worker_00' with pid 10
2026-01-01 12:00:01,100 INFO success: mail-worker_00 entered RUNNING state
2026-01-01 12:00:02,200 WARN exited: mail-worker_00 (exit status 12; not expected)
2026-01-01 12:00:02,300 INFO exited: mail-worker_01 (exit status 0; expected)
2026-01-01 12:00:03,000 WARN exited: other_00 (terminated by SIGKILL; not expected)
"""


def test_exits_are_read_from_supervisords_log_once_each() -> None:
    exits = parse_exits(LOG)
    assert [(e.name, e.how, e.expected) for e in exits] == [
        ("mail-worker_00", "exit status 12", False),
        ("mail-worker_01", "exit status 0", True),
        ("other_00", "terminated by SIGKILL", False),
    ]
    reader = ExitReader()
    assert reader.new_exits(LOG) == []  # the first read only marks where to start
    more = (
        LOG + "2026-01-01 12:00:04,000 WARN exited: mail-worker_00 (exit status 12; not expected)\n"
    )
    assert [e.stamp for e in reader.new_exits(more)] == ["2026-01-01 12:00:04,000"]
    assert reader.new_exits(more) == []  # the same tail again: nothing new
    policies = {"mail": make_policy("mail", program="mail-worker")}
    crashes = crashes_by_pool(parse_exits(more), policies)
    assert [e.stamp for e in crashes["mail"]] == [
        "2026-01-01 12:00:02,200",
        "2026-01-01 12:00:04,000",
    ]


def test_crash_watch_counts_a_minute_and_says_when_a_loop_starts_and_ends() -> None:
    watch = CrashWatch(window_s=60.0, threshold=5)
    assert watch.add("mail", 3, 0.0) == 3 and watch.crossed("mail", 3) is None
    assert watch.add("mail", 2, 10.0) == 5 and watch.crossed("mail", 5) is True
    assert watch.add("mail", 0, 20.0) == 5 and watch.crossed("mail", 5) is None
    assert watch.add("mail", 0, 65.0) == 2 and watch.crossed("mail", 2) is False
    assert watch.add("mail", 0, 75.0) == 0 and watch.pools() == []


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Sandbox]:
    require_binary("redis-server")
    require_binary("supervisord")
    sandbox = Sandbox(tmp_path.resolve() / "s", pools=(SandboxPool(name="mail", queues=("mail",)),))
    sandbox.start()
    # A worker that runs a second and exits 12, as Laravel's does past --memory.
    write_policy(
        sandbox.policies_dir,
        "crash",
        queues=["crash"],
        program="crash-worker",
        command="/bin/sh -c 'sleep 1.3; exit 12' queue:work --queue=crash",
        min_processes=1,
        static_processes=1,
        max_processes=2,
        memory_per_worker_mb=64,
        supervisor={"stdout_logfile": str(sandbox.log_dir / "crash.log"), "startsecs": 1},
    )
    yield sandbox
    sandbox.stop()


@pytest.mark.integration
def test_the_daemon_logs_alerts_and_counts_a_crash_loop(box: Sandbox, tmp_path: Path) -> None:
    port = free_port()
    daemon = DaemonProcess(
        box, tmp_path / "daemon.log", AUTOSCALER_METRICS_PORT=str(port), AUTOSCALER_INTERVAL_S="1"
    )
    try:
        wait_for(lambda: "crash: crash-worker_00 exited unexpectedly (exit status 12)" in
                 daemon.text(), timeout_s=60, what="an exit logged")  # fmt: skip
        wait_for(lambda: "ALERT workers_crashing: crash:" in daemon.text(), timeout_s=90,
                 what="the crash-loop alert")  # fmt: skip
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        found = re.search(r'autoscaler_worker_exits_total\{pool="crash"\} (\d+)', metrics)
        assert found is not None and int(found.group(1)) >= 5, metrics
        assert 'autoscaler_worker_exits_total{pool="mail"}' not in metrics
    finally:
        assert daemon.stop() == 0
