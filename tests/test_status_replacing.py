"""`status` shows the surge-first replacements in progress (cli/replacing_view.py) from the state
file the applies write (act/retire_state.py, through the real Replacer), and a damaged file as
a problem, never a crash; and, on a real stack, an `autoscaler restart` in progress."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoscaler.act.outdated import Outdated
from autoscaler.act.reconcile import SlotChange, our_slots
from autoscaler.act.restart import begin
from autoscaler.act.retire import CONFIG_RETRY_S, Replacer
from autoscaler.act.retire_state import (
    STATE_NAME,
    ReplaceState,
    Restart,
    Retirement,
    load,
    save,
)
from autoscaler.cli.main import main
from autoscaler.cli.replacing_view import pool_replacement, read_replacements, replacement_notes
from autoscaler.daemon.alerts import Alerter
from autoscaler.daemon.lock import ControllerLock
from autoscaler.daemon.published import publish
from autoscaler.daemon.recycler import Recycler
from autoscaler.decide.plan import Plan, PoolDecision
from autoscaler.observe.observation import Observation
from autoscaler.observe.process_memory import SlotUsage
from autoscaler.policy.loader import load_policies
from autoscaler.supervisord.include_file import default_state_dir
from autoscaler.testing.sandbox import Sandbox, SandboxPool
from tests.act_helpers import make_actuator, wait_for
from tests.cli_sandbox import cli_sandbox
from tests.test_lifecycle_logic import POLICIES, proc, recycler_inputs

NOW_S = 1000.0


def sample(**states: str) -> Observation:
    """An observation at NOW_S whose mail slots have these states."""
    slots = tuple(
        SlotUsage(slot=name, pool="mail", pid=0, state=state, rss_mb=None, cpu_percent=None,
                  age_s=None, children=0, in_flight=None)
        for name, state in states.items()
    )  # fmt: skip
    return Observation(at_s=NOW_S, interval_s=5.0, pools={}, slots=slots)


def recycle_started(state_dir: Path) -> None:
    """The daemon's recycling of mail_01, as two applies leave it: asked at 940, mail_02 added."""
    replacer = Replacer(path=state_dir / STATE_NAME, clock=lambda: 940.0)
    replacer.request(pool="mail", slot="mail_01", pid=2, reason="RSS 300 MB > max_rss_mb 200")
    slots = our_slots(POLICIES, ["mail_00", "mail_01"], [proc("mail_00", pid=1),
                                                         proc("mail_01", pid=2)])  # fmt: skip
    replacer.adjust(POLICIES, slots, None, (), log=False)
    replacer.settle(slots, [SlotChange(slot="mail_02", pool="mail", action="add", reason="")])


@pytest.mark.parametrize(
    ("states", "step"),
    [
        (
            {"mail_01": "RUNNING", "mail_02": "STARTING"},
            "waiting for the new one to run (STARTING)",
        ),
        ({"mail_01": "RUNNING"}, "waiting for the new one to run (not started yet)"),
        ({"mail_01": "RUNNING", "mail_02": "RUNNING"}, "the new one runs: the next apply stops"),
        ({"mail_01": "STOPPING", "mail_02": "RUNNING"}, "the old one finishes its job"),
    ],
)
def test_a_recycle_in_progress_names_both_slots_why_since_when_and_its_step(
    tmp_path: Path, states: dict[str, str], step: str
) -> None:
    recycle_started(tmp_path)
    replacements = read_replacements(tmp_path)
    assert replacements.problem is None
    row = pool_replacement(replacements, "mail", sample(**states))
    shown = row["replacement"]
    assert shown["old_slot"] == "mail_01" and shown["old_pid"] == 2
    assert shown["new_slot"] == "mail_02" and shown["origin"] == "recycle"
    assert shown["since_s"] == 940.0 and shown["age_s"] == 60.0
    assert shown["step"].startswith(step)
    assert row["restart"] is None and row["config_change_failed"] is None
    (line,) = replacement_notes(replacements, POLICIES, sample(**states))
    assert line.startswith("replacing in mail: mail_01 (pid 2) -> mail_02, recycling: RSS 300 MB")
    assert "(60s): " + step in line


