"""`autoscaler pause` / `resume`: a paused pool's workers finish their job and stop, nothing
starts them again (the daemon, `scale`, another pool's scale) until it is resumed; decide
takes the paused pools as input (pure), status shows them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoscaler.cli.main import main
from autoscaler.decide.core import decide
from autoscaler.decide.plan import ControllerState, MemoryBudget
from autoscaler.observe.observation import Observation
from autoscaler.supervisord.include_file import default_state_dir
from autoscaler.supervisord.paused import PausedFileError, read_paused
from autoscaler.supervisord.rpc import SupervisorClient
from autoscaler.testing.sandbox import Sandbox, SandboxPool
from tests.act_helpers import run_once, wait_for
from tests.cli_sandbox import cli_sandbox
from tests.decide_helpers import make_policy, pool_obs

MAIL = SandboxPool(name="mail", queues=("mail",), min_processes=1, static_processes=2)
OTHER = SandboxPool(name="other", queues=("other",), min_processes=1, static_processes=1)


def test_decide_keeps_a_paused_pool_at_zero_below_its_min() -> None:
    policies = {"q": make_policy("q", min_processes=2), "r": make_policy("r")}
    observation = Observation(
        at_s=100.0,
        interval_s=5.0,
        pools={"q": pool_obs("q", pending=50, oldest_wait_s=60.0), "r": pool_obs("r")},
        paused=frozenset({"q"}),
    )
    plan, state = decide(
        observation, policies, ControllerState(), now_s=100.0, budget=MemoryBudget(budget_mb=1e6)
    )
    assert plan.counts() == {"q": 0, "r": plan.counts()["r"]}
    assert plan.decisions["q"].reason.startswith("paused")
    assert state.last_desired["q"] == 0
    unpaused = Observation(at_s=100.0, interval_s=5.0, pools=observation.pools)
    plan, _ = decide(unpaused, policies, state, now_s=105.0, budget=MemoryBudget(budget_mb=1e6))
    assert plan.counts()["q"] > 2  # resumed: the backlog decides again


@pytest.fixture
def box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    with cli_sandbox(tmp_path, monkeypatch, MAIL, OTHER) as sandbox:
        yield sandbox


def _mail_slots(client: SupervisorClient) -> dict[str, str]:
    return {
        p.name: p.statename
        for p in client.processes()
        if p.name.startswith("sandbox-mail_") and p.group == p.name
    }


@pytest.mark.integration
def test_pause_drains_survives_the_daemon_and_resume_restores(
    box: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    client = SupervisorClient(box.supervisord.url)
    assert main(["scale", "mail", "2", "--wait", "30"]) == 0
    assert main(["scale", "other", "1", "--wait", "30"]) == 0
    (job,) = box.push("mail", 1, run_s=2.0)
    wait_for(lambda: box.client().llen("laravel_database_queues:mail") == 0, what="job taken")
    capsys.readouterr()

    assert main(["pause", "mail", "--reason", "incident 42", "--wait", "30"]) == 0
    out = capsys.readouterr().out
    assert "mail: paused (it had 2 slot(s)" in out
    assert job in box.finished_jobs()  # the busy worker finished its job before stopping
    assert _mail_slots(client) == {}
    state_dir = default_state_dir(box.include_file)
    pause = read_paused(state_dir)["mail"]
    assert pause.count_before == 2 and pause.reason == "incident 42"

    # Nothing starts it again: another pool's scale, the daemon's tick (min_processes is 1
    # and jobs wait), a refused `scale` of the pool itself.
    box.push("mail", 3, run_s=0.1)
    assert main(["scale", "other", "2", "--wait", "30"]) == 0
    assert run_once(Path.cwd()) == 0
    assert main(["scale", "mail", "3"]) == 2
    assert "mail is paused" in capsys.readouterr().err
    assert _mail_slots(client) == {}
    assert box.client().llen("laravel_database_queues:mail") == 3  # the jobs are kept

    assert main(["status", "--window", "0", "--format", "json"]) == 0
    rows = {row["pool"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["mail"]["paused"] and rows["mail"]["desired"] == 0
    assert not rows["other"]["paused"]
    assert main(["status", "--window", "0"]) == 0
    table = capsys.readouterr().out
    assert "0 paused" in table and "paused (workers stopped, queues kept): mail" in table

    assert main(["resume", "mail", "--wait", "30"]) == 0
    assert "mail: resumed with 2 slot(s)" in capsys.readouterr().out
    assert sorted(_mail_slots(client).values()) == ["RUNNING", "RUNNING"]
    assert read_paused(state_dir) == {}
    wait_for(lambda: box.client().llen("laravel_database_queues:mail") == 0, what="jobs run")


@pytest.mark.integration
def test_a_broken_pause_file_stops_applies_instead_of_restarting(
    box: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    state_dir = default_state_dir(box.include_file)
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "paused.json").write_text("{not json")
    with pytest.raises(PausedFileError):
        read_paused(state_dir)
    assert main(["scale", "other", "1"]) == 2
    assert "paused.json: not a paused-pools file" in capsys.readouterr().err
    assert run_once(Path.cwd()) == 1  # the apply refused to guess
