"""The small things an operator ran into: init's autorestart, trace show's bounds, diff on an
unchanged pool, the reload line, and the daemon's last words after `supervisorctl stop all`."""

from __future__ import annotations

import json
import random
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoscaler.cli.main import main
from autoscaler.daemon.lifecycle import reload_summary
from autoscaler.policy.loader import load_policies
from autoscaler.supervisord.render import render
from autoscaler.testing.sandbox import Sandbox, SandboxPool
from autoscaler.testing.stack import RedisServer, Supervisord
from tests.act_helpers import converge, make_actuator, pids, wait_for, worker_policy
from tests.conftest import require_binary
from tests.policy_helpers import write_policy
from tests.test_daemon_e2e import DaemonProcess, running

REPO = Path(__file__).resolve().parent.parent
SEED = REPO / "tests" / "fixtures" / "supervisor-complete.conf"
BURST_TRACE = REPO / "simulations" / "traces" / "flash_burst.csv.gz"


def test_init_writes_autorestart_as_a_toml_boolean(tmp_path: Path) -> None:
    out = tmp_path / "policies"
    assert main(["init", "--from-supervisor", str(SEED), "--out", str(out)]) == 0
    text = (out / "mail.toml").read_text()
    assert "autorestart = true\n" in text and 'autorestart = "true"' not in text
    policies = load_policies(out)
    assert "autorestart=true" in render(policies, {"mail": (0,)})
    # Every spelling Supervisor knows still loads: false, "unexpected", and the old "true".
    for value, word in (("false", "false"), ('"unexpected"', "unexpected"), ('"true"', "true")):
        write_policy(tmp_path / word, "emails", supervisor={"autorestart": "X"})
        path = tmp_path / word / "emails.toml"
        path.write_text(path.read_text().replace('autorestart = "X"', f"autorestart = {value}"))
        loaded = load_policies(tmp_path / word)
        assert f"autorestart={word}" in render(loaded, {"emails": (0,)})


