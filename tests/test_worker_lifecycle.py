"""Worker lifecycle on a real stack (redis-server, supervisord, the stand-in worker): measured
memory against /proc, recycling a leaking worker, and `autoscaler restart` surge-first.

"Never fewer RUNNING workers" is checked by a thread that samples supervisord every 0.2 s; no
assertion is about elapsed time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from autoscaler.act.retire_state import STATE_NAME, load
from autoscaler.observe.observer import Observer
from autoscaler.policy.loader import load_policies
from autoscaler.supervisord.include_file import default_state_dir, section_names
from autoscaler.supervisord.rpc import SupervisorClient
from autoscaler.testing.sandbox import PREFIX, Sandbox, SandboxPool
from tests.act_helpers import make_actuator, wait_for
from tests.conftest import require_binary


class RunningSampler:
    """Counts a pool's RUNNING slots every 0.2 s, and remembers every PID and peak RSS seen."""

    def __init__(self, url: str, prefix: str) -> None:
        self.client = SupervisorClient(url)
        self.prefix = prefix
        self.counts: list[int] = []
        self.pids: set[int] = set()
        self.peak_rss_mb: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RunningSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            running = [
                p
                for p in self.client.processes()
                if p.name.startswith(self.prefix) and p.statename == "RUNNING"
            ]
            self.counts.append(len(running))
            for p in running:
                self.pids.add(p.pid)
                try:
                    rss = psutil.Process(p.pid).memory_info().rss / 2**20
                except psutil.Error:
                    continue
                self.peak_rss_mb[p.pid] = max(rss, self.peak_rss_mb.get(p.pid, 0.0))
            self._stop.wait(0.2)


def running_pids(sandbox: Sandbox, prefix: str) -> dict[str, int]:
    client = SupervisorClient(sandbox.supervisord.url)
    try:
        return {
            p.name: p.pid
            for p in client.processes()
            if p.name.startswith(prefix) and p.statename == "RUNNING"
        }
    finally:
        client.close()


def start_pool(sandbox: Sandbox, count: int) -> dict[str, int]:
    policies = load_policies(sandbox.policies_dir)
    actuator, client = make_actuator(sandbox.supervisord.url, sandbox.include_file, policies)
    pool = next(iter(policies))
    wait_for(lambda: actuator.apply({pool: count}).settled, timeout_s=60, what="the pool running")
    client.close()
    return running_pids(sandbox, f"sandbox-{pool}_")


def restart_cli(sandbox: Sandbox, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "autoscaler", "restart", *args],
        env=sandbox.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@contextlib.contextmanager
