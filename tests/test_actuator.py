"""The actuator on a real supervisord 4.3 with fake Laravel workers (real Redis, real signals).

Every test proves a promise of issue 4 with PIDs, the workers' job records, Redis and the
bytes of the live file, never with a mock.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import redis
from loguru import logger

from autoscaler.act.actuator import Actuator
from autoscaler.act.reconcile import Action, SlotChange
from autoscaler.act.slot_calls import execute, is_unknown_name
from autoscaler.policy.model import Policy
from autoscaler.supervisord.include_file import SupervisorFile, section_names, slot_texts
from autoscaler.supervisord.rpc import SupervisorClient
from autoscaler.testing.laravel import QueueKeys, make_payload, push
from autoscaler.testing.stack import RedisServer, Supervisord
from tests.act_helpers import (
    RecordingClient,
    busy_from_logs,
    converge,
    make_actuator,
    pids,
    running,
    wait_for,
    worker_policy,
)

pytestmark = pytest.mark.integration

PREFIX = "laravel_database_"


class FakeClock:
    """The actuator's clock for backoffs and stuck detection; the world runs in real time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_2_5_1_keeps_every_slot_that_stays_and_never_touches_other_programs(
    supervisord: Supervisord, redis_server: RedisServer, tmp_path: Path
) -> None:
    include = supervisord.include_dir / "workers.conf"
    # Another file: a scheduler, and the hand-written numprocs program being migrated away
    # from (its processes are named like our slots, in a group of their own).
    sleeper = f'{sys.executable} -c "import time; time.sleep(600)"'
    (supervisord.include_dir / "other.conf").write_text(
        f"[program:scheduler]\ncommand={sleeper}\nstartsecs=0\n"
        f"[program:mail-worker]\ncommand={sleeper}\nnumprocs=2\nstartsecs=0\n"
        "process_name=%(program_name)s_%(process_num)02d\n"
        f"[program:not-added-yet]\ncommand={sleeper}\n"
    )
    proxy = supervisord.proxy()
    proxy.supervisor.reloadConfig()
    for group in ("scheduler", "mail-worker"):
        proxy.supervisor.addProcessGroup(group)
    policy = worker_policy(redis_url=redis_server.url, queue="mail", log_dir=tmp_path / "logs")
    act, client = make_actuator(supervisord.url, include, {"mail": policy})
    others = wait_for(
        lambda: (
            {(p.group, p.name): p.pid for p in client.processes() if p.statename == "RUNNING"}
            if running(client) == 3
            else None
        ),
        what="the other file's programs to run",
    )

    converge(act, {"mail": 2})
    two = pids(client, "mail-worker_")
    assert sorted(two) == ["mail-worker_00", "mail-worker_01"]

    floor: list[int] = []
    reports = converge(act, {"mail": 5}, on_tick=lambda r: floor.append(running(client) - 3))
    up = reports[0]
    assert [(c.action, c.slot) for c in up.changes] == [
        ("add", "mail-worker_02"),
        ("add", "mail-worker_03"),
        ("add", "mail-worker_04"),
    ]
    assert (up.counts["mail"].running, up.counts["mail"].starting) == (2, 3)
    five = pids(client, "mail-worker_")
    assert len(five) == 5
    assert {name: five[name] for name in two} == two  # the two that stayed: same PIDs
    assert min(floor) >= 2 and floor[-1] == 5

    floor.clear()
    reports = converge(act, {"mail": 1}, on_tick=lambda r: floor.append(running(client) - 3))
    down = reports[0]
    assert sorted(c.slot for c in down.changes if c.action == "stop") == [
        "mail-worker_01",
        "mail-worker_02",
        "mail-worker_03",
        "mail-worker_04",
    ]
    assert down.counts["mail"].running == 1
    assert (
        down.counts["mail"].draining
        + len([c for r in reports for c in r.changes if c.action == "remove"])
        >= 4
    )
    assert pids(client, "mail-worker_") == {"mail-worker_00": two["mail-worker_00"]}
    assert floor == [1] * len(floor)
    ours = [p.name for p in client.processes() if p.group == p.name and p.name != "scheduler"]
    assert ours == ["mail-worker_00"]  # stopped slots were removed from supervisord

    still = {(p.group, p.name): p.pid for p in client.processes() if (p.group, p.name) in others}
    assert still == others  # the scheduler and the hand-written workers never restarted
    assert "not-added-yet" not in {p.group for p in client.processes()}  # nor added


