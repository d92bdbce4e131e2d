"""Faults stay local (issue 19): one bad pool, payload or file never freezes the others, and
every fault alerts. The adversarial scenarios of the issue, kept as tests on a real stack:
redis-server, supervisord and fake Laravel workers (autoscaler/testing/sandbox.py), driven by
the daemon's own Controller one tick at a time, so each assertion names the tick it is about.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoscaler.act.actuator import Actuator
from autoscaler.daemon.alerts import Alerter
from autoscaler.daemon.controller import Controller, TickResult
from autoscaler.daemon.lock import ControllerLock
from autoscaler.decide.plan import MemoryBudget
from autoscaler.observe.observer import Observer
from autoscaler.policy.loader import load_policies
from autoscaler.supervisord.include_file import default_state_dir
from autoscaler.supervisord.rpc import SupervisorClient
from autoscaler.testing.laravel import make_payload, push
from autoscaler.testing.sandbox import PREFIX, Sandbox, SandboxPool
from autoscaler.testing.stack import RedisServer, Supervisord
from tests.act_helpers import (
    busy_from_logs,
    converge,
    make_actuator,
    pids,
    wait_for,
    worker_policy,
)
from tests.conftest import require_binary

pytestmark = pytest.mark.integration

BURST = SandboxPool(
    name="burst",
    queues=("burst",),
    min_processes=1,
    static_processes=1,
    max_processes=4,
    slo_wait_s=4.0,
    run_time_s=0.5,
)
QUIET = SandboxPool(name="quiet", queues=("quiet",), max_processes=3, slo_wait_s=4.0)


def start_sandbox(root: Path) -> Sandbox:
    require_binary("redis-server")
    require_binary("supervisord")
    return Sandbox(root, pools=(BURST, QUIET)).start()


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    box = start_sandbox(tmp_path.resolve() / "s")
    yield box
    box.stop()


def controller_for(sandbox: Sandbox, *, budget_mb: float | None = None) -> Controller:
    settings = sandbox.settings()
    policies = load_policies(sandbox.policies_dir, usable_memory_mb=settings.usable_memory_mb)
    return Controller(
        policies=policies,
        observer=Observer.from_settings(settings, policies),
        actuator=Actuator.from_settings(settings, policies),
        budget=MemoryBudget(budget_mb=budget_mb or settings.memory_budget_mb, reserve_mb=0),
        alerter=Alerter(interval_s=3600),
    )


def reload(controller: Controller, sandbox: Sandbox) -> None:
    """What the daemon does when a policy file changes."""
    usable = sandbox.settings().usable_memory_mb
    controller.set_policies(load_policies(sandbox.policies_dir, usable_memory_mb=usable))


def old_backlog(sandbox: Sandbox, queue: str, count: int, *, age_s: float) -> None:
    """Jobs that have waited `age_s` already: far past the SLO, so decide wants max."""
    client = sandbox.client()
    for _ in range(count):
        push(client, PREFIX, queue, make_payload(run_s=0.5, created_at=time.time() - age_s))
    client.close()


def alerts(controller: Controller, kind: str) -> list[str]:
    return [f"{a.subject}: {a.message}" for a in controller.alerter.sent if a.kind == kind]


def ticks(controller: Controller, count: int, pause_s: float = 0.3) -> list[TickResult]:
    results = []
    for _ in range(count):
        results.append(controller.tick())
        time.sleep(pause_s)
    return results


def test_a_pool_supervisor_refuses_never_freezes_the_others(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Issue 19.1: a policy whose log directory does not exist froze every pool and alerted
    nothing; after the fix a retry backoff delayed recovery. Now: only that pool is held, it
    alerts by name, the others scale in the same tick, and the fix applies at the next tick."""
    controller = controller_for(sandbox)
    ticks(controller, 2)
    quiet_file = sandbox.policies_dir / "quiet.toml"
    good = quiet_file.read_text()
    missing = tmp_path / "no" / "such" / "dir" / "quiet.log"
    quiet_file.write_text(good.replace(str(sandbox.log_dir / "quiet.log"), str(missing)))
    reload(controller, sandbox)
    old_backlog(sandbox, "burst", 60, age_s=60)
    old_backlog(sandbox, "quiet", 60, age_s=60)
    result = controller.tick()
    assert result.report is not None and result.report.error is None
    assert result.plan.decisions["burst"].desired > 1
    assert result.report.after["burst"] == result.plan.decisions["burst"].desired
    assert result.report.after["quiet"] == 1  # kept its running slot
    assert "does not exist" in result.report.refused["quiet"]
    refused = alerts(controller, "pool_refused")
    assert len(refused) == 1 and refused[0].startswith("quiet: ") and "does not exist" in refused[0]
    assert "quiet" not in "".join(alerts(controller, "slo_missed_at_max"))
    text = sandbox.include_file.read_text()
    assert text.count("[program:sandbox-burst_") == result.report.after["burst"]
    assert text.count("[program:sandbox-quiet_") == 1 and str(missing) not in text
    ticks(controller, 2)
    assert len(alerts(controller, "pool_refused")) == 1  # once, not every tick

    quiet_file.write_text(good)  # the fix applies at the next tick: no backoff left over
    reload(controller, sandbox)
    result = controller.tick()
    assert result.report is not None and result.report.refused == {}
    assert result.report.after["quiet"] == result.plan.decisions["quiet"].desired > 1