def test_a_restart_shows_its_count_and_the_step_in_progress(tmp_path: Path) -> None:
    path = tmp_path / STATE_NAME
    two = [proc("mail_00", pid=1), proc("mail_01", pid=2)]
    slots = our_slots(POLICIES, ["mail_00", "mail_01"], two)
    state = ReplaceState()
    save(path, state)  # nothing in progress: no file
    assert not path.exists() and read_replacements(tmp_path) == read_replacements(tmp_path)
    assert replacement_notes(read_replacements(tmp_path), POLICIES, sample()) == []
    # What restart.begin records, then one apply of the real Replacer
    state.restarts["mail"] = Restart(
        pool="mail", old={"mail_00": 1, "mail_01": 2}, running_at_start=2, owner_pid=4321,
        started_s=900.0,
    )  # fmt: skip
    save(path, state)
    replacer = Replacer(path=path, clock=lambda: 910.0)
    replacer.adjust(POLICIES, slots, None, (), log=False)
    replacer.settle(slots, [SlotChange(slot="mail_02", pool="mail", action="add", reason="")])
    replacements = read_replacements(tmp_path)
    row = pool_replacement(replacements, "mail", sample(mail_00="RUNNING"))
    assert row["restart"] == {"started_s": 900.0, "owner_pid": 4321, "replaced": 0,
                              "remaining": 2, "failed": None}  # fmt: skip
    assert row["replacement"]["origin"] == "restart" and row["replacement"]["new_slot"] == "mail_02"
    lines = replacement_notes(replacements, POLICIES, sample(mail_00="RUNNING"))
    assert lines[0].startswith("replacing in mail: mail_00 (pid 1) -> mail_02, restart, since")
    assert "restart of mail since" in lines[1] and "0 replaced, 2 to go" in lines[1]
    assert "pid 4321" in lines[1]


def test_a_configuration_that_did_not_start_is_shown_held_for_its_retry(tmp_path: Path) -> None:
    path = tmp_path / STATE_NAME
    save(path, ReplaceState(retiring={"mail": Retirement(
        pool="mail", slot="mail_00", pid=1, reason="configuration changed: command",
        origin="config", since_s=950.0, replacement="mail_02", members_before=2, wanted="abc",
    )}))  # fmt: skip
    outdated = Outdated(sections={"mail_00": "[program:mail_00]\n"}, pools={"mail": ["mail_00"]},
                        reasons={"mail_00": "configuration changed: command"},
                        wanted={"mail": "abc"})  # fmt: skip
    processes = [proc("mail_00", pid=1), proc("mail_01", pid=2), proc("mail_02", "FATAL", pid=3)]
    slots = our_slots(POLICIES, ["mail_00", "mail_01", "mail_02"], processes)
    replacer = Replacer(path=path, clock=lambda: 960.0)
    replacer.adjust(POLICIES, slots, None, (), outdated, log=False)
    replacer.settle(slots, [])
    assert replacer.config_failures == {"mail"}  # the daemon alerts config_change_failed
    replacements = read_replacements(tmp_path)
    row = pool_replacement(replacements, "mail", sample())
    assert row["replacement"] is None
    failed = row["config_change_failed"]
    assert failed["at_s"] == 960.0 and failed["retry_in_s"] == CONFIG_RETRY_S - 40.0
    assert "mail_02 did not start (FATAL: spawn failed); mail_00 kept" in failed["why"]
    (line,) = replacement_notes(replacements, POLICIES, sample())
    assert line.startswith("configuration change of mail failed at ")
    assert line.endswith(f"next try in {CONFIG_RETRY_S - 40:.0f}s or at the next policy edit")


