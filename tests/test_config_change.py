"""A policy edit that changes a slot's section (its command here) on a real stack (redis-server,
supervisord, the stand-in worker): the slot is replaced surge-first, so even a pool of one slot
always has a RUNNING worker, and the old one finishes its job.

"Always" is checked by a thread that samples supervisord every 0.2 s (RunningSampler); no
assertion is about elapsed time.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from autoscaler.act.retire_state import STATE_NAME, load
from autoscaler.policy.loader import load_policies
from autoscaler.supervisord.include_file import default_state_dir, section_names
from autoscaler.supervisord.rpc import SupervisorClient
from autoscaler.testing.sandbox import PREFIX, Sandbox
from tests.act_helpers import make_actuator, wait_for
from tests.conftest import require_binary
from tests.test_worker_lifecycle import (
    RunningSampler,
    fixed_pool,
    running_pids,
    start_pool,
    surging,
)

SLOT = "sandbox-one_00"


@pytest.fixture
def one(tmp_path: Path) -> Iterator[Sandbox]:
    """A sandbox whose pool `one` is held at exactly one worker."""
    require_binary("redis-server")
    require_binary("supervisord")
    box = Sandbox(tmp_path.resolve() / "s", pools=(fixed_pool("one", 1),)).start()
    yield box
    box.stop()


def edit_command(box: Sandbox, extra: str) -> None:
    """What an operator does: append arguments to the pool's command in its policy file."""
    path = box.policies_dir / "one.toml"
    lines = path.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("command = "))
    lines[index] = lines[index][:-1] + f' {extra}"'
    path.write_text("\n".join(lines) + "\n")


def commands(box: Sandbox) -> dict[str, str]:
    client = SupervisorClient(box.supervisord.url)
    try:
        return {c["name"]: c["command"] for c in client.config_info()}
    finally:
        client.close()


def supervised(box: Sandbox) -> set[str]:
    """The names of the processes supervisord has now, in any state."""
    client = SupervisorClient(box.supervisord.url)
    try:
        return {p.name for p in client.processes()}
    finally:
        client.close()


def apply_until_done(
    box: Sandbox, *, done: Callable[[], bool], converged: bool = True, timeout_s: float = 90
) -> None:
    """`autoscaler scale`-like applies (policies read from disk each time) until `done` (and
    an apply found nothing left to do, unless `converged` is False)."""
    actuator, client = make_actuator(
        box.supervisord.url, box.include_file, load_policies(box.policies_dir)
    )

    def step() -> bool:
        actuator.policies = load_policies(box.policies_dir)
        report = actuator.apply(None)
        assert report.error is None, report.error
        return (report.converged or not converged) and done()

    try:
        wait_for(step, timeout_s=timeout_s, what="the change applied")
    finally:
        client.close()


def job_in_hand(box: Sandbox) -> bool:
    client = box.client()
    try:
        return bool(client.zcard(f"{PREFIX}queues:one:reserved"))
    finally:
        client.close()


def finished_by(box: Sandbox) -> dict[str, int]:
    """Job id -> the PID of the worker that finished it."""
    if not box.record.exists():
        return {}
    rows = [line.split() for line in box.record.read_text().splitlines() if line]
    return {row[0]: int(row[5]) for row in rows if row[6] == "done"}


def daemon(box: Sandbox, log: Path) -> subprocess.Popen[bytes]:
    with log.open("a") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "autoscaler", "run"],
            env=box.env(AUTOSCALER_INTERVAL_S="0.5"),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.mark.integration
def test_a_one_slot_pool_keeps_a_worker_through_a_command_change(one: Sandbox) -> None:
    old_pid = start_pool(one, 1)[SLOT]
    (job,) = one.push("one", 1, run_s=3.0)
    wait_for(lambda: job_in_hand(one), what="the old worker has the job")
    state_file = default_state_dir(one.include_file) / STATE_NAME
    with RunningSampler(one.supervisord.url, "sandbox-one_") as sampler:
        edit_command(one, "--memory=100")
        apply_until_done(one, done=lambda: not state_file.exists())
    idle = sum(1 for count in sampler.counts if count == 0)
    print(f"RUNNING workers: min {min(sampler.counts)}, 0 in {idle}/{len(sampler.counts)} samples")
    assert min(sampler.counts) >= 1  # never without a RUNNING worker
    assert finished_by(one) == {job: old_pid}  # the old worker finished its job...
    log = (one.supervisord.directory / "supervisord.log").read_text()
    assert f"stopped: {SLOT} (exit status 0)" in log  # ...and exited 0 on SIGTERM
    ((name, pid),) = running_pids(one, "sandbox-one_").items()
    assert pid != old_pid and commands(one)[name].endswith("--memory=100")
    assert section_names(one.include_file.read_text()) == [name]


