"""The fixtures start real servers, and the fake worker speaks Laravel's protocol."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import redis

from autoscaler.testing.laravel import QueueKeys, later, make_payload, pop, push
from autoscaler.testing.stack import RedisServer, Supervisord

PREFIX = "laravel_database_"


def test_redis_fixture_answers(redis_server: RedisServer, redis_client: redis.Redis) -> None:
    assert redis_client.ping()
    info = redis_client.info("server")
    assert str(info["redis_version"]).count(".") == 2
    unix = redis.Redis.from_url(redis_server.unix_url)
    assert unix.ping()


def test_push_and_pop_follow_laravel(redis_client: redis.Redis) -> None:
    keys = QueueKeys.of(PREFIX, "mail")
    assert keys.queue == "laravel_database_queues:mail"
    first = make_payload(created_at=time.time(), job_id="a")
    push(redis_client, PREFIX, "mail", first)
    push(redis_client, PREFIX, "mail", make_payload(job_id="b"))
    assert redis_client.llen(keys.queue) == 2
    assert redis_client.llen(keys.notify) == 2
    assert json.loads(redis_client.lindex(keys.queue, 0) or b"{}")["id"] == "a"

    job = pop(redis_client, PREFIX, "mail", retry_after_s=90)
    assert job is not None
    assert job.decoded["id"] == "a" and job.decoded["attempts"] == 1
    assert redis_client.zcard(keys.reserved) == 1
    assert redis_client.llen(keys.queue) == 1
    assert redis_client.llen(keys.notify) == 1


def test_pop_migrates_due_delayed_and_expired_reserved(redis_client: redis.Redis) -> None:
    now = time.time()
    later(redis_client, PREFIX, "q", make_payload(job_id="due"), now - 1)
    later(redis_client, PREFIX, "q", make_payload(job_id="future"), now + 3600)
    job = pop(redis_client, PREFIX, "q", retry_after_s=-10, now=now)  # reserve already expired
    assert job is not None and job.decoded["id"] == "due"
    again = pop(redis_client, PREFIX, "q", now=now)  # the expired reservation came back
    assert again is not None and again.decoded["id"] == "due" and again.decoded["attempts"] == 2
    keys = QueueKeys.of(PREFIX, "q")
    assert redis_client.zcard(keys.delayed) == 1


def test_supervisord_runs_a_fake_worker(
    supervisord: Supervisord, redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    record = tmp_path / "jobs.txt"
    log = tmp_path / "w.log"
    (supervisord.include_dir / "w.conf").write_text(
        "[program:w_00]\n"
        f"command={sys.executable} -m autoscaler.testing.worker --redis-url {redis_server.url} "
        f"--queue=default --sleep 0.05 --record {record}\n"
        "startsecs=0\nstopasgroup=true\nkillasgroup=true\n"
        f"stdout_logfile={log}\nredirect_stderr=true\n"
    )
    proxy = supervisord.proxy()
    added, _changed, _removed = proxy.supervisor.reloadConfig()[0]
    assert added == ["w_00"]
    proxy.supervisor.addProcessGroup("w_00")
    for index in range(3):
        push(redis_client, PREFIX, "default", make_payload(job_id=f"j{index}", run_s=0.01))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if record.exists() and len(record.read_text().splitlines()) == 3:
            break
        time.sleep(0.05)
    ids = [line.split()[0] for line in record.read_text().splitlines()]
    assert ids == ["j0", "j1", "j2"]
    assert "DONE" in log.read_text()
    assert redis_client.zcard(QueueKeys.of(PREFIX, "default").reserved) == 0
