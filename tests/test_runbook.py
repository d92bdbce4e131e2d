"""docs/runbook.md executed as written on a real supervisord: migrating hand-written programs
to autoscaler, changing a pool's command and rolling back, with the queue never left without
workers, no job lost, and the daemon kept off after the rollback (also across `supervisorctl
reload`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoscaler.testing.laravel import make_payload, push
from autoscaler.testing.stack import RedisServer, Supervisord, find_binary
from tests.act_helpers import wait_for
from tests.conftest import require_binary

REPO = Path(__file__).resolve().parent.parent
RUNBOOK = REPO / "docs" / "runbook.md"
PREFIX = "laravel_database_"
GROUP = "laravel-mail-worker"


def blocks(name: str) -> str:
    """The runbook's ```sh title="runbook:NAME" blocks, in order."""
    text = RUNBOOK.read_text()
    found = re.findall(rf'^```sh title="runbook:{name}"\n(.*?)^```$', text, flags=re.M | re.S)
    assert found, f"no runbook:{name} block in {RUNBOOK}"
    return "".join(found)


class Capacity:
    """Samples, every 0.1 s, how many of the queue's workers run (old group and slots)."""

    def __init__(self, supervisord: Supervisord) -> None:
        self.supervisord = supervisord
        self.lowest: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Capacity:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        proxy = self.supervisord.proxy()
        while not self._stop.is_set():
            running = sum(
                1
                for p in proxy.supervisor.getAllProcessInfo()
                if p["statename"] == "RUNNING" and p["name"].startswith(f"{GROUP}_")
            )
            self.lowest = running if self.lowest is None else min(self.lowest, running)
            time.sleep(0.1)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[tuple[Supervisord, RedisServer, dict[str, str]]]:
    require_binary("redis-server")
    require_binary("supervisord")
    root = tmp_path.resolve()
    redis = RedisServer(root / "redis").start()
    supervisord = Supervisord(root / "sv").start()
    bin_dir = root / "bin"
    bin_dir.mkdir()
    ctl = bin_dir / "supervisorctl"
    ctl.write_text(
        f'#!/bin/sh\nexec {find_binary("supervisorctl")} -c {supervisord.conf_path} "$@"\n'
    )
    ctl.chmod(0o755)
    (root / "aside").mkdir()
    (root / "logs").mkdir()
    conf_d = supervisord.include_dir
    settings = {
        "AUTOSCALER_REDIS_URL": redis.url,
        "AUTOSCALER_REDIS_PREFIX": PREFIX,
        "AUTOSCALER_SUPERVISOR_URL": supervisord.url,
        "AUTOSCALER_INTERVAL_S": "1",
        "AUTOSCALER_MEMORY_BUDGET_MB": "2048",
    }
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AUTOSCALER_")},
        **settings,
        "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
        "CONF_D": str(conf_d),
        "ASIDE": str(root / "aside"),
        "OLD_GROUPS": GROUP,
        "POLICIES": str(root / "policies"),
    }
    worker = (
        f"{sys.executable} -m autoscaler.testing.worker queue:work redis --queue=mail "
        f"--redis-url {redis.url} --prefix {PREFIX} --sleep=0.05 --timeout=30 "
        f"--record {root / 'jobs.txt'}"
    )
    (conf_d / "laravel-workers.conf").write_text(
        f"[program:{GROUP}]\ncommand={worker}\n"
        "process_name=%(program_name)s_%(process_num)02d\nnumprocs=2\n"
        "startsecs=1\nstopwaitsecs=40\nstopasgroup=true\nkillasgroup=true\n"
        f"stdout_logfile={root}/logs/old-%(process_num)s.log\n"
    )
    environment = ",".join(f'{k}="{v}"' for k, v in settings.items())
    environment += f',AUTOSCALER_POLICIES_DIR="{root / "policies"}"'
    environment += f',AUTOSCALER_INCLUDE_FILE="{conf_d / "autoscaler-workers.conf"}"'
    (conf_d / "autoscaler.conf").write_text(
        (REPO / "deploy" / "supervisor" / "autoscaler.conf")
        .read_text()
        .replace(
            "command=/opt/autoscaler/venv/bin/autoscaler --config /etc/autoscaler/autoscaler.toml"
            " run",
            f"command={sys.executable} -m autoscaler run\nenvironment={environment}",
        )
        .replace("directory=/etc/autoscaler", f"directory={root}")
        .replace("user=root\n", "")
        .replace("/var/log/autoscaler/autoscaler.log", f"{root}/logs/autoscaler.log")
    )
    proxy = supervisord.proxy()
    proxy.supervisor.reloadConfig()
    proxy.supervisor.addProcessGroup(GROUP)  # the hand-written workers, running
    wait_for(lambda: _states(supervisord).get(f"{GROUP}:{GROUP}_01") == "RUNNING", what="old")
    yield supervisord, redis, env
    supervisord.stop()
    redis.stop()


