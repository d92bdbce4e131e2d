"""A fleet of three hosts on one machine: one real redis-server, three real supervisords, three
`autoscaler run` daemons (subprocesses) with distinct host ids, include files and state dirs.

Nothing asserts on elapsed time: conditions are awaited with generous deadlines, and "within
the lease TTL + one tick" is counted in the new leader's own tick log lines.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autoscaler.fleet.keys import TTL_TICKS
from autoscaler.fleet.status import fleet_status
from autoscaler.supervisord.rpc import SupervisorClient, SupervisorUnavailable
from autoscaler.testing.sandbox import Sandbox, SandboxPool
from tests.conftest import require_binary
from tests.test_daemon_e2e import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEADLINE_S = 120.0
FLEET = "shop"
BURST = SandboxPool(
    name="burst",
    queues=("burst",),
    min_processes=2,
    static_processes=2,
    max_processes=9,
    slo_wait_s=4.0,
    run_time_s=0.5,
    memory_mb=64,
    slo_knobs={"scale_down_window_s": 3.0, "startup_s": 1.5},
)
# A worker of 256 MB: never fits the small host's 160 MB.
HEAVY = SandboxPool(
    name="heavy", queues=("heavy",), min_processes=1, max_processes=2, memory_mb=256
)
BUDGETS_MB = {"h1": 2048, "h2": 2048, "h3": 160}  # h3 holds two 64 MB workers at most


class Host:
    """One host: its own supervisord, include file, policies (its own log paths) and daemon."""

    def __init__(self, name: str, box: Sandbox, log: Path) -> None:
        self.name = name
        self.box = box
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start_daemon(self) -> None:
        env = self.box.env(
            AUTOSCALER_FLEET=FLEET,
            AUTOSCALER_HOST_ID=self.name,
            AUTOSCALER_MEMORY_BUDGET_MB=str(BUDGETS_MB[self.name]),
            AUTOSCALER_LOG_LEVEL="DEBUG",
        )
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "autoscaler", "run"], env=env, stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip

    def stop_daemon(self, sig: int = signal.SIGTERM) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(60)
        self.process = None
        return code

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def ticks(self, text: str | None = None) -> int:
        return len(re.findall(r"\| tick \d+", self.text() if text is None else text))

    def followed(self) -> list[tuple[str, int]]:
        """(leader, epoch) of every assignment stream this host started to follow, in order."""
        found = re.findall(r"following (\S+) \(epoch (\d+)\)", self.text())
        return [(leader, int(epoch)) for leader, epoch in found]

    def slots(self, pool: str) -> dict[str, str]:
        client = SupervisorClient(self.box.supervisord.url)
        try:
            return {
                p.name: p.statename
                for p in client.processes()
                if p.name.startswith(f"sandbox-{pool}_")
            }
        except SupervisorUnavailable:
            return {}
        finally:
            client.close()

    def kill(self) -> None:
        """The machine dies: its daemon, its supervisord and every worker get SIGKILL."""
        self.stop_daemon(signal.SIGKILL)
        client = SupervisorClient(self.box.supervisord.url)
        try:
            pids = [p.pid for p in client.processes() if p.pid]
        finally:
            client.close()
        process = self.box.supervisord.process
        assert process is not None
        process.kill()
        process.wait(30)
        self.box.supervisord.process = None
        for pid in pids:  # supervisord puts each worker in a process group of its own
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def running(self, pool: str) -> int:
        return sum(1 for state in self.slots(pool).values() if state == "RUNNING")


class Fleet:
    def __init__(self, root: Path) -> None:
        pools = (BURST, HEAVY)
        first = Sandbox(root / "h1", pools=pools)
        self.hosts = {"h1": Host("h1", first, root / "h1.log")}
        for name in ("h2", "h3"):
            box = Sandbox(root / name, pools=pools)
            box.redis = first.redis  # one Redis: the app's, shared by every host
            self.hosts[name] = Host(name, box, root / f"{name}.log")
        self.redis = first.redis

    def start(self) -> Fleet:
        self.redis.start()
        for host in self.hosts.values():
            host.box.root.mkdir(parents=True, exist_ok=True)
            host.box.log_dir.mkdir(exist_ok=True)
            host.box.supervisord.start()
            host.box.write_policies()
        for host in self.hosts.values():
            host.start_daemon()
        return self

    def stop(self) -> None:
        for host in self.hosts.values():
            host.stop_daemon()
        for host in self.hosts.values():
            host.box.supervisord.stop()
        self.redis.stop()

    def status(self) -> dict[str, Any]:
        client = self.redis.client()
        try:
            return fleet_status(client, FLEET, now_s=time.time())
        except Exception:
            return {"fleet": FLEET, "leader": None, "epoch": None, "hosts": []}
        finally:
            client.close()

    def running(self, pool: str, hosts: list[str] | None = None) -> dict[str, int]:
        names = hosts or list(self.hosts)
        return {name: self.hosts[name].running(pool) for name in names}

    def total(self, pool: str, hosts: list[str] | None = None) -> int:
        return sum(self.running(pool, hosts).values())

    def finished_jobs(self) -> list[str]:
        return [job for host in self.hosts.values() for job in host.box.finished_jobs()]

    def push(self, queue: str, count: int, run_s: float) -> list[str]:
        return self.hosts["h1"].box.push(queue, count, run_s=run_s)

    def at_rest(self, hosts: list[str] | None = None) -> bool:
        """Each pool's minimum fleet-wide, the burst pool spread over two hosts."""
        burst = self.running("burst", hosts)
        return sum(burst.values()) == 2 and max(burst.values()) == 1 and (
            self.total("heavy", hosts) == 1
        )  # fmt: skip

    def all_alive(self) -> bool:
        hosts = self.status()["hosts"]
        return len(hosts) == len(self.hosts) and all(h["alive"] for h in hosts)

    def settle(self) -> tuple[str, int]:
        """Every host beats, the fleet is at rest, and someone leads: (leader, epoch)."""
        wait_for(self.all_alive, "every host beats")
        wait_for(self.at_rest, "each pool's minimum, fleet-wide, spread")
        wait_for(self.leader, "a leader")
        leader = self.leader()
        assert leader is not None
        return leader

    def leader(self) -> tuple[str, int] | None:
        status = self.status()
        if status["leader"] is None:
            return None
        return str(status["leader"]), int(status["epoch"])


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    require_binary("redis-server")
    require_binary("supervisord")
    box = Fleet(tmp_path.resolve()).start()
    yield box
    box.stop()