@pytest.mark.integration
def test_a_second_edit_midway_ends_on_the_latest_command(one: Sandbox) -> None:
    old_pid = start_pool(one, 1)[SLOT]
    state_file = default_state_dir(one.include_file) / STATE_NAME
    with RunningSampler(one.supervisord.url, "sandbox-one_") as sampler:
        edit_command(one, "--memory=100")
        apply_until_done(one, done=lambda: surging(state_file), converged=False)  # new slot
        edit_command(one, "--tries=2")
        apply_until_done(one, done=lambda: not state_file.exists())
    assert min(sampler.counts) >= 1
    ((name, pid),) = running_pids(one, "sandbox-one_").items()
    assert pid != old_pid and commands(one)[name].endswith("--memory=100 --tries=2")
    assert len(section_names(one.include_file.read_text())) == 1


@pytest.mark.integration
def test_a_new_command_that_does_not_start_keeps_the_old_worker_and_alerts(
    one: Sandbox, tmp_path: Path
) -> None:
    old = start_pool(one, 1)
    marker = tmp_path / "broken-deploy"
    marker.touch()  # the new command does not boot
    log = tmp_path / "daemon.log"
    state_file = default_state_dir(one.include_file) / STATE_NAME
    process = daemon(one, log)
    try:
        with RunningSampler(one.supervisord.url, "sandbox-one_") as sampler:
            edit_command(one, f"--refuse-start-if {marker}")
            wait_for(
                lambda: "ALERT config_change_failed: one" in log.read_text(),
                timeout_s=90,
                what="the alert",
            )
            # The failed slot is removed; the old worker and its section stay.
            wait_for(lambda: len(section_names(one.include_file.read_text())) == 1, timeout_s=60)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    assert min(sampler.counts) >= 1
    assert running_pids(one, "sandbox-one_") == old
    assert "did not start" in log.read_text() and f"{SLOT} kept" in log.read_text()
    assert "refuse-start-if" not in commands(one)[SLOT]  # still the old command
    assert "one" in load(state_file).config_failed  # not tried again at every tick


@pytest.mark.integration
@pytest.mark.slow
def test_a_daemon_killed_midway_is_finished_by_the_next_one(one: Sandbox, tmp_path: Path) -> None:
    old_pid = start_pool(one, 1)[SLOT]
    (job,) = one.push("one", 1, run_s=3.0)
    wait_for(lambda: job_in_hand(one), what="the old worker has the job")
    state_file = default_state_dir(one.include_file) / STATE_NAME
    log = tmp_path / "daemon.log"
    with RunningSampler(one.supervisord.url, "sandbox-one_") as sampler:
        first = daemon(one, log)
        edit_command(one, "--memory=100")
        wait_for(lambda: surging(state_file), timeout_s=60, what="the new slot added")
        first.kill()  # SIGKILL mid-swap: no clean-up
        first.wait(30)
        midway = load(state_file).retiring["one"]
        assert midway.origin == "config" and midway.slot == SLOT
        assert len(section_names(one.include_file.read_text())) == 2  # old and new sections
        second = daemon(one, log)
        try:
            wait_for(lambda: not state_file.exists(), timeout_s=90, what="the swap finished")
            # The swap ends when the old worker is told to stop; it is STOPPING, finishing its
            # job, until it exits and the daemon removes its drained slot.
            wait_for(lambda: SLOT not in supervised(one), timeout_s=60, what="the old slot gone")
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(60)
    assert min(sampler.counts) >= 1
    assert finished_by(one) == {job: old_pid}  # the old worker finished its job...
    supervisord_log = (one.supervisord.directory / "supervisord.log").read_text()
    assert f"stopped: {SLOT} (exit status 0)" in supervisord_log  # ...and exited 0 on SIGTERM
    ((name, pid),) = running_pids(one, "sandbox-one_").items()
    assert name == midway.replacement and pid != old_pid
    assert commands(one)[name].endswith("--memory=100")
    assert section_names(one.include_file.read_text()) == [name]
