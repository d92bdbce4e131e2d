"""`status` shows the active daemon's last decision (published in the state directory), and
says when it recomputed the desired count itself instead."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoscaler.cli.main import main
from autoscaler.daemon.lock import ControllerLock
from autoscaler.daemon.published import DECISIONS_NAME, active_daemon_pid, read_published
from autoscaler.supervisord.include_file import default_state_dir
from autoscaler.testing.sandbox import Sandbox, SandboxPool
from tests.act_helpers import wait_for
from tests.cli_sandbox import cli_sandbox
from tests.test_daemon_e2e import DaemonProcess

MAIL = SandboxPool(name="mail", queues=("mail",), min_processes=1, static_processes=2)


@pytest.fixture
def box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    with cli_sandbox(tmp_path, monkeypatch, MAIL) as sandbox:
        yield sandbox


def _status(capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, object], str]:
    assert main(["status", "--window", "0", "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert main(["status", "--window", "0"]) == 0
    return row, capsys.readouterr().out


@pytest.mark.integration
def test_status_shows_what_the_running_daemon_decided(
    box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_dir = default_state_dir(box.include_file)
    row, table = _status(capsys)
    assert row["desired_source"] == "status"
    assert "desired recomputed by status from this sample (no daemon is active)" in table

    daemon = DaemonProcess(box, tmp_path / "daemon.log")
    try:
        wait_for((state_dir / DECISIONS_NAME).exists, what="a published decision")
        pid = active_daemon_pid(state_dir)
        assert pid == daemon.process.pid
        published = read_published(state_dir)
        assert published is not None and published.pid == pid
        row, table = _status(capsys)
        assert row["desired_source"] == "daemon"
        assert "desired: the daemon's decision at " in table and f"(pid {pid})" in table
        latest = read_published(state_dir)
        assert latest is not None
        assert row["desired_reason"] in {d.reason for d in (published.pools["mail"],
                                                            latest.pools["mail"])}  # fmt: skip
    finally:
        assert daemon.stop() == 0
    assert active_daemon_pid(state_dir) is None
    row, table = _status(capsys)
    assert row["desired_source"] == "status" and "no daemon is active" in table


@pytest.mark.integration
def test_status_prefers_a_fresh_daemon_decision_over_its_own(
    box: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    """The daemon's memory (a scale-down window, smoothed rates) makes its count differ from
    one sample's: status shows the daemon's, however different, while it is fresh."""
    state_dir = default_state_dir(box.include_file)
    lock = ControllerLock(state_dir=state_dir)
    assert lock.acquire()  # this test process plays the active daemon
    decision = {
        "strategy": "slo",
        "current": 1,
        "desired": 5,
        "reason": "held by the daemon's scale-down window",
        "held": False,
    }
    published = {"pid": 1, "interval_s": 1.0, "dry_run": False, "pools": {"mail": decision}}
    try:
        (state_dir / DECISIONS_NAME).write_text(json.dumps({**published, "at_s": time.time()}))
        row, table = _status(capsys)
        assert row["desired"] == 5 and row["desired_reason"] == decision["reason"]
        assert row["desired_source"] == "daemon"

        old = time.time() - 120
        (state_dir / DECISIONS_NAME).write_text(json.dumps({**published, "at_s": old}))
        row, table = _status(capsys)
        assert row["desired_source"] == "status" and row["desired"] != 5
        assert "last decision is 120s old" in table
    finally:
        lock.release()