def test_trace_show_prints_the_operators_bounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "policies"
    shutil.copytree(REPO / "policies", mine)
    gift = mine / "gift_card_exchange.toml"
    gift.write_text(gift.read_text().replace("max_processes = 16", "max_processes = 11"))
    monkeypatch.setenv("AUTOSCALER_POLICIES_DIR", str(mine))
    monkeypatch.chdir(tmp_path)
    assert main(["trace", "show", str(BURST_TRACE), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    gift_row = next(r for r in data["queues"] if r["queue"] == "gift_card_exchange")
    assert gift_row["max_processes"] == 11 and data["policies"] == str(mine)
    assert main(["trace", "show", str(BURST_TRACE)]) == 0
    assert f"static / max from {mine}" in capsys.readouterr().out


def _rate_trace(path: Path) -> Path:
    """Two hours of every seed queue, with no service_s column: run times come from policies."""
    rng = random.Random(1)
    queues = [p.queues[0] for p in load_policies(REPO / "policies").values()]
    lines = ["time_s,queue,arrivals"]
    lines += [f"{t},{q},{rng.randint(0, 30)}" for t in range(0, 7200, 60) for q in queues]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_diff_does_not_move_an_unchanged_pool_unless_the_budget_binds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, head = tmp_path / "base", tmp_path / "head"
    shutil.copytree(REPO / "policies", base)
    shutil.copytree(REPO / "policies", head)
    crawler = head / "forecast_crawler.toml"
    text = crawler.read_text()
    start = text.index("expected_run_time_s = ")
    end = text.index("\n", start)
    crawler.write_text(text[:start] + "expected_run_time_s = 15.0" + text[end:])
    trace = _rate_trace(tmp_path / "rate.csv")
    args = ["diff", str(base), str(head), "--trace", str(trace), "--format", "json", "--jobs", "1"]

    # The crawler's backlog at BASE drains for hours after the trace; the other pools'
    # idle workers must not be billed for that wait.
    main([*args, "--memory-budget-mb", "100000"])
    pools = {p["pool"]: p for p in json.loads(capsys.readouterr().out)["pools"]}
    assert pools["forecast_crawler"]["status"] == "changed"
    for name, pool in pools.items():
        if name != "forecast_crawler":
            assert pool["status"] == "unchanged" and pool["verdict"] == "same", pool["line"]

    # Where the budget binds, other pools' changes do move a pool: the report says why.
    main(args)
    pools = {p["pool"]: p for p in json.loads(capsys.readouterr().out)["pools"]}
    moved = [p for p in pools.values() if p["status"] == "unchanged" and p["verdict"] != "same"]
    assert moved
    for pool in moved:
        assert "no field of it changed: the memory budget binds (peak" in pool["line"]


def test_policies_reloaded_names_only_the_changed_pools(tmp_path: Path) -> None:
    write_policy(tmp_path / "a", "emails")
    write_policy(tmp_path / "a", "mail", queues=["mail"], program="mail-worker",
                 command="php artisan queue:work redis --queue=mail")  # fmt: skip
    old = load_policies(tmp_path / "a")
    write_policy(tmp_path / "b", "emails", max_processes=3)
    write_policy(tmp_path / "b", "mail", queues=["mail"], program="mail-worker",
                 command="php artisan queue:work redis --queue=mail")  # fmt: skip
    write_policy(tmp_path / "b", "sms", queues=["sms"], program="sms-worker",
                 command="php artisan queue:work redis --queue=sms")  # fmt: skip
    new = load_policies(tmp_path / "b")
    assert reload_summary(old, new) == "changed emails; added sms"
    assert reload_summary(new, old) == "changed emails; removed sms"
    assert reload_summary(old, old) == "no pool changed (comments or formatting only)"


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Sandbox]:
    require_binary("redis-server")
    require_binary("supervisord")
    pool = SandboxPool(name="mail", queues=("mail",), min_processes=2, static_processes=2)
    sandbox = Sandbox(tmp_path.resolve() / "s", pools=(pool,)).start()
    yield sandbox
    sandbox.stop()


@pytest.mark.integration
def test_the_daemon_says_what_happened_to_the_workers_when_it_stops(
    box: Sandbox, tmp_path: Path
) -> None:
    daemon = DaemonProcess(box, tmp_path / "one.log")
    wait_for(lambda: running(box, "mail") == 2, what="two workers")
    assert daemon.stop(signal.SIGTERM) == 0
    assert "stopped; 2 worker slot(s) keep running" in daemon.text()
    assert running(box, "mail") == 2

    # `supervisorctl stop all` stops the workers with the daemon: it must not claim otherwise.
    daemon = DaemonProcess(box, tmp_path / "two.log")
    wait_for(lambda: daemon.ticks() >= 1, what="a tick")
    # Frozen meanwhile, so that no tick sees the stopped slots (as drift) before SIGTERM.
    daemon.process.send_signal(signal.SIGSTOP)
    box.supervisord.proxy().supervisor.stopAllProcesses()
    daemon.process.send_signal(signal.SIGTERM)
    daemon.process.send_signal(signal.SIGCONT)
    assert daemon.stop(signal.SIGTERM) == 0
    assert "stopped; no worker slot of ours is running" in daemon.text()
    assert "keep running" not in daemon.text()


@pytest.mark.integration
def test_a_removed_pool_leaves_no_program_in_supervisord(
    supervisord: Supervisord, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Deleting a policy stops its slots gracefully and then removes their programs, so a
    later `supervisorctl start all` cannot start them unmanaged."""
    mail = worker_policy(redis_url=redis_server.url, queue="mail", log_dir=tmp_path / "logs")
    sms = worker_policy(redis_url=redis_server.url, queue="sms", log_dir=tmp_path / "logs")
    include = supervisord.include_dir / "workers.conf"
    actuator, client = make_actuator(supervisord.url, include, {"mail": mail, "sms": sms})
    converge(actuator, {"mail": 1, "sms": 2})
    assert sorted(pids(client)) == ["mail-worker_00", "sms-worker_00", "sms-worker_01"]

    actuator.policies = {"mail": mail}  # the sms policy file was deleted (a reload)
    reports = converge(actuator, None)
    actions = sorted((c.action, c.slot) for r in reports for c in r.changes)
    assert actions == sorted(
        [(a, f"sms-worker_0{i}") for a in ("stop", "remove") for i in (0, 1)]
    ), actions
    assert [p.name for p in client.processes()] == ["mail-worker_00"]
    assert actuator.file.retiring() == []
    supervisord.proxy().supervisor.startAllProcesses()
    assert [p.name for p in client.processes()] == ["mail-worker_00"]


def test_init_measures_run_times_from_the_hand_written_programs_logs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A crawler whose jobs take about 15 s must not start with init's 1.0 guess; its old
    logs (here with a %(process_num)02d path, as hand-written files often have) say 15."""
    logs = tmp_path / "logs"
    logs.mkdir()
    done = "  2026-01-01 10:00:{:02d} App\\Jobs\\Crawl ........ {} DONE\n"
    (logs / "crawler-00.log").write_text("".join(done.format(i, "15s") for i in range(12)))
    (logs / "crawler-01.log").write_text(
        "".join(  # Laravel up to 9.20: no run time, the stamps give it (14 s)
            f"[2026-01-01 10:{i:02d}:00][{i}] Processing: App\\Jobs\\Crawl\n"
            f"[2026-01-01 10:{i:02d}:14][{i}] Processed:  App\\Jobs\\Crawl\n"
            for i in range(8)
        )
    )
    conf = tmp_path / "old.conf"
    conf.write_text(
        "[program:crawler]\n"
        "command=php /srv/artisan queue:work redis --queue=crawl --timeout=180\n"
        "process_name=%(program_name)s_%(process_num)02d\nnumprocs=2\nstopwaitsecs=200\n"
        f"stdout_logfile={logs}/crawler-%(process_num)02d.log\n"
        "[program:quiet]\n"
        "command=php /srv/artisan queue:work redis --queue=quiet\n"
        f"stdout_logfile={logs}/quiet.log\n"
    )
    out = tmp_path / "policies"
    assert main(["init", "--from-supervisor", str(conf), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    policies = load_policies(out)
    expected = (12 * 15.5 + 8 * 14.0) / 20  # "15s" is 15 to 16 s: its midpoint
    assert policies["crawl"].expected_run_time_s == pytest.approx(expected, abs=0.001)
    text = (out / "crawl.toml").read_text()
    assert "# Measured by `autoscaler init`: mean of 20 jobs logged in" in text
    assert "expected_run_time_s = 14.9: mean of 20 jobs" in printed
    assert policies["quiet"].expected_run_time_s == 1.0  # no log: the default guess
