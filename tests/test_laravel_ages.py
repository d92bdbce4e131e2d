"""Job ages on a real Laravel 8 app (no createdAt, no pushedAt): FIFO accounting against the
push times the test knows, and the payloads the real app produces as bad input for a tick.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis

from autoscaler.cli.main import main
from autoscaler.daemon.agefile import AGES_FILE
from autoscaler.laravel.sampler import QueueSampler
from autoscaler.observe.observer import Observer
from autoscaler.policy.loader import load_policies
from autoscaler.testing.laravel_app import LaravelApp, PushedJob
from autoscaler.testing.sandbox import PREFIX, Sandbox, SandboxPool
from autoscaler.testing.stack import RedisServer
from tests.conftest import require_binary, require_php
from tests.policy_helpers import write_policy
from tests.test_daemon_e2e import DaemonProcess, running, wait_for

DEADLINE_S = 150.0
SLACK_S = 0.25  # a job's recorded start is a few ms after its pop; the clock read before Redis
DRAIN = SandboxPool(
    name="drain",
    queues=("drain",),
    min_processes=2,
    static_processes=2,
    max_processes=2,  # a fixed pool: the backlog drains at its own pace
    slo_wait_s=60.0,
    run_time_s=0.05,
)


@pytest.fixture
def app(redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path) -> LaravelApp:
    require_php()
    return LaravelApp(redis_server.url, PREFIX, runtime_dir=tmp_path / "laravel")


class Pusher(threading.Thread):
    """`artisan jobs:push --spread` in the background: jobs pushed evenly over a while."""

    def __init__(self, app: LaravelApp, *, count: int, spread_s: float) -> None:
        super().__init__(daemon=True)
        self.app, self.count, self.spread_s = app, count, spread_s
        self.jobs: list[PushedJob] = []

    def run(self) -> None:
        self.jobs = self.app.push("drain", self.count, seconds=0.05, spread_s=self.spread_s)


def true_oldest_age(at_s: float, pushed: dict[str, float], started: dict[str, float]) -> float:
    """The real wait of the oldest job still in the list at `at_s`: jobs leave in push order,
    so it is the first one (by push time) that no worker had started by then."""
    waiting = [p for job, p in pushed.items() if p <= at_s and started.get(job, 1e99) > at_s]
    return at_s - min(waiting)


def test_ages_within_one_tick_while_real_workers_drain(tmp_path: Path) -> None:
    require_binary("redis-server")
    require_binary("supervisord")
    require_php()
    box = Sandbox(tmp_path.resolve() / "s", pools=(DRAIN,), worker="laravel").start()
    daemon = DaemonProcess(box, tmp_path / "daemon.log")
    observer = Observer.from_settings(box.settings(), load_policies(box.policies_dir))
    try:
        wait_for(lambda: running(box, "drain") == 2, "two real workers", DEADLINE_S)
        observations = [observer.observe()]  # the empty list: no job predates the observer
        pushed: dict[str, float] = {}
        for job in box.app.push("drain", 250, seconds=0.05):  # a burst at once ...
            pushed[job.id] = job.pushed_at_s
        stream = Pusher(box.app, count=150, spread_s=6.0)  # ... and a stream behind it
        stream.start()
        deadline = time.monotonic() + DEADLINE_S
        while stream.is_alive() or len(box.finished_jobs()) < len(pushed) + len(stream.jobs):
            assert time.monotonic() < deadline, "the backlog did not drain"
            time.sleep(1.0)
            observations.append(observer.observe())
        pushed.update({job.id: job.pushed_at_s for job in stream.jobs})
        started = {run["id"]: run["started"] for run in box.app.runs(box.client())}
    finally:
        observer.close()
        assert daemon.stop() == 0
        box.stop()
    assert len(pushed) == 400 and set(started) == set(pushed)
    checked = 0
    for index, obs in enumerate(observations[1:]):
        queue = obs.pools["drain"].queues[0]  # type: ignore[index]
        if queue.pending == 0:
            continue
        assert queue.oldest_wait_source == "fifo", queue
        truth = true_oldest_age(obs.at_s, pushed, started)
        # one tick: the interval the oldest job arrived in, at most the longest one so far
        tick_s = max(b.at_s - a.at_s for a, b in itertools.pairwise(observations[: index + 2]))
        assert queue.oldest_wait_s is not None
        assert abs(queue.oldest_wait_s - truth) <= tick_s + SLACK_S, (obs.at_s, queue, truth)
        checked += 1
    assert checked >= 5, f"only {checked} ticks saw a backlog"


def _heads(client: redis.Redis, queue: str) -> list[bytes]:
    return list(client.lrange(f"{PREFIX}queues:{queue}", 0, -1))  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["plain", "encrypted", "chained", "batched"])
def test_real_payloads_of_every_kind_give_an_age(
    app: LaravelApp, redis_client: redis.Redis, kind: str
) -> None:
    sampler = QueueSampler(redis_client, prefix=PREFIX, queues=[kind])
    assert sampler.sample(1000.0).queues[kind].oldest_wait_source == "empty"
    app.push(kind, 3, kind=kind)
    (head, *_) = _heads(redis_client, kind)
    payload = json.loads(head)
    assert "createdAt" not in payload and "pushedAt" not in payload  # Laravel 8
    command = payload["data"]["command"]
    if kind == "encrypted":
        assert not command.startswith("O:")  # ciphertext, not a serialized object
    else:
        assert command.startswith("O:")
    if kind == "chained":
        assert '"chained";a:2:' in command
    if kind == "batched":
        assert '"batchId";s:36:' in command
    queue = sampler.sample(1004.0).queues[kind]
    assert (queue.pending, queue.oldest_wait_source, queue.age_problem) == (3, "fifo", None)
    # they arrived between the samples: the middle of those four seconds
    assert queue.oldest_wait_s == pytest.approx(2.0)


def test_a_head_that_is_no_job_makes_only_its_age_unknown(
    app: LaravelApp, redis_client: redis.Redis
) -> None:
    app.push("broken", 2)
    app.push("fine", 2)
    key = f"{PREFIX}queues:broken"
    real = _heads(redis_client, "broken")[0]
    redis_client.lset(key, 0, real[: len(real) // 2])  # a truncated payload: not JSON
    sampler = QueueSampler(redis_client, prefix=PREFIX, queues=["broken", "fine"])
    sampler.sample(1000.0)
    sample = sampler.sample(1002.0)
    broken, fine = sample.queues["broken"], sample.queues["fine"]
    assert sample.available and not sample.queue_errors
    assert (broken.pending, broken.oldest_wait_s, broken.oldest_wait_source) == (2, None, "unknown")
    assert broken.age_problem is not None and "payload is not JSON" in broken.age_problem
    assert fine.oldest_wait_source == "first_seen" and fine.oldest_wait_s == 2.0
    for bad in (b"\xff\xfe not utf-8", b"[1, 2]", b"42", b"[" * 100_000):
        redis_client.lset(key, 0, bad)
        queue = sampler.sample(1003.0).queues["broken"]
        assert queue.oldest_wait_s is None and queue.age_problem is not None, bad[:10]


def test_a_huge_real_payload_is_not_parsed_and_keeps_its_fifo_age(
    app: LaravelApp, redis_client: redis.Redis
) -> None:
    sampler = QueueSampler(redis_client, prefix=PREFIX, queues=["big"])
    sampler.sample(1000.0)
    app.push("big", 1)
    real = json.loads(_heads(redis_client, "big")[0])
    real["data"]["ballast"] = "x" * (3 << 20)  # a job carrying 3 MB of serialized data
    real["createdAt"] = 1  # not read: the payload is too large to parse every tick
    redis_client.lset(f"{PREFIX}queues:big", 0, json.dumps(real))
    queue = sampler.sample(1002.0).queues["big"]
    assert (queue.oldest_wait_source, queue.age_problem) == ("fifo", None)
    assert queue.oldest_wait_s == pytest.approx(1.0)


def test_delayed_and_lpushed_real_jobs(app: LaravelApp, redis_client: redis.Redis) -> None:
    sampler = QueueSampler(redis_client, prefix=PREFIX, queues=["later"])
    sampler.sample(time.time())
    app.push("later", 4)  # waiting in the list from now
    first_push = time.time()
    app.push("later", 3, delay_s=1)  # in :delayed, due in a second
    queue = sampler.sample(time.time()).queues["later"]
    assert (queue.pending, queue.delayed, queue.oldest_wait_source) == (4, 3, "fifo")
    # LPUSH a copy of a real payload: it is taken first but is not the oldest job
    copy = json.loads(_heads(redis_client, "later")[0])
    copy["id"] = "lpushed" + "x" * 25
    redis_client.lpush(f"{PREFIX}queues:later", json.dumps(copy))
    time.sleep(1.5)
    queue = sampler.sample(time.time()).queues["later"]
    assert queue.pending == 5
    assert queue.oldest_wait_s is not None and queue.oldest_wait_s >= time.time() - first_push - 1
    # one real worker pass: due delayed jobs move to the tail (arrivals now), one job runs
    app.run_artisan("queue:work", "redis", "--queue=later", "--once")
    assert app.runs(redis_client)[0]["id"] == copy["id"]  # the LPUSHed job went first
    now = time.time()
    queue = sampler.sample(now).queues["later"]
    assert (queue.pending, queue.delayed) == (7, 0)
    assert queue.oldest_wait_s is not None
    assert abs(queue.oldest_wait_s - (now - first_push)) <= 2.5  # still the first four


def test_status_names_the_age_source_and_why_an_age_is_unknown(
    app: LaravelApp,
    redis_client: redis.Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    policies = tmp_path / "policies"
    write_policy(
        policies,
        "work",
        queues=["work", "broken"],
        command="php artisan queue:work redis --queue=work,broken",
        strategy={"name": "static"},
    )
    monkeypatch.setenv("AUTOSCALER_POLICIES_DIR", str(policies))
    monkeypatch.setenv("AUTOSCALER_REDIS_URL", app.redis_url)
    monkeypatch.setenv("AUTOSCALER_REDIS_PREFIX", PREFIX)
    monkeypatch.setenv("AUTOSCALER_SUPERVISOR_URL", f"unix://{tmp_path}/none.sock")
    app.push("work", 3)
    app.push("broken", 1)
    redis_client.lset(f"{PREFIX}queues:broken", 0, b"<?php serialize() gone wrong")
    assert main(["status", "--format", "json", "--window", "1"]) == 0
    captured = capsys.readouterr()
    (row,) = json.loads(captured.out)
    work, broken = row["per_queue"]
    assert (work["oldest_wait_source"], work["age_problem"]) == ("first_seen", None)
    assert work["oldest_wait_s"] >= 1.0
    assert (broken["oldest_wait_s"], broken["oldest_wait_source"]) == (None, "unknown")
    assert "payload is not JSON" in broken["age_problem"]
    assert row["oldest_wait_source"] == "first_seen"
    assert "oldest wait of broken unknown: payload is not JSON" in captured.err


def test_a_restarted_daemon_keeps_the_ages_of_a_list_nobody_pushed_to(tmp_path: Path) -> None:
    require_binary("redis-server")
    require_binary("supervisord")
    require_php()
    box = Sandbox(tmp_path.resolve() / "s", pools=(DRAIN,), worker="laravel").start()
    state = tmp_path / "state"
    env = box.env(AUTOSCALER_DRY_RUN="true", AUTOSCALER_STATE_DIR=str(state))  # no workers

    def one_tick() -> str:
        result = subprocess.run(
            [sys.executable, "-m", "autoscaler", "run", "--once"],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        return result.stdout + result.stderr

    try:
        first_tick_from = time.time()
        one_tick()  # sees the empty list
        pushed_at = box.app.push("drain", 30)[0].pushed_at_s
        one_tick()  # 30 arrivals since the first tick; saved on exit
        cohort_s = time.time() - first_tick_from  # they arrived within this, as far as it knows
        assert (state / AGES_FILE).is_file()
        time.sleep(3.0)
        text = one_tick()  # a new daemon: the same tail, so the same cohorts
        assert "queue ages: 1 queue(s) taken over" in text
        age = float(re.findall(r"drain 2 \(waiting 30, oldest (\d+)s\)", text)[-1])
        truth = time.time() - pushed_at
        assert age >= 3.0, "the wait before the restart counts"
        assert abs(age - truth) <= cohort_s + 1.0  # one tick (+1 s: the log rounds)
        box.app.push("drain", 1)  # pushed while no daemon watched: the list starts over
        text = one_tick()
        assert re.search(r"drain 2 \(waiting 31, oldest 0s\)", text), text
    finally:
        box.stop()


@pytest.mark.parametrize("stamp", [0, "nan", "inf", 10**400, "1e400", "abc", [1], None])
def test_a_stamp_that_is_no_time_falls_back_to_fifo(
    app: LaravelApp, redis_client: redis.Redis, stamp: object
) -> None:
    app.push("odd", 2)
    real = json.loads(_heads(redis_client, "odd")[0])
    real["createdAt"] = stamp
    real["delay"] = "inf"
    redis_client.lset(f"{PREFIX}queues:odd", 0, json.dumps(real))
    sampler = QueueSampler(redis_client, prefix=PREFIX, queues=["odd"])
    sampler.sample(1000.0)
    queue = sampler.sample(1005.0).queues["odd"]
    assert (queue.oldest_wait_s, queue.oldest_wait_source) == (5.0, "first_seen")


def test_released_real_jobs_count_from_when_they_come_back(
    app: LaravelApp, redis_client: redis.Redis
) -> None:
    sampler = QueueSampler(redis_client, prefix=PREFIX, queues=["flaky"])
    sampler.sample(time.time())
    app.push("flaky", 1, kind="flaky")
    app.push("flaky", 1)
    # a real worker takes the first job, which throws: released to :delayed for 1 s
    app.run_artisan("queue:work", "redis", "--queue=flaky", "--once", "--tries=2", "--backoff=1")
    queue = sampler.sample(time.time()).queues["flaky"]
    assert (queue.pending, queue.delayed) == (1, 1)
    released = json.loads(redis_client.zrange(f"{PREFIX}queues:flaky:delayed", 0, -1)[0])
    assert released["attempts"] == 1
    time.sleep(2.0)
    # the next pass moves the due job to the tail, then takes the head (the second job)
    app.run_artisan("queue:work", "redis", "--queue=flaky", "--once", "--tries=2", "--backoff=1")
    back_at = time.time()
    queue = sampler.sample(back_at).queues["flaky"]
    assert (queue.pending, queue.delayed) == (1, 0)
    head = json.loads(_heads(redis_client, "flaky")[0])
    assert head["id"] == released["id"] and head["attempts"] == 1
    # its wait counts from when it re-entered the list (between the last two samples), not
    # from its first push more than two seconds ago
    assert queue.oldest_wait_source == "fifo" and queue.oldest_wait_s is not None
    assert queue.oldest_wait_s < 2.0
    assert [run["attempts"] for run in app.runs(redis_client)] == [1]  # the second job ran