def written_then_damaged(path: Path, how: str) -> None:
    recycle_started(path.parent)
    text = path.read_text()
    assert load(path).retiring  # the writer's own file reads back
    damaged = {
        "half-written": text[: len(text) // 2],
        "not utf-8": None,
        "a list": "[]",
        "an entry of the wrong shape": json.dumps({"retiring": {"mail": 5}}),
        "a time that is text": text.replace('"since_s": 940.0', '"since_s": "yesterday"'),
        "an unknown origin": text.replace('"origin": "recycle"', '"origin": "magic"'),
    }[how]
    if damaged is None:
        path.write_bytes(b"\xff\xfe{" + text.encode())
    else:
        assert damaged != text
        path.write_text(damaged)


@pytest.mark.parametrize(
    "how",
    ["half-written", "not utf-8", "a list", "an entry of the wrong shape", "a time that is text",
     "an unknown origin"],
)  # fmt: skip
def test_a_damaged_state_file_is_unreadable_with_its_reason_not_a_crash(
    tmp_path: Path, how: str
) -> None:
    path = tmp_path / STATE_NAME
    written_then_damaged(path, how)
    replacements = read_replacements(tmp_path)
    assert replacements.problem is not None and replacements.problem.startswith("unreadable: ")
    assert str(path) in replacements.problem
    assert replacements.state.empty
    row = pool_replacement(replacements, "mail", sample())
    assert row["replacements_unknown"] == replacements.problem and row["replacement"] is None
    (line,) = replacement_notes(replacements, POLICIES, sample())
    assert line == f"replacements in progress unknown: {replacements.problem}"


def test_a_state_path_that_cannot_be_read_is_unreadable(tmp_path: Path) -> None:
    (tmp_path / STATE_NAME).mkdir()
    problem = read_replacements(tmp_path).problem
    assert problem is not None and "cannot read" in problem


# -- on a real stack -----------------------------------------------------------------------------
MAIL = SandboxPool(name="mail", queues=("mail",), min_processes=2, static_processes=2)


@pytest.fixture
def box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    with cli_sandbox(tmp_path, monkeypatch, MAIL) as sandbox:
        yield sandbox


@pytest.mark.integration
def test_status_shows_a_restart_in_progress(
    box: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    actuator, client = make_actuator(
        box.supervisord.url, box.include_file, load_policies(box.policies_dir)
    )
    try:
        wait_for(lambda: actuator.apply({"mail": 2}).settled, timeout_s=60, what="mail running")
        # What `autoscaler restart mail` does first: record the restart, then an apply (the
        # surge); the next one would stop the old worker once the new one runs.
        begin(actuator, ["mail"], owner_pid=424242)
        assert actuator.apply({"mail": 2}).error is None
    finally:
        client.close()
    step = load(default_state_dir(box.include_file) / STATE_NAME).retiring["mail"]
    assert step.origin == "restart" and step.replacement is not None

    assert main(["status", "--window", "0", "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["replacement"]["old_slot"] == step.slot
    assert row["replacement"]["new_slot"] == step.replacement
    assert row["replacement"]["step"].startswith(("waiting for the new one", "the new one runs"))
    assert row["restart"]["owner_pid"] == 424242 and row["restart"]["remaining"] == 2
    assert row["replacements_unknown"] is None
    assert main(["status", "--window", "0"]) == 0
    table = capsys.readouterr().out
    shown = f"replacing in mail: {step.slot} (pid {step.pid}) -> {step.replacement}, restart"
    assert shown in table
    assert "restart of mail since " in table and "0 replaced, 2 to go" in table


# -- held back for memory room: in the daemon's memory, published with its decision -------------
def test_the_recycler_names_the_replacements_held_back_for_memory_room(tmp_path: Path) -> None:
    replacer = Replacer(path=tmp_path / STATE_NAME)
    recycler = Recycler(replacer=replacer, alerter=Alerter(interval_s=600))
    recycler.tick(*recycler_inputs(room_mb=50))  # one more worker (100 MB) does not fit
    assert not replacer.requested()
    why = recycler.waiting_for_room["p"]
    assert why.startswith("recycling p-worker_01 (RSS 260 MB > max_rss_mb 200")
    assert "(100 MB) does not fit the memory budget (50 MB free)" in why
    assert replacer.may_surge is not None
    assert not replacer.may_surge("p", "configuration change")  # a config change too
    assert recycler.waiting_for_room["p"] == why  # the recycle's reason is kept
    recycler.tick(*recycler_inputs(room_mb=500))
    assert recycler.waiting_for_room == {} and replacer.requested()["p"].slot == "p-worker_01"
    assert not replacer.may_surge("q", "restart")  # not a pool of these policies: not waiting
    recycler.tick(*recycler_inputs(room_mb=150))  # the recycle takes 100: 50 left for config
    assert not replacer.may_surge("p", "configuration change")
    assert recycler.waiting_for_room["p"].startswith("configuration change: one more worker")


@pytest.mark.integration
def test_status_shows_what_the_daemon_holds_back_for_memory_room(
    box: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    state_dir = default_state_dir(box.include_file)
    lock = ControllerLock(state_dir=state_dir)
    assert lock.acquire()  # this test process plays the active daemon
    why = (
        "configuration change: one more worker (100 MB) does not fit the memory budget (5 MB free)"
    )
    decision = PoolDecision(pool="mail", strategy="static", current=2, desired=2, reason="r")
    try:
        plan = Plan(at_s=time.time(), decisions={"mail": decision}, memory_limit_mb=0.0,
                    memory_planned_mb=0.0)  # fmt: skip
        publish(state_dir, plan, interval_s=1.0, dry_run=False, waiting_for_room={"mail": why})
        assert main(["status", "--window", "0", "--format", "json"]) == 0
        (row,) = json.loads(capsys.readouterr().out)
        assert row["waiting_for_room"] == why and row["desired_source"] == "daemon"
        assert main(["status", "--window", "0"]) == 0
        assert f"waiting for memory room in mail: {why}" in capsys.readouterr().out

        plan.at_s = time.time() - 120  # stale: status recomputes, and shows no hold-back
        publish(state_dir, plan, interval_s=1.0, dry_run=False, waiting_for_room={"mail": why})
        assert main(["status", "--window", "0", "--format", "json"]) == 0
        (row,) = json.loads(capsys.readouterr().out)
        assert row["waiting_for_room"] is None and row["desired_source"] == "status"
    finally:
        lock.release()
