"""The Observer: Redis, worker logs, Supervisor and memory into one Observation per tick."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from autoscaler.laravel.sampler import connect_redis
from autoscaler.observe.meminfo import memory_available_mb
from autoscaler.observe.observer import Observer
from autoscaler.observe.slot_logs import expand_logfile
from autoscaler.policy.loader import PolicySet, load_policies
from autoscaler.supervisord.rpc import SupervisorClient
from autoscaler.testing.laravel import later, make_payload, pop, push
from autoscaler.testing.stack import RedisServer, Supervisord
from tests.policy_helpers import write_policy

PREFIX = "app-database-"
NOW = 1_750_000_000.0
RUN = "  2023-06-01 10:00:00 App\\Jobs\\A .............................. RUNNING\n"
DONE = "  2023-06-01 10:00:00 App\\Jobs\\A ......................... 12.34ms DONE\n"
FAIL = "  2023-06-01 10:00:02 App\\Jobs\\A ........................... 2m 3s FAIL\n"


class Clock:
    def __init__(self, *times: float) -> None:
        self.times = list(times)

    def __call__(self) -> float:
        return self.times.pop(0)


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)


def make_policies(tmp_path: Path, *, logs: bool = True) -> PolicySet:
    directory = tmp_path / "policies"
    log_dir = tmp_path / "logs"
    log_dir.mkdir(exist_ok=True)
    extra = {"stdout_logfile": str(log_dir / "emails.log")} if logs else {}
    write_policy(directory, "emails", expected_run_time_s=4.0, supervisor=extra)
    write_policy(
        directory,
        "default",
        queues=["high", "default"],
        program="default-worker",
        command="php artisan queue:work redis --queue=high,default",
        supervisor={"stdout_logfile": str(log_dir / "default.log")} if logs else {},
    )
    return load_policies(directory)


@pytest.fixture
def unreachable(tmp_path: Path) -> Iterator[SupervisorClient]:
    client = SupervisorClient(f"unix://{tmp_path}/no-supervisor.sock", timeout_s=0.5)
    yield client
    client.close()


def test_logs_redis_and_memory_without_supervisor(
    tmp_path: Path,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    unreachable: SupervisorClient,
) -> None:
    policies = make_policies(tmp_path)
    logs = tmp_path / "logs"
    (logs / "emails_00.log").write_text("old history\n" + DONE * 50)
    (logs / "emails_01.log").write_text("")
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 8192000 kB\nMemAvailable:    2048000 kB\n")
    for index in range(4):
        push(redis_client, PREFIX, "emails", make_payload(created_at=NOW - 30 + index))
    observer = Observer(
        policies=policies,
        client=connect_redis(redis_server.url, timeout_s=2),
        prefix=PREFIX,
        supervisor=unreachable,
        clock=Clock(NOW, NOW + 10),
        meminfo=meminfo,
    )
    first = observer.observe()
    assert first.interval_s == 0 and first.memory_available_mb == 2000.0
    assert first.supervisor_error is not None and "unreachable" in first.supervisor_error
    emails = first.pools["emails"]
    assert emails.workers is None and emails.work is None  # no interval yet, history not counted
    assert emails.pending == 4 and emails.oldest_wait_s == 30.0

    pop(redis_client, PREFIX, "emails", now=NOW)  # a worker took one: 3 pending, 1 reserved
    push(redis_client, PREFIX, "emails", make_payload())  # one arrived
    append(logs / "emails_00.log", RUN + DONE + RUN + FAIL)
    append(logs / "emails_01.log", RUN + DONE + RUN)
    push(redis_client, PREFIX, "high", make_payload(created_at=NOW - 5))
    later(redis_client, PREFIX, "default", make_payload(created_at=NOW - 50), NOW - 1)

    second = observer.observe()
    assert second.interval_s == 10.0
    work = second.pools["emails"].work
    assert work is not None and work.source == "logs"
    assert (work.completions, work.failures, work.busy_workers) == (3, 1, 1.0)
    assert work.run_time_mean_s == pytest.approx((0.01234 * 2 + 123.5) / 3)
    # Flow balance: 3 finished and queued went from 4 to 4 pending + 1 reserved: 4 arrived.
    assert work.arrivals == 4.0
    flow = observer.flows["emails"]
    assert (flow.arrivals, flow.completions, flow.failures) == (4.0, 3.0, 1.0)
    assert flow.run_time_mean_s == work.run_time_mean_s
    assert flow.run_time_p95_s == work.run_time_p95_s
    default = second.pools["default"]
    assert default.queues is not None
    assert [(q.queue, q.pending, q.delayed_due) for q in default.queues] == [
        ("high", 1, 0),
        ("default", 0, 1),
    ]
    assert (default.pending, default.waiting, default.oldest_wait_s) == (1, 2, 15.0)
    assert default.work is not None and default.work.arrivals == 2.0  # both queues, in total
    assert observer.in_flight("emails-worker_01") is True
    assert observer.in_flight("emails-worker_00") is False
    assert observer.busy_slots() == {"emails-worker_01"}


def test_redis_estimate_when_there_are_no_logs(
    tmp_path: Path,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    unreachable: SupervisorClient,
) -> None:
    policies = make_policies(tmp_path, logs=False)
    for _ in range(3):
        push(redis_client, PREFIX, "emails", make_payload())
    pop(redis_client, PREFIX, "emails", now=NOW)
    pop(redis_client, PREFIX, "emails", now=NOW)
    observer = Observer(
        policies=policies,
        client=connect_redis(redis_server.url, timeout_s=2),
        prefix=PREFIX,
        supervisor=unreachable,
        clock=Clock(NOW, NOW + 10),
        meminfo=tmp_path / "missing",
    )
    first = observer.observe()
    assert first.memory_available_mb is None
    second = observer.observe()
    work = second.pools["emails"].work
    assert work is not None and work.source == "redis"
    # Little's law: 2 busy workers x 10 s / 4 s expected run time = 5 jobs.
    assert (work.completions, work.busy_workers, work.run_time_mean_s) == (5, 2.0, None)
    assert work.arrivals == 5.0  # nothing changed in Redis, so what finished was replaced
    assert "no worker log found" in observer.log_problems["emails"]


def test_redis_down_is_an_observation_not_a_crash(
    tmp_path: Path, own_redis: RedisServer, unreachable: SupervisorClient
) -> None:
    policies = make_policies(tmp_path)
    (tmp_path / "logs" / "emails_00.log").write_text("")
    observer = Observer(
        policies=policies,
        client=connect_redis(own_redis.url, timeout_s=1),
        prefix=PREFIX,
        supervisor=unreachable,
        clock=Clock(NOW, NOW + 5, NOW + 10),
    )
    observer.observe()
    own_redis.stop()
    append(tmp_path / "logs" / "emails_00.log", RUN + DONE)
    down = observer.observe()
    assert down.redis_error is not None and down.redis_error.startswith("Redis unavailable")
    emails = down.pools["emails"]
    assert emails.queues is None and emails.pending is None
    assert emails.work is not None and emails.work.completions == 1  # the logs still count
    assert emails.work.arrivals is None  # no balance without Redis
    own_redis.start()
    back = observer.observe()
    assert back.redis_error is None
    # The completion seen during the outage is kept for the balance: 1 done, queue 0 -> 0.
    assert observer.flows["emails"].arrivals == 1.0
    assert observer.flows["emails"].interval_s == 10.0


def test_an_unreachable_redis_is_retried_on_a_backoff(
    tmp_path: Path, own_redis: RedisServer, unreachable: SupervisorClient
) -> None:
    observer = Observer(
        policies=make_policies(tmp_path),
        client=connect_redis(own_redis.url, timeout_s=1),
        prefix=PREFIX,
        supervisor=unreachable,
        clock=Clock(*(NOW + t for t in (0, 1, 1.5, 2, 3, 4, 5, 6, 9))),
    )
    assert observer.observe().redis_error is None
    own_redis.stop()
    assert observer.observe().redis_error is not None  # t=1: tried, failed; next try at 2
    own_redis.start()
    held = observer.observe().redis_error  # t=1.5: Redis is back but not asked yet
    assert held is not None and held.endswith("(next try in 1s)")
    assert held.startswith("Redis unavailable")
    assert observer.observe().redis_error is None  # t=2: asked again, and it answers
    own_redis.stop()
    tried = [observer.observe().redis_error for _ in range(5)]  # t=3, 4, 5, 6, 9
    assert all(error is not None for error in tried)
    # A success reset the schedule: tries at 3 (+1 s), 4 (+2 s), 6 (+4 s); 5 and 9 wait.
    waiting = [bool(error and error.endswith("(next try in 1s)")) for error in tried]
    assert waiting == [False, False, True, False, True]


def test_an_unreachable_supervisord_is_retried_on_a_backoff(
    tmp_path: Path, redis_server: RedisServer, supervisord: Supervisord
) -> None:
    supervisor = SupervisorClient(supervisord.url, timeout_s=2)
    observer = Observer(
        policies=make_policies(tmp_path),
        client=connect_redis(redis_server.url, timeout_s=1),
        prefix=PREFIX,
        supervisor=supervisor,
        clock=Clock(NOW, NOW + 1, NOW + 1.5, NOW + 2),
    )
    assert observer.observe().supervisor_error is None
    supervisord.stop()
    assert observer.observe().supervisor_error is not None  # tried, failed; next try at +2
    supervisord.start()
    held = observer.observe()  # supervisord is back but not asked yet
    assert held.supervisor_error is not None
    assert held.supervisor_error.endswith("(next try in 1s)")
    assert held.pools["emails"].workers is None  # unknown, so decide holds the count
    back = observer.observe()
    assert back.supervisor_error is None and back.pools["emails"].workers is not None
    supervisor.close()


def test_meminfo(tmp_path: Path) -> None:
    path = tmp_path / "meminfo"
    path.write_text("MemTotal:       16303456 kB\nMemAvailable:    1048576 kB\n")
    assert memory_available_mb(path) == 1024.0
    path.write_text("MemTotal: 1 kB\n")
    assert memory_available_mb(path) is None
    assert memory_available_mb(tmp_path / "nope") is None
    assert memory_available_mb() is not None  # this is Linux


def test_expand_logfile() -> None:
    assert expand_logfile("/l/%(program_name)s.log", "w_03") == "/l/w_03.log"
    assert expand_logfile("/l/w_03.log", "w_03") == "/l/w_03.log"
    assert expand_logfile("%(here)s/w.log", "w_03") is None
    assert expand_logfile(None, "w_03") is None


def wait_for(check: object, what: str, timeout_s: float = 30.0) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_end_to_end_with_supervisord_and_fake_workers(
    tmp_path: Path,
    supervisord: Supervisord,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    worker_command: str,
) -> None:
    # No stdout_logfile in the policy or the program: Supervisor picks AUTO log files in its
    # childlogdir, and the observer has to learn their paths from getAllProcessInfo.
    directory = tmp_path / "policies"
    write_policy(directory, "emails", program="w")
    policies = load_policies(directory)
    conf = "".join(
        f"[program:w_{index:02d}]\n"
        f"command={worker_command} --redis-url {redis_server.url} --prefix {PREFIX} "
        "--queue=emails --sleep 0.05\n"
        "startsecs=0\nstopasgroup=true\nkillasgroup=true\nredirect_stderr=true\n\n"
        for index in range(2)
    )
    (supervisord.include_dir / "workers.conf").write_text(conf)
    proxy = supervisord.proxy()
    proxy.supervisor.reloadConfig()
    for index in range(2):
        proxy.supervisor.addProcessGroup(f"w_{index:02d}")
    supervisor = SupervisorClient(supervisord.url)
    wait_for(lambda: all(p.statename == "RUNNING" for p in supervisor.processes()), "workers")
    observer = Observer(
        policies=policies,
        client=connect_redis(redis_server.url, timeout_s=2),
        prefix=PREFIX,
        supervisor=supervisor,
    )
    first = observer.observe()
    assert first.supervisor_error is None
    workers = first.pools["emails"].workers
    assert workers is not None and workers.running == 2

    jobs = 12
    for _ in range(jobs):
        push(redis_client, PREFIX, "emails", make_payload(run_s=0.05, created_at=time.time()))
    logs = [p.stdout_logfile for p in supervisor.processes()]
    assert all("childlogs" in path for path in logs)

    def done_lines() -> int:
        return sum(Path(path).read_text().count(" DONE") for path in logs)

    wait_for(lambda: done_lines() == jobs, "all jobs logged")
    second = observer.observe()
    work = second.pools["emails"].work
    assert work is not None and work.source == "logs", observer.log_problems
    assert (work.completions, work.failures, work.busy_workers) == (jobs, 0, 0.0)
    assert work.run_time_mean_s is not None and 0.04 < work.run_time_mean_s < 2.0
    assert work.arrivals == jobs  # queued 0 before and after: every finished job arrived

    push(redis_client, PREFIX, "emails", make_payload(run_s=3.0))
    wait_for(
        lambda: (observer.observe(), any(observer.in_flight(f"w_{i:02d}") for i in range(2)))[1],
        "a slot in flight",
    )
    busy = observer.observe().pools["emails"].work
    assert busy is not None and busy.busy_workers == 1.0
