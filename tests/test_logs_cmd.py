"""`autoscaler logs POOL`: slot logs merged in time order, followed across new slots and
rotation (unit tests on files, then a real supervisord rotating real workers' logs)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from autoscaler.cli.main import main
from autoscaler.observe.poollog import PoolLog
from autoscaler.testing.laravel import make_payload, push
from autoscaler.testing.stack import RedisServer, Supervisord
from tests.act_helpers import wait_for
from tests.policy_helpers import write_policy

PREFIX = "laravel_database_"


def _line(stamp: str, text: str) -> str:
    return f"  2026-01-01 {stamp} App\\Jobs\\{text} .... RUNNING\n"


def test_last_lines_merge_every_slot_in_time_order(tmp_path: Path) -> None:
    a, b = tmp_path / "w_00.log", tmp_path / "w_01.log"
    a.write_text(_line("10:00:01", "A1") + "   a continuation line\n" + _line("10:00:04", "A2"))
    b.write_text(_line("10:00:02", "B1") + _line("10:00:03", "B2") + _line("10:00:05", "B3"))
    log = PoolLog()
    lines = log.last({str(a): "w_00", str(b): "w_01"}, 5)
    assert [(line.slot, line.text.split("\\")[-1].strip()[:2]) for line in lines] == [
        ("w_00", "a "),  # the line without a stamp keeps its place after A1
        ("w_01", "B1"),
        ("w_01", "B2"),
        ("w_00", "A2"),
        ("w_01", "B3"),
    ]
    log.close()


def test_follow_reads_new_slots_rotation_and_truncation(tmp_path: Path) -> None:
    a, b = tmp_path / "w_00.log", tmp_path / "w_01.log"
    a.write_text(_line("10:00:01", "old"))
    paths = {str(a): "w_00", str(b): "w_01"}
    log = PoolLog()
    assert [line.text for line in log.last(paths, 1)] == [_line("10:00:01", "old").rstrip()]
    assert log.poll(paths) == []

    with a.open("a") as handle:
        handle.write(_line("10:00:02", "A2") + "  half a li")
    b.write_text(_line("10:00:01", "B1"))  # a slot added since: read from its start
    assert [(x.slot, x.key) for x in log.poll(paths)] == [
        ("w_01", "2026-01-01 10:00:01"),
        ("w_00", "2026-01-01 10:00:02"),
    ]
    # Rotation as Supervisor does it: the rest is written to the old file, which is renamed
    # to .1, and a new file is opened. Both the rest and the new file's lines are read.
    with a.open("a") as handle:
        handle.write("ne\n")
    os.rename(a, f"{a}.1")
    a.write_text(_line("10:00:03", "A3"))
    texts = [x.text.strip() for x in log.poll(paths)]
    assert texts == ["half a line", _line("10:00:03", "A3").strip()]
    # Truncation (copytruncate): read again from the start.
    b.write_text("")
    assert log.poll(paths) == []
    with b.open("a") as handle:
        handle.write(_line("10:00:09", "B9"))
    assert [x.text.strip() for x in log.poll(paths)] == [_line("10:00:09", "B9").strip()]
    log.close()


@pytest.mark.integration
def test_logs_follows_a_real_pool_across_scale_up_and_rotation(
    supervisord: Supervisord,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policies, logs = tmp_path / "policies", tmp_path / "logs"
    logs.mkdir()
    command = (
        f"{sys.executable} -m autoscaler.testing.worker --redis-url {redis_server.url} "
        "--queue=mail --sleep=0.05 --timeout=30"
    )
    write_policy(
        policies,
        "mail",
        queues=["mail"],
        program="mail-worker",
        command=command,
        supervisor={
            "stdout_logfile": str(logs / "mail.log"),
            "stdout_logfile_maxbytes": "1KB",  # rotates after a few jobs
            "stdout_logfile_backups": 8,  # none deleted before the follower reads it
            "stopwaitsecs": 40,
        },
    )
    env = {
        "AUTOSCALER_SUPERVISOR_URL": supervisord.url,
        "AUTOSCALER_INCLUDE_FILE": str(supervisord.include_dir / "workers.conf"),
        "AUTOSCALER_POLICIES_DIR": str(policies),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    assert main(["scale", "mail", "1", "--wait", "30"]) == 0
    printed = tmp_path / "follower.out"
    with printed.open("w") as sink:
        follower = subprocess.Popen(
            [sys.executable, "-m", "autoscaler", "logs", "mail", "-f", "-n", "5"],
            cwd=tmp_path,
            env={**os.environ, **env},
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def done_lines() -> int:
        return sum("DONE" in line for line in printed.read_text().splitlines())

    try:
        # Its first read printed slot 0's banner: from here on every line is followed.
        wait_for(lambda: printed.stat().st_size > 0, timeout_s=60, what="the first read")
        assert main(["scale", "mail", "2", "--wait", "30"]) == 0  # a slot added after -f
        for number in range(40):  # enough output for slot 0's 1 KB file to rotate
            job = make_payload(job_class=f"App\\Jobs\\Job{number}", run_s=0.0)
            push(redis_client, PREFIX, "mail", job)
            time.sleep(0.02)
        wait_for(lambda: redis_client.llen(f"{PREFIX}queues:mail") == 0, what="jobs done")
        wait_for(lambda: Path(f"{logs}/mail_00.log.1").exists(), what="a rotation")
        wait_for(lambda: done_lines() >= 40, timeout_s=60, what="every DONE line printed")
        time.sleep(1.0)  # two more polls: nothing is printed twice
    finally:
        follower.terminate()
        follower.wait(timeout=10)
    out = printed.read_text()
    lines = out.splitlines()
    assert lines
    assert all(line.startswith(("mail-worker_00 | ", "mail-worker_01 | ")) for line in lines)
    done = [line for line in lines if "DONE" in line]
    # Every job's DONE line is printed once, whichever slot ran it and whichever file of
    # slot 0 (rotated or new) held it; slot 1, added after -f started, is among them.
    for number in range(40):
        assert sum(f"\\Job{number} " in line for line in done) == 1, (number, out)
    assert any(line.startswith("mail-worker_01 | ") for line in done)
    assert len(done) == 40, out