def daemon_running(box: Sandbox, log_path: Path) -> Iterator[None]:
    """`autoscaler run` on the sandbox (a 0.5 s interval), stopped with SIGTERM after."""
    with log_path.open("w") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "autoscaler", "run"],
            env=box.env(AUTOSCALER_INTERVAL_S="0.5"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(60)


def fixed_pool(name: str, count: int, **options: Any) -> SandboxPool:
    """A pool held at `count` workers (min = static = max), whatever the load."""
    return SandboxPool(
        name=name,
        queues=(name,),
        min_processes=count,
        static_processes=count,
        max_processes=count,
        **options,
    )


def surging(state_file: Path) -> bool:
    """A replacement's new slot has been added."""
    return any(r.replacement for r in load(state_file).retiring.values())


@pytest.fixture
def sandbox_of(tmp_path: Path) -> Iterator[Callable[[SandboxPool], Sandbox]]:
    """Start a sandbox (real redis-server and supervisord) with one pool; stopped after."""
    require_binary("redis-server")
    require_binary("supervisord")
    made: list[Sandbox] = []

    def make(pool: SandboxPool) -> Sandbox:
        made.append(Sandbox(tmp_path.resolve() / "s", pools=(pool,)).start())
        return made[-1]

    yield make
    for box in made:
        box.stop()


@pytest.fixture
def work(sandbox_of: Callable[[SandboxPool], Sandbox]) -> Sandbox:
    return sandbox_of(fixed_pool("work", 3))


@pytest.mark.integration
def test_measured_rss_is_the_workers_and_their_childrens_as_proc_says(
    sandbox_of: Callable[[SandboxPool], Sandbox],
) -> None:
    pool = SandboxPool(name="mem", queues=("mem",), worker_args="--grow-mb-per-job 8")
    box = sandbox_of(pool)
    start_pool(box, 2)
    box.push("mem", 6, run_s=0.01)
    wait_for(lambda: len(box.finished_jobs()) == 6, what="six jobs done")
    policies = load_policies(box.policies_dir)
    observer = Observer(
        policies=policies,
        client=box.client(),
        prefix=PREFIX,
        supervisor=SupervisorClient(box.supervisord.url),
    )
    try:
        observation = observer.observe()
    finally:
        observer.close()
    usages = {u.slot: u for u in observation.slots}
    assert len(usages) == 2
    for usage in usages.values():
        assert usage.state == "RUNNING" and usage.rss_mb is not None
        assert abs(usage.rss_mb - proc_rss_mb(usage.pid)) <= 0.03 * usage.rss_mb
        assert usage.age_s is not None and usage.age_s >= 0
    memory = observation.pools["mem"].memory
    assert memory is not None
    total = sum(u.rss_mb or 0.0 for u in usages.values())
    assert memory.total_mb == pytest.approx(total)
    assert memory.max_mb == max(u.rss_mb or 0.0 for u in usages.values())
    assert memory.max_mb > 40  # the leak is counted: six jobs x 8 MB over two workers


def proc_rss_mb(pid: int) -> float:
    """VmRSS of a process and all its descendants, read from /proc by hand."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    family, todo = [], [pid]
    while todo:
        current = todo.pop()
        family.append(current)
        todo.extend(child for child, parent in parents.items() if parent == current)
    total_kb = 0
    for member in family:
        for line in Path(f"/proc/{member}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total_kb += int(line.split()[1])
    return total_kb / 1024


@pytest.mark.integration
@pytest.mark.slow
def test_a_leaking_worker_is_recycled_surge_first_before_its_limit_doubles(
    sandbox_of: Callable[[SandboxPool], Sandbox], tmp_path: Path
) -> None:
    limit_mb = 70.0
    box = sandbox_of(
        fixed_pool(
            "leak",
            2,
            worker_args="--grow-mb-per-job 6",
            lifecycle={"max_rss_mb": limit_mb, "alert_recycles_per_hour": 100},
        )
    )
    first = start_pool(box, 2)
    pushed: list[str] = []
    with (
        daemon_running(box, tmp_path / "daemon.log"),
        RunningSampler(box.supervisord.url, "sandbox-leak_") as sampler,
    ):
        # One job per 0.5 s grows each worker about 6 MB/s: the ~12 s from the limit to double
        # it covers a tick, a new slot's start and the stop even on a loaded CI machine.
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            pushed += box.push("leak", 1, run_s=0.05)
            time.sleep(0.5)
            if len(sampler.pids - set(first.values())) >= 4:
                break
        wait_for(lambda: len(box.finished_jobs()) == len(pushed), what="every job done")
    text = (tmp_path / "daemon.log").read_text()
    assert "recycling sandbox-leak_" in text, text[-3000:]
    replaced = set(first.values()) - set(running_pids(box, "sandbox-leak_").values())
    assert replaced == set(first.values())  # both first workers were recycled
    assert len(sampler.pids) >= 6  # and their successors too, in turn
    assert min(sampler.counts) >= 2
    print(f"peak RSS per worker (MB): {sorted(round(v) for v in sampler.peak_rss_mb.values())}")
    assert max(sampler.peak_rss_mb.values()) < 2 * limit_mb
    assert Counter(box.finished_jobs()) == Counter(pushed)  # each exactly once


@pytest.mark.integration
@pytest.mark.slow
def test_restart_replaces_every_worker_under_load_without_a_capacity_dip(
    work: Sandbox,
) -> None:
    first = start_pool(work, 3)
    pushed = work.push("work", 80, run_s=0.3)
    with RunningSampler(work.supervisord.url, "sandbox-work_") as sampler:
        cli = restart_cli(work, "work")
        output, _ = cli.communicate(timeout=180)
        wait_for(lambda: len(work.finished_jobs()) == len(pushed), what="every job done")
    assert cli.returncode == 0, output
    now = running_pids(work, "sandbox-work_")
    assert len(now) == 3
    assert not set(now.values()) & set(first.values()), output
    assert min(sampler.counts) >= 3
    assert Counter(work.finished_jobs()) == Counter(pushed)
    assert "work: done, 3 old worker(s) replaced and gone" in output
    assert not (default_state_dir(work.include_file) / STATE_NAME).exists()
    assert len(section_names(work.include_file.read_text())) == 3


@pytest.mark.integration
@pytest.mark.slow
def test_restart_beside_the_daemon_neither_fights(work: Sandbox, tmp_path: Path) -> None:
    first = start_pool(work, 3)
    with daemon_running(work, tmp_path / "daemon.log"):
        pushed = work.push("work", 40, run_s=0.3)
        with RunningSampler(work.supervisord.url, "sandbox-work_") as sampler:
            cli = restart_cli(work, "--all")
            output, _ = cli.communicate(timeout=180)
            wait_for(lambda: len(work.finished_jobs()) == len(pushed), what="every job done")
    assert cli.returncode == 0, output
    assert not set(running_pids(work, "sandbox-work_").values()) & set(first.values())
    assert min(sampler.counts) >= 3
    assert Counter(work.finished_jobs()) == Counter(pushed)


@pytest.mark.integration
def test_restart_stops_when_a_new_worker_cannot_start_and_keeps_the_old_ones(
    sandbox_of: Callable[[SandboxPool], Sandbox], tmp_path: Path
) -> None:
    marker = tmp_path / "broken-deploy"
    box = sandbox_of(fixed_pool("fragile", 2, worker_args=f"--refuse-start-if {marker}"))
    first = start_pool(box, 2)
    marker.touch()  # the new code does not boot
    cli = restart_cli(box, "fragile")
    output, _ = cli.communicate(timeout=180)
    assert cli.returncode == 1, output
    assert "did not start" in output and "kept" in output
    actuator, client = make_actuator(
        box.supervisord.url, box.include_file, load_policies(box.policies_dir)
    )
    wait_for(lambda: actuator.apply(None).converged, what="the failed slot removed")
    client.close()
    assert running_pids(box, "sandbox-fragile_") == first
    assert len(section_names(box.include_file.read_text())) == 2


@pytest.mark.integration
def test_ctrl_c_midway_leaves_no_extra_slot(
    sandbox_of: Callable[[SandboxPool], Sandbox],
) -> None:
    box = sandbox_of(fixed_pool("slow", 2))
    start_pool(box, 2)
    state_file = default_state_dir(box.include_file) / STATE_NAME
    cli = restart_cli(box, "slow")
    wait_for(lambda: surging(state_file), what="the first surge", timeout_s=60)
    os.kill(cli.pid, signal.SIGINT)
    output, _ = cli.communicate(timeout=60)
    assert cli.returncode == 130, output
    # Right after the exit: two slots in the file, two serving (one may be draining).
    assert len(section_names(box.include_file.read_text())) == 2
    client = SupervisorClient(box.supervisord.url)
    try:
        serving = [
            p
            for p in client.processes()
            if p.name.startswith("sandbox-slow_")
            and p.statename in ("RUNNING", "STARTING", "BACKOFF")
        ]
    finally:
        client.close()
    assert len(serving) == 2, output
    assert not load(state_file).restarts


@pytest.mark.integration
def test_restart_names_the_pools_of_an_unknown_one_and_fails_without_supervisord(
    work: Sandbox,
) -> None:
    unknown = restart_cli(work, "nope")
    output, _ = unknown.communicate(timeout=60)
    assert unknown.returncode == 2
    assert "nope" in output and "work" in output
    work.supervisord.stop()
    down = restart_cli(work, "work")
    output, _ = down.communicate(timeout=60)
    assert down.returncode == 1
    assert "unreachable" in output


@pytest.mark.integration
@pytest.mark.slow
def test_the_daemon_finishes_a_restart_whose_process_was_killed(
    work: Sandbox, tmp_path: Path
) -> None:
    first = start_pool(work, 3)
    state_file = default_state_dir(work.include_file) / STATE_NAME
    cli = restart_cli(work, "work")
    wait_for(lambda: surging(state_file), what="the first surge", timeout_s=60)
    cli.kill()  # SIGKILL: no clean-up; the record stays, its owner gone
    cli.communicate(timeout=30)
    assert load(state_file).restarts["work"].old
    with (
        RunningSampler(work.supervisord.url, "sandbox-work_") as sampler,
        daemon_running(work, tmp_path / "daemon.log"),
    ):
        wait_for(lambda: not state_file.exists(), what="the restart finished", timeout_s=120)
    now = running_pids(work, "sandbox-work_")
    assert len(now) == 3 and not set(now.values()) & set(first.values())
    assert min(sampler.counts) >= 3
    assert "restart done, 3 worker(s) replaced" in (tmp_path / "daemon.log").read_text()


class LiveSampler(RunningSampler):
    """Also counts every live worker (starting, running or stopping) of the sandbox."""

    def __init__(self, url: str) -> None:
        super().__init__(url, "sandbox-")
        self.live: list[int] = []
        self.running_per_pool: dict[str, list[int]] = {}

    def _run(self) -> None:
        while not self._stop.is_set():
            processes = [p for p in self.client.processes() if p.name.startswith(self.prefix)]
            self.live.append(
                sum(1 for p in processes if p.statename in {"STARTING", "RUNNING", "STOPPING"})
            )
            for pool in ("a", "b"):
                self.running_per_pool.setdefault(pool, []).append(
                    sum(
                        1
                        for p in processes
                        if p.name.startswith(f"sandbox-{pool}_") and p.statename == "RUNNING"
                    )
                )
            self._stop.wait(0.1)


@pytest.mark.integration
@pytest.mark.slow
def test_restart_all_on_a_full_budget_goes_pool_after_pool_within_it(tmp_path: Path) -> None:
    """Two pools of two 64 MB workers, a budget of 320 MB: room for one surge at a time. The
    restart replaces every worker surge-first without ever holding a sixth worker."""
    require_binary("redis-server")
    require_binary("supervisord")
    box = Sandbox(tmp_path.resolve() / "s", pools=(fixed_pool("a", 2), fixed_pool("b", 2)))
    box.start()
    try:
        policies = load_policies(box.policies_dir)
        actuator, client = make_actuator(box.supervisord.url, box.include_file, policies)
        wait_for(lambda: actuator.apply({"a": 2, "b": 2}).settled, timeout_s=60, what="4 up")
        client.close()
        first = running_pids(box, "sandbox-")
        pushed = box.push("a", 20, run_s=0.5) + box.push("b", 20, run_s=0.5)
        with LiveSampler(box.supervisord.url) as sampler:
            cli = subprocess.Popen(
                [sys.executable, "-m", "autoscaler", "restart", "--all"],
                env=box.env(AUTOSCALER_MEMORY_BUDGET_MB="320"),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            output, _ = cli.communicate(timeout=240)
            wait_for(lambda: len(box.finished_jobs()) == len(pushed), what="every job done")
        assert cli.returncode == 0, output
        print(f"most live workers at once: {max(sampler.live)}")
        assert "b: waiting for memory room: restart: one more worker (64 MB)" in output
        assert "over the budget" not in output
        now = running_pids(box, "sandbox-")
        assert len(now) == 4 and not set(now.values()) & set(first.values()), output
        assert max(sampler.live) == 5  # one surge at a time, never two
        assert min(sampler.running_per_pool["a"]) >= 2 and min(sampler.running_per_pool["b"]) >= 2
        assert Counter(box.finished_jobs()) == Counter(pushed)
    finally:
        box.stop()
