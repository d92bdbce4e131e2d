"""The sampler against a real redis-server, with jobs queued exactly as Laravel queues them."""

from __future__ import annotations

import json

import pytest
import redis

from autoscaler.laravel.sampler import COMMANDS_PER_QUEUE, QueueSampler, connect_redis
from autoscaler.observe.observation import PoolObservation
from autoscaler.testing.laravel import later, make_payload, pop, push
from autoscaler.testing.roundtrips import counting_client
from autoscaler.testing.stack import RedisServer

NOW = 1_750_000_000.0


@pytest.mark.parametrize("prefix", ["app_database_", "app-database-", ""])
def test_counts_and_created_at_age(redis_client: redis.Redis, prefix: str) -> None:
    push(redis_client, prefix, "mail", make_payload(job_id="a", created_at=NOW - 60))
    push(redis_client, prefix, "mail", make_payload(job_id="b", created_at=NOW - 20))
    push(redis_client, prefix, "mail", make_payload(job_id="c", created_at=NOW - 1))
    assert pop(redis_client, prefix, "mail", now=NOW) is not None  # a is reserved
    later(redis_client, prefix, "mail", make_payload(job_id="due"), NOW - 5)
    later(redis_client, prefix, "mail", make_payload(job_id="future"), NOW + 3600)
    sample = QueueSampler(redis_client, prefix=prefix, queues=["mail", "idle"]).sample(NOW)
    assert sample.available and not sample.queue_errors
    mail = sample.queues["mail"]
    assert (mail.pending, mail.reserved, mail.delayed, mail.delayed_due) == (2, 1, 2, 1)
    assert (mail.oldest_wait_s, mail.oldest_wait_source) == (20.0, "createdAt")
    idle = sample.queues["idle"]
    assert (idle.pending, idle.oldest_wait_s, idle.oldest_wait_source) == (0, None, "empty")


def test_the_other_prefix_is_not_read(redis_client: redis.Redis) -> None:
    push(redis_client, "app-database-", "mail", make_payload())
    sample = QueueSampler(redis_client, prefix="app_database_", queues=["mail"]).sample(NOW)
    assert sample.queues["mail"].pending == 0


def test_pushed_at_and_delay(redis_client: redis.Redis) -> None:
    push(redis_client, "p_", "horizon", make_payload(pushed_at=NOW - 12.5))
    delayed = json.loads(make_payload(created_at=NOW - 100))
    delayed["delay"] = 90  # dispatched with ->delay(90): due 90 s after createdAt
    push(redis_client, "p_", "later", json.dumps(delayed))
    sample = QueueSampler(redis_client, prefix="p_", queues=["horizon", "later"]).sample(NOW)
    horizon = sample.queues["horizon"]
    assert horizon.oldest_wait_source == "pushedAt"
    assert horizon.oldest_wait_s == pytest.approx(12.5, abs=1e-3)
    assert sample.queues["later"].oldest_wait_s == 10.0


def test_fifo_ages_without_timestamps_and_for_retries(redis_client: redis.Redis) -> None:
    push(redis_client, "p_", "old", make_payload(job_id="x"))
    retried = json.loads(make_payload(job_id="r", created_at=NOW - 500))
    retried["attempts"] = 1  # back from :delayed after an exception: createdAt is stale
    push(redis_client, "p_", "retry", json.dumps(retried))
    sampler = QueueSampler(redis_client, prefix="p_", queues=["old", "retry"])
    first = sampler.sample(NOW)
    assert first.queues["old"].oldest_wait_s == 0.0
    assert first.queues["old"].oldest_wait_source == "first_seen"  # queued before we looked
    assert first.queues["retry"].oldest_wait_source == "first_seen"
    later_sample = sampler.sample(NOW + 7)
    assert later_sample.queues["old"].oldest_wait_s == 7.0
    assert later_sample.queues["retry"].oldest_wait_s == 7.0
    push(redis_client, "p_", "old", make_payload(job_id="y"))  # arrives in (NOW+7, NOW+9]
    pop(redis_client, "p_", "old", now=NOW + 8)  # x leaves; y is the new head
    after = sampler.sample(NOW + 9).queues["old"]
    assert after.oldest_wait_source == "fifo"
    assert after.oldest_wait_s == pytest.approx(1.0)  # the middle of its two-second interval


def test_a_multi_queue_pool_in_total(redis_client: redis.Redis) -> None:
    for index in range(3):
        push(redis_client, "p_", "high", make_payload(created_at=NOW - 10 - index))
    push(redis_client, "p_", "default", make_payload(created_at=NOW - 40))
    later(redis_client, "p_", "default", make_payload(), NOW - 1)
    sample = QueueSampler(redis_client, prefix="p_", queues=["high", "default"]).sample(NOW)
    pool = PoolObservation(
        pool="default",
        queues=(sample.queues["high"], sample.queues["default"]),
        work=None,
        workers=None,
    )
    assert (sample.queues["high"].pending, sample.queues["default"].pending) == (3, 1)
    assert (pool.pending, pool.delayed, pool.delayed_due, pool.waiting) == (4, 1, 1, 5)
    assert pool.oldest_wait_s == 40.0


def test_one_tick_is_one_round_trip(redis_server: RedisServer, redis_client: redis.Redis) -> None:
    queues = [f"q{index}" for index in range(7)]
    for queue in queues:
        push(redis_client, "p_", queue, make_payload(created_at=NOW))
    client, counter = counting_client(redis_server.url)
    client.ping()  # connect (the handshake is not part of a tick)
    sampler = QueueSampler(client, prefix="p_", queues=queues)
    redis_client.config_resetstat()
    counter.reset()
    sample = sampler.sample(NOW)
    assert len(sample.queues) == 7
    assert counter.round_trips == 1 and counter.sends == 1
    assert counter.reads == 7 * COMMANDS_PER_QUEUE
    # The server's own count: exactly the six reads per queue, nothing else.
    stats = redis_client.info("commandstats")
    calls = {name: stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in
             ("llen", "zcard", "zcount", "lindex", "multi", "exec")}  # fmt: skip
    assert calls == {"llen": 7, "zcard": 14, "zcount": 7, "lindex": 14, "multi": 0, "exec": 0}
    client.close()


def test_redis_down_is_an_unavailable_sample(own_redis: RedisServer) -> None:
    client = connect_redis(own_redis.url, timeout_s=1.0)
    sampler = QueueSampler(client, prefix="p_", queues=["mail"])
    assert sampler.sample(NOW).available
    own_redis.stop()
    down = sampler.sample(NOW)
    assert not down.available and down.queues == {}
    assert down.error is not None and down.error.startswith("Redis unavailable: ")
    own_redis.start()
    assert sampler.sample(NOW).available  # reconnects on the next tick


def test_a_key_of_another_type_spoils_only_its_queue(redis_client: redis.Redis) -> None:
    redis_client.set("p_queues:broken", "not a list")
    push(redis_client, "p_", "fine", make_payload())
    sample = QueueSampler(redis_client, prefix="p_", queues=["broken", "fine"]).sample(NOW)
    assert sample.available and sample.queues["fine"].pending == 1
    assert "WRONGTYPE" in sample.queue_errors["broken"] and "broken" not in sample.queues
