"""`autoscaler plan` and `autoscaler scale` end to end on a real supervisord."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import redis

from autoscaler.cli import scale_cmd
from autoscaler.cli.actuation import busy_slots
from autoscaler.cli.main import main
from autoscaler.supervisord.rpc import SupervisorClient
from autoscaler.testing.laravel import make_payload, push
from autoscaler.testing.stack import RedisServer, Supervisord
from tests.act_helpers import pids, wait_for
from tests.policy_helpers import write_policy

pytestmark = pytest.mark.integration

PREFIX = "laravel_database_"


@pytest.fixture
def setup(
    supervisord: Supervisord,
    redis_server: RedisServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Path, SupervisorClient]:
    """A policy directory with pool `mail` (min 1, static 2, max 4) and settings from env."""
    policies = tmp_path / "policies"
    logs = tmp_path / "logs"
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
        supervisor={"stdout_logfile": str(logs / "mail.log"), "stopwaitsecs": 40},
    )
    include = supervisord.include_dir / "workers.conf"
    monkeypatch.setenv("AUTOSCALER_SUPERVISOR_URL", supervisord.url)
    monkeypatch.setenv("AUTOSCALER_INCLUDE_FILE", str(include))
    monkeypatch.setenv("AUTOSCALER_POLICIES_DIR", str(policies))
    monkeypatch.chdir(tmp_path)  # no stray .env
    return include, SupervisorClient(supervisord.url)


def test_plan_touches_nothing(
    setup: tuple[Path, SupervisorClient], capsys: pytest.CaptureFixture[str]
) -> None:
    include, client = setup
    assert main(["plan", "--static"]) == 0
    out = capsys.readouterr().out
    assert "--- /dev/null" in out and "+[program:mail-worker_01]" in out
    assert "mail-worker_00  add" in out and "scale up: new slot" in out
    assert not include.exists() and client.processes() == []

    assert main(["plan", "mail=9", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["after"] == {"mail": 4} and data["file_changed"]
    assert data["clamped"] == ["mail: 9 is above max_processes; clamped to 4"]
    assert [c["slot"] for c in data["changes"]] == [f"mail-worker_0{i}" for i in range(4)]
    assert not include.exists() and client.processes() == []


def test_scale_clamps_prints_and_plan_then_shows_nothing_to_do(
    setup: tuple[Path, SupervisorClient], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    include, client = setup
    assert main(["scale", "mail", "9", "--wait", "30"]) == 0
    out = capsys.readouterr().out
    assert "note: mail: 9 is above max_processes; clamped to 4" in out
    assert "mail: 0 -> 4 slot(s)" in out and "4 running" in out
    assert "next tick decides the count again" in out
    four = pids(client, "mail-worker_")
    assert len(four) == 4

    assert main(["plan"]) == 0  # the counts the file holds: nothing to do
    out = capsys.readouterr().out
    assert f"{include}: unchanged" in out and "No slot changes" in out

    assert main(["plan", "mail=2"]) == 0
    out = capsys.readouterr().out
    assert "-[program:mail-worker_03]" in out and "mail-worker_03  stop" in out

    # The policy is edited below what the file holds: plan follows the new bounds, as the
    # daemon's next tick would, instead of failing on the file's count.
    policy = tmp_path / "policies" / "mail.toml"
    good = policy.read_text()
    policy.write_text(good.replace("max_processes = 4", "max_processes = 2"))
    assert main(["plan"]) == 0
    out = capsys.readouterr().out
    assert "mail: 4 slots now outside min_processes 1 and max_processes 2: 2" in out
    assert "mail-worker_03  stop" in out and "mail-worker_02  stop" in out
    policy.write_text(good)

    assert main(["scale", "mail", "0", "--wait", "30", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["count"] == 1 and data["before"] == 4 and data["settled"]
    assert data["clamped"] == "mail: 0 is below min_processes; clamped to 1"
    actions = sorted((c["action"], c["slot"]) for c in data["changes"])
    assert actions == sorted(
        [(a, f"mail-worker_0{i}") for i in (1, 2, 3) for a in ("stop", "remove")]
    )
    assert pids(client, "mail-worker_") == {"mail-worker_00": four["mail-worker_00"]}

    assert main(["scale", "mail", "1"]) == 0
    assert "mail: 1 slot(s), unchanged" in capsys.readouterr().out


def test_scale_past_the_memory_budget_warns_and_still_scales(
    setup: tuple[Path, SupervisorClient],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An operator's override is carried out (an incident may need the workers), with a note
    naming how far past the budget the declared sizes are."""
    _include, client = setup
    monkeypatch.setenv("AUTOSCALER_MEMORY_BUDGET_MB", "300")  # two 128 MB workers fit
    assert main(["scale", "mail", "3", "--wait", "30"]) == 0
    out = capsys.readouterr().out
    assert "mail: 0 -> 3 slot(s)" in out and len(pids(client, "mail-worker_")) == 3
    assert "note: the managed workers now hold 84 MB more than the memory budget (300 MB" in out
    assert main(["scale", "mail", "2", "--wait", "30", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["over_budget_mb"] == 0


def test_scale_reads_the_logs_and_stops_idle_workers_first(
    setup: tuple[Path, SupervisorClient],
    redis_client: redis.Redis,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _include, client = setup
    assert main(["scale", "mail", "3", "--wait", "30"]) == 0
    three = pids(client, "mail-worker_")
    push(redis_client, PREFIX, "mail", make_payload(job_id="long", run_s=2.0))
    (busy,) = wait_for(
        lambda: found if len(found := busy_slots(client.processes())) == 1 else None,
        what="one worker with the job in hand",
    )
    capsys.readouterr()
    assert main(["scale", "mail", "1", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    stops = {c["slot"]: c["reason"] for c in data["changes"] if c["action"] == "stop"}
    assert busy not in stops and len(stops) == 2
    assert set(stops.values()) == {"scale down: idle"}
    assert pids(client, "mail-worker_") == {busy: three[busy]}


def test_usage_errors_and_an_unreachable_supervisord(
    setup: tuple[Path, SupervisorClient],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    assert main(["scale", "nope", "1"]) == 2
    assert "no pool 'nope' (pools: mail)" in capsys.readouterr().err
    assert main(["plan", "mail=x"]) == 2
    assert main(["plan", "mail=1", "--static"]) == 2
    write_policy(tmp_path / "bad", "mail", max_processes=0)
    assert main(["plan", "--policies", str(tmp_path / "bad")]) == 2
    assert "max_processes" in capsys.readouterr().err

    # A pool Supervisor would refuse is not retried (it would be refused again) and never
    # reaches the live file: the pool keeps what it has, and the command fails saying why.
    refused = tmp_path / "refused"
    write_policy(refused, "mail", supervisor={"stdout_logfile": f"{tmp_path}/no/dir/mail.log"})
    assert main(["scale", "mail", "2", "--policies", str(refused), "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert "no/dir" in data["error"] and "no/dir" in data["refused"]["mail"]
    assert data["changes"] == []
    assert main(["plan", "mail=2", "--policies", str(refused)]) == 1
    assert "pool mail would NOT be applied" in capsys.readouterr().err
    assert f"fix `command` or [supervisor] in {refused / 'mail.toml'}" in data["error"]

    monkeypatch.setenv("AUTOSCALER_SUPERVISOR_URL", f"unix://{tmp_path}/gone.sock")
    monkeypatch.setattr(scale_cmd, "RETRY_FOR_S", 0.3)
    assert main(["plan"]) == 1
    assert "unreachable" in capsys.readouterr().err
    assert main(["scale", "mail", "2"]) == 1
    assert "scale failed" in capsys.readouterr().err