def assert_fenced_order(fleet: Fleet) -> None:
    """No host ever went back to an older leader's assignments."""
    for host in fleet.hosts.values():
        epochs = [epoch for _leader, epoch in host.followed()]
        assert epochs == sorted(epochs), f"{host.name} followed {host.followed()}"


def test_rest_burst_and_a_small_host(fleet: Fleet) -> None:
    fleet.settle()
    status = fleet.status()
    assert set(status) == {"fleet", "leader", "epoch", "hosts"}
    assert [h["host"] for h in status["hosts"]] == ["h1", "h2", "h3"]
    assert all(h["alive"] for h in status["hosts"]) and status["epoch"] >= 1
    assert set(status["hosts"][0]) == {"host", "alive", "last_seen_s", "memory_budget_mb", "pools"}
    assert set(status["hosts"][0]["pools"]["burst"]) == {"workers", "assigned"}
    assert fleet.hosts["h3"].slots("heavy") == {}

    ids = fleet.push("burst", 150, run_s=0.5)  # 75 s of work for one worker, SLO 4 s
    small_host_most = 0
    served: set[str] = set()

    def drained() -> bool:
        nonlocal small_host_most
        small_host_most = max(small_host_most, len(fleet.hosts["h3"].slots("burst")))
        served.update(name for name, n in fleet.running("burst").items() if n > 0)
        assert fleet.hosts["h3"].slots("heavy") == {}, "a 256 MB worker on the 160 MB host"
        return len(fleet.finished_jobs()) >= len(ids)

    wait_for(drained, "the burst drains")
    assert served == {"h1", "h2", "h3"}, f"served by {served} only"
    assert all(host.box.finished_jobs() for host in fleet.hosts.values()), "a host ran no job"
    assert small_host_most == 2, "the 160 MB host holds two 64 MB workers, no more, no fewer"
    finished = collections.Counter(fleet.finished_jobs())
    assert set(finished) == set(ids), "a job was lost"
    assert max(finished.values()) == 1, "a job ran twice"
    wait_for(fleet.at_rest, "back to the minimum")
    assert_fenced_order(fleet)


