"""Workers that are not ours: other Supervisor programs whose command consumes a pool's queues
(the hand-written ones during a migration) are shown as unmanaged, counted by decide as
capacity, and their logs are read (so `record` measures long jobs' run times)."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoscaler.cli.main import main
from autoscaler.decide.core import decide
from autoscaler.decide.plan import ControllerState, MemoryBudget
from autoscaler.observe.observation import Observation
from autoscaler.supervisord.slots import WorkerCounts, pool_of_command
from autoscaler.testing.sandbox import PREFIX, Sandbox, SandboxPool
from tests.act_helpers import run_once, wait_for
from tests.cli_sandbox import cli_sandbox
from tests.decide_helpers import make_policy, pool_obs

MAIL = SandboxPool(
    name="mail", queues=("mail",), min_processes=1, static_processes=1, run_time_s=9.0
)


def test_commands_that_consume_a_pools_queues() -> None:
    policies = {"mail": make_policy("mail"), "default": make_policy("default")}
    assert pool_of_command("php artisan queue:work redis --queue=mail --tries=3", policies) == (
        "mail"
    )
    assert pool_of_command("php artisan queue:work redis --queue=x,mail", policies) == "mail"
    assert pool_of_command("php artisan queue:work redis", policies) == "default"  # no --queue
    assert pool_of_command("php artisan schedule:work", policies) is None
    assert pool_of_command("php artisan queue:work --queue=other", policies) is None


def test_decide_counts_unmanaged_workers_as_capacity() -> None:
    policies = {"q": make_policy("q", min_processes=1, max_processes=20)}

    def desired(unmanaged: int) -> tuple[int, str]:
        obs = pool_obs("q", pending=200, oldest_wait_s=60.0, running=2, completions=10,
                       run_time_mean_s=2.0)  # fmt: skip
        assert obs.workers is not None
        obs.workers = WorkerCounts(running=2, starting=0, draining=0, unmanaged=unmanaged)
        observation = Observation(at_s=100.0, interval_s=5.0, pools={"q": obs})
        plan, _ = decide(
            observation, policies, ControllerState(), now_s=100.0,
            budget=MemoryBudget(budget_mb=1e6),
        )  # fmt: skip
        return plan.counts()["q"], plan.decisions["q"].reason

    alone, _ = desired(0)
    helped, reason = desired(4)
    assert helped == max(1, alone - 4) and alone > 5
    assert "4 unmanaged worker(s) (other Supervisor programs) on its queues" in reason


@pytest.fixture
def box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    with cli_sandbox(tmp_path, monkeypatch, MAIL) as sandbox:
        yield sandbox


def _hand_written(box: Sandbox) -> None:
    """The operator's old program: named like autoscaler's slots (sandbox-mail_00) but in a
    group of two, as a hand-written numprocs=2 section makes it."""
    command = (
        f"{sys.executable} -m autoscaler.testing.worker queue:work redis --redis-url "
        f"{box.redis.url} --prefix {PREFIX} --queue=mail --sleep=0.05 --record {box.record}"
    )
    (box.supervisord.include_dir / "hand-written.conf").write_text(
        "[program:sandbox-mail]\n"
        f"command={command}\n"
        "process_name=%(program_name)s_%(process_num)02d\n"
        "numprocs=2\nstartsecs=0\nstopasgroup=true\nkillasgroup=true\n"
        f"stdout_logfile={box.log_dir}/old-%(process_num)02d.log\n"
    )
    proxy = box.supervisord.proxy()
    proxy.supervisor.reloadConfig()
    proxy.supervisor.addProcessGroup("sandbox-mail")
    wait_for(
        lambda: (
            [p["statename"] for p in proxy.supervisor.getAllProcessInfo()] == ["RUNNING", "RUNNING"]
        ),
        what="the two hand-written workers",
    )


@pytest.mark.integration
def test_status_and_decide_see_the_hand_written_workers(
    box: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    _hand_written(box)
    assert main(["status", "--window", "0", "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["workers"] == 0 and row["workers_unmanaged"] == 2
    assert main(["status", "--window", "0"]) == 0
    out = capsys.readouterr().out
    assert "0 +2 unmanaged" in out and "mail: 2 (sandbox-mail:*)" in out

    box.push("mail", 60, run_s=1.0)
    assert run_once(Path.cwd()) == 0
    assert main(["status", "--window", "0", "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert "2 unmanaged worker(s)" in row["desired_reason"]


@pytest.mark.integration
def test_record_measures_the_hand_written_workers_run_times(
    box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Recording before migrating (to tune on real traffic): the old workers' logs give the
    run time, not the policy's guess (9 s here, 1.0 as `init` writes it)."""
    _hand_written(box)
    out = tmp_path / "before.csv"
    box.push("mail", 8, run_s=2.5)
    assert main(["record", "--out", str(out), "--duration", "9", "--interval", "1"]) == 0
    text = out.read_text()
    assert "mail=logs" in text, text
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    service = [float(r["service_s"]) for r in csv.DictReader(io.StringIO(body))]
    measured = [s for s in service if s != MAIL.run_time_s]
    assert measured and all(2.0 <= s <= 3.5 for s in measured), service