def own_log_dir(sandbox: Sandbox, pool: str) -> Path:
    """Give `pool` a log directory of its own (before its first slot starts)."""
    log_dir = sandbox.root / f"{pool}-logs"
    log_dir.mkdir()
    policy = sandbox.policies_dir / f"{pool}.toml"
    shared = str(sandbox.log_dir / f"{pool}.log")
    policy.write_text(policy.read_text().replace(shared, str(log_dir / f"{pool}.log")))
    return log_dir


def test_a_running_pools_deleted_log_directory_never_freezes_the_others(
    sandbox: Sandbox,
) -> None:
    """Issue 19.1, the rest: deleting the log directory of a pool that already runs failed
    the whole apply (supervisord refuses the whole file, the live file included). Now: that
    pool keeps running as is and alerts with the directory, the others apply in the same
    tick, and recreating the directory recovers at the next tick."""
    log_dir = own_log_dir(sandbox, "quiet")
    controller = controller_for(sandbox)
    ticks(controller, 2)
    client = SupervisorClient(sandbox.supervisord.url)
    quiet_pids = wait_for(lambda: pids(client, "sandbox-quiet_"), what="the quiet slot runs")
    assert len(quiet_pids) == 1
    for log in log_dir.iterdir():
        log.unlink()
    log_dir.rmdir()
    old_backlog(sandbox, "burst", 60, age_s=60)
    result = controller.tick()
    assert result.report is not None and result.report.error is None
    assert result.plan.decisions["burst"].desired > 1
    burst = result.report.after["burst"]
    assert burst == result.plan.decisions["burst"].desired
    assert result.report.after["quiet"] == 1
    refused = alerts(controller, "pool_refused")
    assert len(refused) == 1 and refused[0].startswith("quiet: ") and str(log_dir) in refused[0]
    assert not alerts(controller, "apply_failed")
    wait_for(lambda: len(pids(client, "sandbox-burst_")) == burst, what="the new burst slots")
    ticks(controller, 2)
    assert pids(client, "sandbox-quiet_") == quiet_pids  # kept running, as it was
    assert len(alerts(controller, "pool_refused")) == 1  # once, not every tick

    log_dir.mkdir()  # the fix applies at the next tick: no backoff left over
    old_backlog(sandbox, "quiet", 60, age_s=60)
    result = controller.tick()
    assert result.report is not None and result.report.error is None
    assert result.report.refused == {}
    assert result.report.after["quiet"] == result.plan.decisions["quiet"].desired > 1
    assert pids(client, "sandbox-quiet_").items() >= quiet_pids.items()  # not restarted


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[None]:
    """A small tmpfs at `path` (root only): a disk that can be filled or made read-only."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root: run as root (CI does) to test a full disk")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}): a container?")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_full_disk_or_read_only_include_dir_alerts_once_with_the_cause(tmp_path: Path) -> None:
    """Issue 19.4: a full disk or a read-only include directory raised a traceback every tick,
    no alert, and slo_missed_at_max blamed capacity. Now: one apply_failed alert per cause,
    no capacity alert while nothing can be applied, and recovery once the disk is back."""
    root = tmp_path.resolve() / "s"
    include_dir = root / "sv" / "conf.d"
    with tmpfs(include_dir, "256k"):
        sandbox = start_sandbox(root)
        try:
            controller = controller_for(sandbox)
            ticks(controller, 2)
            filler = include_dir / "filler"
            with contextlib.suppress(OSError), filler.open("wb") as out:
                while True:
                    out.write(b"\0" * 4096)
                    out.flush()
            old_backlog(sandbox, "burst", 100, age_s=60)
            results = ticks(controller, 4)
            assert all(r.report is not None and r.report.error for r in results)
            failed = alerts(controller, "apply_failed")
            assert len(failed) == 1 and "No space left on device" in failed[0]
            assert results[-1].plan.decisions["burst"].desired == BURST.max_processes
            assert alerts(controller, "slo_missed_at_max") == []  # not a capacity problem

            subprocess.run(["mount", "-o", "remount,ro", str(include_dir)], check=True)
            ticks(controller, 3)
            failed = alerts(controller, "apply_failed")
            assert len(failed) == 2 and "Read-only file system" in failed[1]

            subprocess.run(["mount", "-o", "remount,rw", str(include_dir)], check=True)
            filler.unlink()
            controller.actuator.backoff.succeeded()  # not wait out the backoff in a test
            result = controller.tick()
            assert result.report is not None and result.report.error is None
            assert result.report.after["burst"] == BURST.max_processes
            assert not controller.applying.down
            leftovers = [p.name for p in include_dir.iterdir() if p.name.endswith(".tmp")]
            assert leftovers == []  # a failed write leaves no temp file for supervisord
        finally:
            sandbox.stop()


def test_a_poisoned_head_or_a_wrong_type_key_costs_only_its_own_queue(sandbox: Sandbox) -> None:
    """Issue 19.2 and 19.8: a head payload nested 1500 deep stopped every pool's scaling
    (RecursionError every tick); a key of another type alerted as redis_unreachable."""
    controller = controller_for(sandbox)
    ticks(controller, 2)
    client = sandbox.client()
    client.rpush(f"{PREFIX}queues:quiet", b"[" * 1500 + b"]" * 1500)
    old_backlog(sandbox, "burst", 60, age_s=60)
    result = controller.tick()
    assert result.report is not None and result.report.error is None
    assert result.plan.decisions["burst"].desired > 1  # scaling goes on
    quiet = result.observation.pools["quiet"].queues
    assert quiet is not None and quiet[0].pending >= 1
    assert "nested too deep" in controller.observer.head_problems["quiet"]

    client.delete(f"{PREFIX}queues:quiet")
    client.set(f"{PREFIX}queues:quiet", "not a list")
    ticks(controller, 2)
    assert alerts(controller, "redis_unreachable") == []
    unreadable = alerts(controller, "queue_unreadable")
    assert len(unreadable) == 1 and "holding quiet" in unreadable[0]
    assert "WRONGTYPE" in unreadable[0]
    client.close()


def test_a_pool_crashing_at_start_is_not_scaled_up_and_not_charged(sandbox: Sandbox) -> None:
    """Issue 19.3: a pool whose workers die at start was scaled to its max, and its
    BACKOFF/FATAL slots were charged against the budget, capping a healthy pool."""
    budget_mb = 5 * QUIET.memory_mb  # burst at max (4) and one quiet worker, no more
    controller = controller_for(sandbox, budget_mb=budget_mb)
    ticks(controller, 2)
    quiet_file = sandbox.policies_dir / "quiet.toml"
    text = quiet_file.read_text()
    start = text.index("command = ")
    end = text.index("\n", start)
    crash = "python3 -c 'import sys; sys.exit(3)' --queue=quiet --timeout=20"
    quiet_file.write_text(text[:start] + f'command = "{crash}"' + text[end:])
    reload(controller, sandbox)
    # The edit is rolled out surge-first (while the budget has room for one more worker): the
    # old worker keeps running and the new slot crashes at start.
    controller.tick()
    old_backlog(sandbox, "quiet", 100, age_s=60)
    old_backlog(sandbox, "burst", 100, age_s=60)
    most_quiet = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        result = controller.tick()
        most_quiet = max(most_quiet, result.plan.counts()["quiet"])
        if alerts(controller, "workers_crashing") and result.plan.counts()["burst"] == 4:
            break
        time.sleep(0.5)
    assert alerts(controller, "workers_crashing")[0].startswith("quiet: ")
    assert most_quiet <= 2  # never scaled up to its max (3): its worker and the surge slot
    kept = result.observation.pools["quiet"].workers
    assert kept is not None and kept.running == 1  # the old command still serves
    decision = result.plan.decisions["quiet"]
    assert "crash at start" in decision.reason or "slots crashed" in decision.reason
    assert result.plan.counts()["burst"] == BURST.max_processes  # the healthy pool got it all


def static_count(sandbox: Sandbox, pool: str, count: int) -> None:
    """Make `pool` keep exactly `count` workers (the `static` strategy): wants set by hand."""
    policy = sandbox.policies_dir / f"{pool}.toml"
    text = policy.read_text()
    if '[strategy]\nname = "static"' not in text:
        text = text.replace("[strategy.slo]", '[strategy]\nname = "static"\n\n[strategy.slo]')
    start = text.index("static_processes = ")
    end = text.index("\n", start)
    policy.write_text(text[:start] + f"static_processes = {count}" + text[end:])


def test_another_pools_draining_workers_never_cut_a_running_pool(tmp_path: Path) -> None:
    """Issue 19.8: the budget cap flapped while workers drained. Pool b is scaled down while
    its workers are busy, to make room for pool c; while b's workers finish their jobs, their
    memory was charged before pool a's running workers, so a (at its want) was cut 3 -> 1 and
    given its workers back once b's had exited. Now a keeps its 3 throughout, and c's new
    slots wait for the memory b's workers free."""
    require_binary("redis-server")
    require_binary("supervisord")
    pools = (
        SandboxPool(name="a", queues=("a",), static_processes=3, priority=200),
        SandboxPool(name="b", queues=("b",), static_processes=3, priority=300),
        SandboxPool(name="c", queues=("c",), static_processes=1, priority=50),
    )
    box = Sandbox(tmp_path.resolve() / "s", pools=pools).start()
    try:
        for pool in pools:
            static_count(box, pool.name, pool.static_processes)
        memory_mb = pools[0].memory_mb
        controller = controller_for(box, budget_mb=8 * memory_mb)  # a 3 + b 3 + c 1 fit
        client = SupervisorClient(box.supervisord.url)

        def serving() -> dict[str, int]:
            counts = dict.fromkeys("abc", 0)
            for process in client.processes():
                if process.statename == "RUNNING":
                    counts[process.name.split("_")[0].removeprefix("sandbox-")] += 1
            return counts

        controller.tick()
        wait_for(lambda: serving() == {"a": 3, "b": 3, "c": 1}, what="a 3, b 3, c 1 run")
        a_workers = pids(client, "sandbox-a_")
        box.push("b", 3, run_s=6.0)  # every b worker busy for 6 s: stopped, they drain
        redis = box.client()
        wait_for(lambda: redis.llen(f"{PREFIX}queues:b") == 0, what="b's workers take the jobs")
        redis.close()
        static_count(box, "b", 1)  # b gives up 2 workers' memory ...
        static_count(box, "c", 4)  # ... which c (the highest priority) wants
        reload(controller, box)

        a_counts, drained = [], False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            result = controller.tick()
            a_counts.append(result.plan.counts()["a"])
            workers = result.observation.pools["b"].workers
            assert workers is not None
            drained = drained or workers.draining > 0
            if drained and workers.draining == 0 and result.plan.counts()["c"] == 4:
                break
            time.sleep(0.5)
        print(f"a's count each tick while b drained: {a_counts}")
        assert drained  # b's workers did drain for some ticks (the case under test)
        assert set(a_counts) == {3}
        assert pids(client, "sandbox-a_") == a_workers  # never stopped, never replaced
        wait_for(lambda: serving() == {"a": 3, "b": 1, "c": 4}, what="a 3, b 1, c 4 run")
    finally:
        box.stop()