def test_leader_killed_then_its_host_lost(fleet: Fleet) -> None:
    old_leader, old_epoch = fleet.settle()
    others = [name for name in fleet.hosts if name != old_leader]
    before = {name: fleet.hosts[name].ticks() for name in others}
    fleet.hosts[old_leader].stop_daemon(signal.SIGKILL)  # no cleanup: the lease must expire
    wait_for(lambda: (fleet.leader() or (old_leader,))[0] != old_leader, "a new leader")
    new_leader, new_epoch = fleet.leader()  # type: ignore[misc]
    assert new_leader in others and new_epoch > old_epoch
    text = fleet.hosts[new_leader].text()
    took_over_at = text.index(f"{new_leader} leads now")
    ticks = fleet.hosts[new_leader].ticks(text[:took_over_at]) - before[new_leader]
    assert ticks <= TTL_TICKS + 2, f"took {ticks} ticks to lead (lease {TTL_TICKS} ticks)"

    fleet.hosts[old_leader].kill()  # the host is gone: its supervisord and workers too
    wait_for(lambda: fleet.at_rest(others), "its share moves to the other hosts")
    status = fleet.status()
    alive = {h["host"]: h["alive"] for h in status["hosts"]}
    assert alive == {name: name != old_leader for name in fleet.hosts}
    ids = fleet.push("burst", 6, run_s=0.2)
    wait_for(lambda: set(ids) <= set(fleet.finished_jobs()), "the fleet still serves")
    assert_fenced_order(fleet)
    for name in others:
        followed = fleet.hosts[name].followed()
        after = followed[[leader for leader, _ in followed].index(new_leader) :]
        assert all(leader == new_leader for leader, _ in after), f"{name}: {followed}"


def test_redis_restart_holds_then_resumes(fleet: Fleet) -> None:
    _, old_epoch = fleet.settle()
    ids = fleet.push("burst", 200, run_s=0.5)
    wait_for(lambda: fleet.total("burst") >= 6, "scaled up over the fleet")
    fleet.redis.stop()
    held = {name: len(host.slots("burst")) for name, host in fleet.hosts.items()}
    wait_for(
        lambda: all("Redis unavailable, holding" in h.text() for h in fleet.hosts.values()),
        "every host notices",
    )  # fmt: skip
    marks = {name: host.ticks() for name, host in fleet.hosts.items()}
    deadline = time.monotonic() + DEADLINE_S
    # Longer than the scale-down window: a host trusting missing data would scale down.
    while any(fleet.hosts[n].ticks() < marks[n] + 8 for n in marks) and time.monotonic() < deadline:
        for name, host in fleet.hosts.items():
            assert len(host.slots("burst")) >= held[name], f"{name} scaled down without Redis"
        time.sleep(0.3)
    fleet.redis.start()  # empty: the queues and the fleet's keys are gone
    wait_for(lambda: (fleet.leader() or ("", 0))[1] > old_epoch, "a new leader, a later epoch")
    wait_for(fleet.at_rest, "the fleet resumes: nothing waits, back to the minimum")
    later = fleet.push("burst", 5, run_s=0.2)
    wait_for(lambda: set(later) <= set(fleet.finished_jobs()), "jobs run again")
    assert set(ids) & set(fleet.finished_jobs()), "nothing ran before the restart"
    assert_fenced_order(fleet)


def test_split_brain_a_paused_leader_is_fenced(fleet: Fleet) -> None:
    paused, old_epoch = fleet.settle()
    pid = fleet.hosts[paused].process.pid  # type: ignore[union-attr]
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: (fleet.leader() or (paused,))[0] != paused, "another host takes over")
        new_leader, new_epoch = fleet.leader()  # type: ignore[misc]
        # The paused host's heartbeat ran out too: its share moves while it sleeps.
        others = [name for name in fleet.hosts if name != paused]
        wait_for(lambda: sum(fleet.running("burst", others).values()) == 2, "share moved")
    finally:
        os.kill(pid, signal.SIGCONT)
    resumed = fleet.hosts[paused]
    wait_for(lambda: "lost the lease to" in resumed.text(), "the resumed leader finds out")
    # It published once more on the strength of its old lease: every host reads that entry.
    marks = {name: fleet.hosts[name].ticks() for name in others}
    wait_for(lambda: all(fleet.hosts[n].ticks() >= marks[n] + 3 for n in others), "ticks")
    assert_fenced_order(fleet)  # without the fence, the hosts go back to the old leader here
    ignored = f"ignored an assignment of epoch {old_epoch} from {paused}"
    for name in others:
        assert ignored in fleet.hosts[name].text(), f"{name} never saw the stale assignment"
    assert new_epoch > old_epoch
    assert_fenced_order(fleet)
    wait_for(fleet.at_rest, "one leader again, the minimum spread")
    assert fleet.leader() is not None and fleet.leader()[0] == new_leader  # type: ignore[index]