def test_a_worker_scaled_down_mid_job_finishes_it_no_job_lost_or_run_twice(
    supervisord: Supervisord,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    record = tmp_path / "jobs.txt"
    clock = FakeClock()
    policy = worker_policy(
        redis_url=redis_server.url, queue="mail", log_dir=tmp_path / "logs", record=record
    )
    include = supervisord.include_dir / "workers.conf"
    act, client = make_actuator(supervisord.url, include, {"mail": policy}, clock=clock)
    converge(act, {"mail": 3})
    started = pids(client, "mail-worker_")
    for index in range(2):
        push(redis_client, PREFIX, "mail", make_payload(job_id=f"long{index}", run_s=2.5))
    busy = wait_for(
        lambda: busy_from_logs(client) if len(busy_from_logs(client)) == 2 else None,
        what="two workers with a job in hand",
    )
    (idle,) = set(started) - busy

    report = act.apply({"mail": 1}, busy_slots=busy)
    stops = [(c.slot, c.reason) for c in report.changes if c.action == "stop"]
    kept, stopped_busy = sorted(busy)
    assert stops == sorted([(idle, "scale down: idle"), (stopped_busy, _busy_reason())])
    assert report.counts["mail"].running == 1
    assert report.counts["mail"].draining == 2
    assert stopped_busy in report.draining
    assert pids(client, "mail-worker_")[kept] == started[kept]

    # Its job is not cut: long past stopwaitsecs on the actuator's clock, it is reported
    # stuck, and in real time it finishes and exits by itself.
    clock.advance(policy.stopwaitsecs + 60)
    stuck = act.apply({"mail": 1})
    reported = {p.slot: p for p in stuck.problems}
    assert reported[stopped_busy].state == "STOPPING"
    assert "past stopwaitsecs=40" in reported[stopped_busy].detail
    converge(act, {"mail": 1})
    lines = wait_for(
        lambda: lines if len(lines := record.read_text().splitlines()) == 2 else None,
        what="both long jobs recorded",
    )
    jobs = {line.split()[0]: line.split() for line in lines}
    assert sorted(jobs) == ["long0", "long1"]  # each exactly once
    assert all(fields[6] == "done" and fields[2] == "1" for fields in jobs.values())
    assert {int(fields[5]) for fields in jobs.values()} == {started[kept], started[stopped_busy]}
    keys = QueueKeys.of(PREFIX, "mail")
    assert redis_client.zcard(keys.reserved) == 0 and redis_client.llen(keys.queue) == 0

    # the remaining worker serves the queue: nothing was lost on the way
    for index in range(3):
        push(redis_client, PREFIX, "mail", make_payload(job_id=f"after{index}", run_s=0.01))
    wait_for(lambda: len(record.read_text().splitlines()) == 5, what="three more jobs")
    ids = [line.split()[0] for line in record.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 5


def _busy_reason() -> str:
    return "scale down: busy, finishes its job first"


def test_a_refused_pool_keeps_its_slots_and_every_other_pool_still_scales(
    supervisord: Supervisord, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Issue 19.1: one pool whose sections Supervisor would refuse (a missing log directory)
    froze every pool. Now it keeps its last good sections, says why, and the others apply."""
    mail = worker_policy(redis_url=redis_server.url, queue="mail", log_dir=tmp_path / "logs")
    orders = worker_policy(redis_url=redis_server.url, queue="orders", log_dir=tmp_path / "logs")
    include = supervisord.include_dir / "workers.conf"
    act, client = make_actuator(supervisord.url, include, {"mail": mail, "orders": orders})
    converge(act, {"mail": 2, "orders": 1})
    mail_sections = _pool_sections(include, "mail-worker_")
    workers = pids(client, "mail-worker_")
    # Valid as a policy, refused by Supervisor: the log directory does not exist.
    missing = tmp_path / "no" / "such" / "dir" / "mail.log"
    bad = mail.model_copy(
        update={"supervisor": mail.supervisor.model_copy(update={"stdout_logfile": str(missing)})}
    )
    late = worker_policy(
        redis_url=redis_server.url,
        queue="late",
        log_dir=tmp_path / "logs",
        supervisor={"stdout_logfile": str(missing.with_name("late.log"))},
    )
    act.policies = {"mail": bad, "orders": orders, "late": late}
    report = act.apply({"mail": 3, "orders": 3, "late": 1})
    assert report.error is None
    assert set(report.refused) == {"mail", "late"}
    assert "does not exist" in report.refused["mail"] and "mail.toml" in report.refused["mail"]
    assert "keeping its 2 running slot(s)" in report.refused["mail"]
    assert "none of its slots is added" in report.refused["late"]
    assert report.after == {"mail": 2, "orders": 3, "late": 0}
    assert _pool_sections(include, "mail-worker_") == mail_sections
    assert "late-worker" not in include.read_text()
    converge(act, {"mail": 3, "orders": 3, "late": 1})
    assert len(pids(client, "orders-worker_")) == 3  # the healthy pool scaled meanwhile
    assert pids(client, "mail-worker_") == workers  # never touched
    # Fixing the policy applies at once: no backoff left over from the refusal.
    act.policies = {"mail": mail, "orders": orders}
    report = act.apply({"mail": 3, "orders": 3})
    assert report.error is None and report.refused == {} and report.after["mail"] == 3
    converge(act, {"mail": 3, "orders": 3})
    assert len(pids(client, "mail-worker_")) == 3


def test_a_running_pools_deleted_log_directory_leaves_it_out_and_the_others_apply(
    supervisord: Supervisord, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Issue 19.1, the rest: the log directory of a running pool deleted made supervisord
    refuse the whole file, the live one too, so nothing applied. Now that pool's sections are
    left out of the file (its slots keep running, untouched), the others apply, and once the
    directory is back its sections return exactly as they were: nothing restarts."""
    mail_logs, orders_logs = tmp_path / "mail-logs", tmp_path / "orders-logs"
    mail = worker_policy(redis_url=redis_server.url, queue="mail", log_dir=mail_logs)
    orders = worker_policy(redis_url=redis_server.url, queue="orders", log_dir=orders_logs)
    include = supervisord.include_dir / "workers.conf"
    act, client = make_actuator(supervisord.url, include, {"mail": mail, "orders": orders})
    converge(act, {"mail": 2, "orders": 1})
    mail_sections = _pool_sections(include, "mail-worker_")
    workers = pids(client, "mail-worker_")
    shutil.rmtree(mail_logs)
    report = act.apply({"mail": 3, "orders": 3})
    assert report.error is None, report.error
    assert set(report.refused) == {"mail"} and str(mail_logs) in report.refused["mail"]
    assert "2 serving slot(s) keep running" in report.refused["mail"]
    assert report.after == {"mail": 2, "orders": 3}
    assert _pool_sections(include, "mail-worker_") == {}
    assert not report.notes  # its slots missing from the file are not "adopted" drift
    converge(act, {"mail": 3, "orders": 3})
    assert len(pids(client, "orders-worker_")) == 3
    assert pids(client, "mail-worker_") == workers  # never stopped, never removed
    mail_logs.mkdir()  # recovers at the next apply: no backoff
    report = act.apply({"mail": 2, "orders": 3})
    assert report.error is None and report.refused == {}
    assert _pool_sections(include, "mail-worker_") == mail_sections
    assert not [c for c in report.changes if c.pool == "mail"]  # loaded as it runs
    converge(act, {"mail": 3, "orders": 3})
    now = pids(client, "mail-worker_")
    assert len(now) == 3 and {n: now[n] for n in workers} == workers


class VanishingLogDir(SupervisorFile):
    """The include file, with a log directory deleted right after the next write: between
    our check and supervisord's reread (the race the reread fallback is for)."""

    doomed: Path | None = None

    def write(self, text: str) -> bool:
        wrote = super().write(text)
        if self.doomed is not None:
            shutil.rmtree(self.doomed)
            self.doomed = None
        return wrote


def test_a_log_directory_deleted_before_the_reread_holds_only_its_pool(
    supervisord: Supervisord, redis_server: RedisServer, tmp_path: Path
) -> None:
    """supervisord refuses a section the live file had already (our check passed a moment
    before): that pool is left out and held, the others apply in the same call."""
    clock = FakeClock()
    mail_logs = tmp_path / "mail-logs"
    mail = worker_policy(redis_url=redis_server.url, queue="mail", log_dir=mail_logs)
    orders = worker_policy(redis_url=redis_server.url, queue="orders", log_dir=tmp_path / "o")
    file = VanishingLogDir(path=supervisord.include_dir / "workers.conf", backups=3)
    client = RecordingClient(supervisord.url)
    act = Actuator(
        client=client,
        file=file,
        policies={"mail": mail, "orders": orders},
        clock=clock,
        retry_initial_s=1.0,
        retry_max_s=5.0,
    )
    converge(act, {"mail": 2, "orders": 1})
    workers = pids(client, "mail-worker_")
    file.doomed = mail_logs
    report = act.apply({"mail": 2, "orders": 2})
    assert report.error is None, report.error
    assert set(report.refused) == {"mail"} and "CANT_REREAD" in report.refused["mail"]
    assert str(mail_logs) in report.refused["mail"]
    assert report.after == {"mail": 2, "orders": 2}
    assert _pool_sections(file.path, "mail-worker_") == {}
    converge(act, {"mail": 2, "orders": 2})
    assert len(pids(client, "orders-worker_")) == 2
    assert pids(client, "mail-worker_") == workers
    mail_logs.mkdir()
    clock.advance(10)  # held with a backoff (our check could not see it coming)
    report = act.apply({"mail": 2, "orders": 2})
    assert report.error is None and report.refused == {}
    assert len(_pool_sections(file.path, "mail-worker_")) == 2
    assert pids(client, "mail-worker_") == workers


def _pool_sections(include: Path, prefix: str) -> dict[str, str]:
    texts = slot_texts(include.read_text())
    return {name: text for name, text in texts.items() if name.startswith(prefix)}


def _two_mail_slots(
    supervisord: Supervisord, redis_server: RedisServer, tmp_path: Path, clock: FakeClock
) -> tuple[Policy, Policy, Actuator, RecordingClient]:
    """Pool mail at 2 slots, and an edit of it that supervisord refuses while our own check
    passes (once ACT_ONLY_HERE is set here: supervisord's environment lacks it)."""
    policy = worker_policy(redis_url=redis_server.url, queue="mail", log_dir=tmp_path / "logs")
    include = supervisord.include_dir / "workers.conf"
    act, client = make_actuator(supervisord.url, include, {"mail": policy}, clock=clock)
    converge(act, {"mail": 2})
    bad = policy.model_copy(update={"command": policy.command + " --memory=%(ENV_ACT_ONLY_HERE)s"})
    return policy, bad, act, client


def test_a_pool_supervisord_refuses_at_reread_is_held_alone(
    supervisord: Supervisord,
    redis_server: RedisServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    policy, bad, act, client = _two_mail_slots(supervisord, redis_server, tmp_path, clock)
    include = act.file.path
    orders = worker_policy(redis_url=redis_server.url, queue="orders", log_dir=tmp_path / "logs")
    good = include.read_text()
    workers = pids(client, "mail-worker_")
    # supervisord refuses our new file although our check (in our environment) passes:
    # %(ENV_X)s is set here but not in supervisord's environment. Only that pool is held
    # back (its last good sections are put back); the other pool is applied.
    monkeypatch.setenv("ACT_ONLY_HERE", "1")
    act.policies = {"mail": bad, "orders": orders}
    report = act.apply({"mail": 3, "orders": 2})
    assert report.error is None, report.error
    assert "CANT_REREAD" in report.refused["mail"] and "ENV_ACT_ONLY_HERE" in report.refused["mail"]
    assert "Available names" not in report.refused["mail"]  # not the whole environment
    assert report.after == {"mail": 2, "orders": 2}
    assert _pool_sections(include, "mail-worker_") == slot_texts(good)
    assert "--memory=%(ENV_ACT_ONLY_HERE)s" in act.file.rejected_path.read_text()
    assert len(act.file.backup_paths()) == 1  # the refused text is not kept as a version
    converge(act, {"mail": 3, "orders": 2})  # held: no new attempt while its backoff runs
    assert pids(client, "mail-worker_") == workers
    assert len(pids(client, "orders-worker_")) == 2
    clock.advance(10)  # the backoff ran out: asked again, refused again, held again
    report = act.apply({"mail": 3, "orders": 2})
    assert "CANT_REREAD" in report.refused["mail"] and report.error is None
    assert pids(client, "mail-worker_") == workers
    act.policies = {"mail": policy}
    converge(act, {"mail": 2})


def test_a_reload_failure_rolls_back_and_reloads_the_last_good_file(
    supervisord: Supervisord,
    redis_server: RedisServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    policy, bad, act, client = _two_mail_slots(supervisord, redis_server, tmp_path, clock)
    include = act.file.path
    good = include.read_text()
    workers = pids(client, "mail-worker_")
    versions = len(act.file.backup_paths())
    monkeypatch.setenv("ACT_ONLY_HERE", "1")

    # 2. another include file is broken: every reread fails, ours is rolled back anyway.
    (supervisord.include_dir / "broken.conf").write_text("[program:broken\ncommand=x\n")
    clock.advance(10)
    report = act.apply({"mail": 3})
    assert report.error is not None and report.rolled_back
    assert "another file" in report.error
    assert include.read_text() == good
    assert pids(client, "mail-worker_") == workers
    # retries did not fill the versions
    assert len(act.file.backup_paths()) <= min(versions + 1, act.file.backups)

    (supervisord.include_dir / "broken.conf").unlink()

    # 3. an earlier apply wrote the refused text and died (or its reread timed out) before
    # supervisord said no: the next apply finds it pending, and rolls it back all the same.
    act.policies = {"mail": bad}
    act.file.write(act.plan({"mail": 3}).new_text)  # written, marked pending, never reread
    act.replacer.checkpoint()  # the surge-first replacement it began, saved before the write
    assert act.file.pending() and "ENV_ACT_ONLY_HERE" in include.read_text()
    clock.advance(10)
    report = act.apply({"mail": 3})
    assert report.error is not None and report.rolled_back
    assert include.read_text() == good
    assert pids(client, "mail-worker_") == workers

    act.policies = {"mail": policy}
    clock.advance(10)
    converge(act, {"mail": 3})
    now = pids(client, "mail-worker_")
    assert len(now) == 3 and {n: now[n] for n in workers} == workers


def test_a_restarted_autoscaler_adopts_the_running_slots(
    supervisord: Supervisord, redis_server: RedisServer, tmp_path: Path
) -> None:
    policy = worker_policy(redis_url=redis_server.url, queue="mail", log_dir=tmp_path / "logs")
    include = supervisord.include_dir / "workers.conf"
    first, _ = make_actuator(supervisord.url, include, {"mail": policy})
    converge(first, {"mail": 3})
    workers = pids(first.client, "mail-worker_")
    stat = (include.stat().st_ino, include.stat().st_mtime_ns)

    second, client = make_actuator(supervisord.url, include, {"mail": policy})
    assert second.file_counts() == second.current_counts() == {"mail": 3}
    report = second.apply({"mail": 3})
    assert report.converged and client.state_changing_calls() == []
    assert (include.stat().st_ino, include.stat().st_mtime_ns) == stat
    assert pids(client, "mail-worker_") == workers

    # Drift: the file is gone (a deploy wiped conf.d). The running slots are adopted, the
    # file is written again with them, and nothing restarts.
    include.unlink()
    third, client = make_actuator(supervisord.url, include, {"mail": policy})
    report = third.apply(None)  # keep what runs
    assert report.notes == [
        f"mail-worker_0{i} is RUNNING but missing from the file: adopting it" for i in range(3)
    ]
    assert report.wrote_file and report.changes == []
    converge(third, None)
    assert pids(client, "mail-worker_") == workers
    assert third.file_counts() == {"mail": 3}


def test_a_converged_apply_writes_nothing_and_changes_nothing(
    supervisord: Supervisord, redis_server: RedisServer, tmp_path: Path
) -> None:
    policy = worker_policy(redis_url=redis_server.url, queue="mail", log_dir=tmp_path / "logs")
    include = supervisord.include_dir / "workers.conf"
    act, client = make_actuator(supervisord.url, include, {"mail": policy})
    converge(act, {"mail": 2})
    supervisord_log = supervisord.directory / "supervisord.log"
    before = (
        include.stat().st_ino,
        include.stat().st_mtime_ns,
        supervisord_log.read_text(),
        pids(client, "mail-worker_"),
        [p.read_text() for p in act.file.backup_paths()],
    )
    client.calls.clear()
    for _ in range(3):
        report = act.apply({"mail": 2})
        assert report.converged
        assert not report.wrote_file and not report.reread and report.changes == []
    assert client.calls == ["getAllProcessInfo"] * 3  # one read per apply, nothing else
    after = (
        include.stat().st_ino,
        include.stat().st_mtime_ns,
        supervisord_log.read_text(),
        pids(client, "mail-worker_"),
        [p.read_text() for p in act.file.backup_paths()],
    )
    assert after == before
    assert not act.file.pending()


def test_a_policy_edit_replaces_slots_surge_first_one_at_a_time(
    supervisord: Supervisord, redis_server: RedisServer, tmp_path: Path
) -> None:
    policy = worker_policy(redis_url=redis_server.url, queue="mail", log_dir=tmp_path / "logs")
    include = supervisord.include_dir / "workers.conf"
    act, client = make_actuator(supervisord.url, include, {"mail": policy})
    converge(act, {"mail": 3})
    old = pids(client, "mail-worker_")
    edited = policy.model_copy(update={"command": policy.command + " --tries=2"})
    plan = act.plan({"mail": 3})
    assert plan.changes == []  # the same policy: nothing to replace
    act.policies = {"mail": edited}
    plan = act.plan({"mail": 3})
    # A new slot first (the surge), then each old one in turn, once its replacement runs.
    assert [(c.action, c.slot) for c in plan.changes] == [("add", "mail-worker_03")] + [
        ("replace", f"mail-worker_0{i}") for i in range(3)
    ]
    assert all("surge-first" in c.reason for c in plan.changes[1:])
    floor: list[int] = []
    converge(act, {"mail": 3}, on_tick=lambda r: floor.append(running(client)))
    new = pids(client, "mail-worker_")
    assert len(new) == 3
    assert not set(new.values()) & set(old.values())  # every slot runs the new command
    assert min(floor) >= 3  # never fewer workers than the pool's count
    commands = {c["name"]: c["command"] for c in client.config_info()}
    assert all(commands[name].endswith("--tries=2") for name in new)
    assert len(section_names(include.read_text())) == 3
    assert not act.file.pending()


def test_fatal_slots_are_reported_and_restarted_with_backoff(
    supervisord: Supervisord, tmp_path: Path
) -> None:
    clock = FakeClock()
    policy = worker_policy(
        redis_url="redis://127.0.0.1:1/0", queue="bad", log_dir=tmp_path / "logs"
    ).model_copy(update={"command": f'{sys.executable} -c "raise SystemExit(3)" --queue=bad'})
    policy = policy.model_copy(
        update={"supervisor": policy.supervisor.model_copy(update={"startretries": 0})}
    )
    include = supervisord.include_dir / "workers.conf"
    act, client = make_actuator(supervisord.url, include, {"bad": policy}, clock=clock)
    act.apply({"bad": 1})

    def fatal() -> bool:
        return any(p.statename == "FATAL" for p in client.processes())

    wait_for(fatal, what="the slot to go FATAL")
    report = act.apply({"bad": 1})
    assert [(c.action, c.reason[:5]) for c in report.changes] == [("start", "FATAL")]
    wait_for(fatal, what="FATAL again")
    held = act.apply({"bad": 1})
    assert held.changes == []  # not restarted again before its backoff ends
    (problem,) = held.problems
    assert problem.state == "FATAL" and "next start attempt in 30s" in problem.detail
    clock.advance(31)
    assert [c.action for c in act.apply({"bad": 1}).changes] == ["start"]


def test_http_with_credentials_never_shows_the_password(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    from tests.conftest import require_binary

    require_binary("supervisord")
    server = Supervisord(tmp_path / "sv", username="admin", password="s3cret-pw").start()
    lines: list[str] = []
    sink = logger.add(lines.append, level="DEBUG")
    try:
        policy = worker_policy(redis_url=redis_server.url, queue="mail", log_dir=tmp_path / "logs")
        include = server.include_dir / "workers.conf"
        act, client = make_actuator(
            server.http_url, include, {"mail": policy}, username="admin", password="s3cret-pw"
        )
        converge(act, {"mail": 2})
        assert len(pids(client, "mail-worker_")) == 2
        bad, _ = make_actuator(
            server.http_url, include, {"mail": policy}, username="admin", password="wrong-pw"
        )
        report = bad.apply({"mail": 3})
        assert report.error is not None and "authentication failed" in report.error
        shown = "".join(lines) + json.dumps(report.to_json())
        assert "s3cret-pw" not in shown and "wrong-pw" not in shown
    finally:
        logger.remove(sink)
        server.stop()


def test_supervisord_down_is_a_clear_error_with_backoff_then_recovery(
    supervisord: Supervisord, redis_server: RedisServer, tmp_path: Path
) -> None:
    clock = FakeClock()
    policy = worker_policy(redis_url=redis_server.url, queue="mail", log_dir=tmp_path / "logs")
    include = supervisord.include_dir / "workers.conf"
    act, client = make_actuator(supervisord.url, include, {"mail": policy}, clock=clock)
    supervisord.stop()
    first = act.apply({"mail": 1})
    assert first.error is not None and "unreachable" in first.error
    assert first.retry_in_s == pytest.approx(0.2)
    assert not include.exists()  # nothing written while supervisord cannot be asked
    client.calls.clear()
    skipped = act.apply({"mail": 1})
    assert skipped.skipped and skipped.error == first.error and client.calls == []
    clock.advance(0.3)
    second = act.apply({"mail": 1})
    assert second.retry_in_s == pytest.approx(0.4)  # backing off: x2 per failure
    supervisord.start()
    clock.advance(1.0)
    converge(act, {"mail": 1})
    assert len(pids(client, "mail-worker_")) == 1


def test_call_outcomes_on_a_real_supervisord(supervisord: Supervisord, tmp_path: Path) -> None:
    (supervisord.include_dir / "w.conf").write_text(
        f'[program:w_00]\ncommand={sys.executable} -c "import time; time.sleep(600)"\nstartsecs=0\n'
    )
    client = SupervisorClient(supervisord.url)
    client.reload_config()

    def change(action: Action, slot: str = "w_00") -> SlotChange:
        return SlotChange(slot=slot, pool=None, action=action, reason="test")

    done, failed = execute(client, [change("add"), change("add", "w_01")])
    assert done == [change("add")]
    assert len(failed) == 1 and is_unknown_name(failed[0][1])  # w_01 is in no file
    wait_for(lambda: pids(client, "w_"), what="w_00 running")
    assert execute(client, [change("add")]) == ([change("add")], [])  # ALREADY_ADDED: done
    assert execute(client, [change("remove")]) == ([], [])  # STILL_RUNNING: later
    assert execute(client, [change("stop")]) == ([change("stop")], [])
    wait_for(lambda: client.processes()[0].statename == "STOPPED", what="w_00 stopped")
    assert execute(client, [change("stop"), change("remove")])[1] == []  # NOT_RUNNING: fine
    assert client.processes() == []