def _states(supervisord: Supervisord) -> dict[str, str]:
    """group:name -> state ({} while supervisord restarts: `supervisorctl reload`)."""
    try:
        processes = supervisord.proxy().supervisor.getAllProcessInfo()
    except (xmlrpc.client.Fault, OSError):
        return {}
    return {f"{p['group']}:{p['name']}": p["statename"] for p in processes}


def _commands_end(supervisord: Supervisord, suffix: str) -> bool:
    """Exactly two slots run, both with a command ending in `suffix`."""
    proxy = supervisord.proxy()
    commands = {c["name"]: c["command"] for c in proxy.supervisor.getAllConfigInfo()}
    slots = [
        p["name"]
        for p in proxy.supervisor.getAllProcessInfo()
        if p["name"].startswith(f"{GROUP}_") and p["group"] == p["name"]
    ]
    running = _states(supervisord)
    return len(slots) == 2 and all(
        commands[name].endswith(suffix) and running.get(f"{name}:{name}") == "RUNNING"
        for name in slots
    )


def _run(script: str, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.integration
def test_the_runbook_migrates_and_rolls_back_without_losing_capacity(
    host: tuple[Supervisord, RedisServer, dict[str, str]], tmp_path: Path
) -> None:
    supervisord, redis, env = host
    settings = blocks("settings")
    client = redis.client()

    with Capacity(supervisord) as capacity:
        _run(settings + blocks("migrate"), env, tmp_path)
    assert capacity.lowest == 2, "the queue lost workers during the migration"
    states = _states(supervisord)
    assert not any(name.startswith(f"{GROUP}:") for name in states), states
    assert states[f"{GROUP}_00:{GROUP}_00"] == "RUNNING"
    assert states[f"{GROUP}_01:{GROUP}_01"] == "RUNNING"
    wait_for(lambda: _states(supervisord).get("autoscaler:autoscaler") == "RUNNING", what="daemon")

    # A command change: replaced surge-first by the daemon, never below the pool's 2 workers.
    with Capacity(supervisord) as capacity:
        _run(settings + blocks("change"), env, tmp_path)
        wait_for(lambda: _commands_end(supervisord, "--tries=3"), timeout_s=180, what="change")
    assert capacity.lowest == 2, "the command change lost workers"

    ids = [f"job{n}" for n in range(20)]
    for job_id in ids:
        push(client, PREFIX, "mail", make_payload(job_id=job_id, run_s=0.5))
    with Capacity(supervisord) as capacity:
        _run(settings + blocks("rollback"), env, tmp_path)
    assert capacity.lowest is not None and capacity.lowest >= 2, "rollback lost workers"
    states = _states(supervisord)
    assert states["autoscaler:autoscaler"] == "STOPPED"
    assert sorted(s for s in states if s.startswith(GROUP)) == [
        f"{GROUP}:{GROUP}_00",
        f"{GROUP}:{GROUP}_01",
    ]
    wait_for(lambda: client.llen(f"{PREFIX}queues:mail") == 0, what="the jobs run")
    record = tmp_path / "jobs.txt"
    wait_for(lambda: len(record.read_text().splitlines()) >= len(ids), what="jobs recorded")
    finished = [line.split()[0] for line in record.read_text().splitlines()]
    assert sorted(finished) == sorted(ids), "a job was lost or ran twice"

    # A reload (or a reboot) must not bring the daemon back.
    _run("supervisorctl reload", env, tmp_path)
    wait_for(lambda: _states(supervisord).get(f"{GROUP}:{GROUP}_01") == "RUNNING", what="reloaded")
    time.sleep(2)
    assert _states(supervisord)["autoscaler:autoscaler"] == "STOPPED"


@pytest.mark.integration
def test_supervisorctl_stop_all_leaves_every_worker_stopped(
    host: tuple[Supervisord, RedisServer, dict[str, str]], tmp_path: Path
) -> None:
    """`supervisorctl stop all` with busy workers: supervisord signals every program at once
    (the daemon too) and waits for them, so the daemon never sees its slots STOPPED and
    starts them again as drift. Nothing runs afterwards."""
    supervisord, redis, env = host
    _run(blocks("settings") + blocks("migrate"), env, tmp_path)
    wait_for(lambda: _states(supervisord).get("autoscaler:autoscaler") == "RUNNING", what="daemon")
    client = redis.client()
    for n in range(4):  # each worker busy for a few of the daemon's ticks while it stops
        push(client, PREFIX, "mail", make_payload(job_id=f"long{n}", run_s=4))
    wait_for(lambda: client.llen(f"{PREFIX}queues:mail") == 0, what="the jobs taken")
    _run("supervisorctl stop all || true", env, tmp_path)
    time.sleep(3)  # three of the daemon's 1 s ticks, had it survived the workers
    running = {name for name, state in _states(supervisord).items() if state != "STOPPED"}
    assert running == set(), f"still running after `supervisorctl stop all`: {running}"