def tick_or_hang(controller: Controller) -> TickResult:
    """One tick in a thread: a tick blocked in open() would hang the test, not fail it."""
    results: list[TickResult] = []
    thread = threading.Thread(target=lambda: results.append(controller.tick()), daemon=True)
    thread.start()
    thread.join(60)
    assert results, "the tick is blocked (in open() on the FIFO?)"
    return results[0]


def test_a_fifo_at_a_slots_log_path_never_blocks_a_tick(sandbox: Sandbox) -> None:
    """Issue 19.6: a FIFO at a slot's log path blocked the daemon in open() forever."""
    controller = controller_for(sandbox)
    ticks(controller, 2)
    log = sandbox.log_dir / "quiet_00.log"
    assert log.exists()
    log.unlink()
    os.mkfifo(log)
    for fresh in (False, True):  # a log seen before, and one seen first as a FIFO
        if fresh:
            controller = controller_for(sandbox)
        old_backlog(sandbox, "burst", 20, age_s=60)
        result = tick_or_hang(controller)
        assert result.plan.decisions["burst"].desired > 1
        assert "FIFO" in controller.observer.log_problems["quiet"]


def test_a_symlinked_include_file_is_written_through_and_locked_once(
    supervisord: Supervisord, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Issue 19.7: two daemons, one given a symlink and one its target, were both active,
    and the first write replaced the symlink with a regular file."""
    target = tmp_path / "real" / "workers.conf"
    target.parent.mkdir()
    target.write_text("")
    link = supervisord.include_dir / "workers.conf"
    link.symlink_to(target)
    by_link = ControllerLock(state_dir=default_state_dir(link))
    by_target = ControllerLock(state_dir=default_state_dir(target))
    assert by_link.acquire()
    try:
        assert not by_target.acquire()  # one lock, whichever name a daemon was given
    finally:
        by_link.release()
    policy = worker_policy(redis_url=redis_server.url, queue="mail", log_dir=tmp_path / "logs")
    act, client = make_actuator(supervisord.url, link, {"mail": policy})
    converge(act, {"mail": 2})
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert target.read_text().count("[program:mail-worker_") == 2
    assert len(pids(client, "mail-worker_")) == 2


def test_a_metrics_port_already_taken_runs_without_metrics_and_alerts(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Issue 19.7: a metrics port already taken killed the daemon with a raw traceback."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        done = subprocess.run(
            [sys.executable, "-m", "autoscaler", "run", "--once"],
            env=sandbox.env(AUTOSCALER_METRICS_PORT=str(port)),
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        taken.close()
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
    assert f"cannot serve metrics on 127.0.0.1:{port}" in done.stderr
    assert "ALERT metrics_unavailable" in done.stderr
    assert "[program:sandbox-burst_00]" in sandbox.include_file.read_text()  # it applied


def test_a_worker_sigkilled_at_stopwaitsecs_is_not_logged_as_drained(
    supervisord: Supervisord, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Issue 19.8: workers SIGKILLed at stopwaitsecs were logged "STOPPED: drained"."""
    valid = worker_policy(
        redis_url=redis_server.url, queue="mail", log_dir=tmp_path / "logs", min_processes=0
    )
    # What check refuses (stopwaitsecs below --timeout) stands for a worker that outlives
    # its --timeout (no pcntl, a stuck call): SIGKILL cuts its job.
    sv = valid.supervisor.model_copy(update={"stopwaitsecs": 1})
    policy = valid.model_copy(update={"supervisor": sv})
    include = supervisord.include_dir / "workers.conf"
    act, client = make_actuator(supervisord.url, include, {"mail": policy})
    converge(act, {"mail": 1})
    redis = redis_server.client()
    push(redis, PREFIX, "mail", make_payload(job_id="long", run_s=60))
    redis.close()
    wait_for(lambda: busy_from_logs(client), what="the worker has the job in hand")
    act.apply({"mail": 0})  # SIGTERM; the job outlasts stopwaitsecs=1
    killed = []
    deadline = time.monotonic() + 30
    while not killed and time.monotonic() < deadline:
        killed = act.apply({"mail": 0}).killed()
        time.sleep(0.2)
    assert [c.slot for c in killed] == ["mail-worker_00"]
    assert "a job may have been interrupted" in killed[0].reason
    assert "drained" not in killed[0].reason.split(":")[0]


def test_temp_files_of_a_write_killed_midway_are_removed(
    supervisord: Supervisord, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Issue 19.8: a kill during the write left `.<file>.*.tmp` in conf.d for good."""
    policy = worker_policy(redis_url=redis_server.url, queue="mail", log_dir=tmp_path / "logs")
    include = supervisord.include_dir / "workers.conf"
    act, _client = make_actuator(supervisord.url, include, {"mail": policy})
    converge(act, {"mail": 1})
    stale = supervisord.include_dir / ".workers.conf.k2j4h1.tmp"
    stale.write_text("[program:half")
    stale_state = act.file.state_dir / ".workers.conf.1.x9a.tmp"
    stale_state.write_text("half")
    other = supervisord.include_dir / ".someone-else.conf.abc.tmp"  # not ours: left alone
    other.write_text("x")
    act.apply({"mail": 1})
    assert not stale.exists() and not stale_state.exists()
    assert other.exists()


def test_the_daemon_keeps_a_pool_whose_policy_file_is_gone_for_a_moment(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Issue 19.5: a `git checkout` removing a policy file for 4 s stopped every worker of its
    pool despite a backlog, logged at INFO. The real daemon, on a real stack."""
    log = tmp_path / "daemon.log"
    with log.open("ab") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "autoscaler", "run"],
            env=sandbox.env(AUTOSCALER_LOG_LEVEL="DEBUG"),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        client = SupervisorClient(sandbox.supervisord.url)

        def quiet() -> dict[str, int]:
            processes = client.processes()
            return {p.name: p.pid for p in processes if p.name.startswith("sandbox-quiet_")
                    and p.statename == "RUNNING"}  # fmt: skip

        wait_for(quiet, what="the quiet pool runs")
        workers = quiet()
        policy = sandbox.policies_dir / "quiet.toml"
        saved = policy.read_text()
        policy.unlink()
        wait_for(lambda: "quiet.toml is gone" in log.read_text(), what="the warning")
        ticks_then = log.read_text().count("| tick ")
        wait_for(lambda: log.read_text().count("| tick ") >= ticks_then + 4, what="4 ticks")
        assert quiet() == workers  # 4 s without its file: the pool still runs, untouched
        policy.write_text(saved)
        wait_for(lambda: "the policy file of pool quiet is back" in log.read_text(), what="back")
        assert quiet() == workers
        text = log.read_text()
        assert "WARNING" in text.split("quiet.toml is gone")[0].splitlines()[-1]
        assert "ALERT policy_missing" in text and "pool quiet removed" not in text
    finally:
        daemon.terminate()
        daemon.wait(60)
