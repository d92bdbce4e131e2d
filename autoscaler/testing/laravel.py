"""Laravel's Redis queue protocol, for the fake workers, the tests and the demo.

Pushes and pops do to Redis exactly what Illuminate\\Queue\\RedisQueue and its LuaScripts do
(see docs/research.md): RPUSH onto `queues:X` plus one `1` on `queues:X:notify`; a pop
first migrates due `:delayed` and expired `:reserved` jobs back to the list, then LPOPs the
head and ZADDs it (attempts + 1) to `:reserved` scored by the reservation expiry.
"""

from __future__ import annotations

import json
import time
import uuid as uuidlib
from dataclasses import dataclass
from typing import Any, cast

import redis

from autoscaler.constants import DELAYED_SUFFIX, NOTIFY_SUFFIX, QUEUE_KEY, RESERVED_SUFFIX

# KEYS[1] queue list, KEYS[2] notify list; ARGV[1] payload.
_PUSH_LUA = """
redis.call('rpush', KEYS[1], ARGV[1])
redis.call('rpush', KEYS[2], 1)
"""

# KEYS[1] source zset, KEYS[2] queue list, KEYS[3] notify list; ARGV[1] now, ARGV[2] limit.
# Moves members scored <= now back to the list tail in score order, as Laravel's
# migrateExpiredJobs does.
_MIGRATE_LUA = """
local due = redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[1], 'limit', 0, ARGV[2])
if #due > 0 then
  redis.call('zremrangebyrank', KEYS[1], 0, #due - 1)
  for start = 1, #due, 100 do
    local stop = math.min(start + 99, #due)
    redis.call('rpush', KEYS[2], unpack(due, start, stop))
    for _ = start, stop do
      redis.call('rpush', KEYS[3], 1)
    end
  end
end
return due
"""

# KEYS[1] queue list, KEYS[2] reserved zset, KEYS[3] notify list; ARGV[1] reservation expiry.
_POP_LUA = """
local job = redis.call('lpop', KEYS[1])
local reserved = false
if job ~= false then
  local decoded = cjson.decode(job)
  decoded['attempts'] = decoded['attempts'] + 1
  reserved = cjson.encode(decoded)
  redis.call('zadd', KEYS[2], ARGV[1], reserved)
  redis.call('lpop', KEYS[3])
end
return {job, reserved}
"""

MIGRATE_LIMIT = -1  # Laravel's default migrationBatchSize: all


@dataclass(frozen=True, slots=True)
class QueueKeys:
    queue: str
    reserved: str
    delayed: str
    notify: str

    @classmethod
    def of(cls, prefix: str, queue: str) -> QueueKeys:
        base = prefix + QUEUE_KEY.format(queue=queue)
        return cls(
            queue=base,
            reserved=base + RESERVED_SUFFIX,
            delayed=base + DELAYED_SUFFIX,
            notify=base + NOTIFY_SUFFIX,
        )


def make_payload(
    *,
    job_class: str = "App\\Jobs\\ProcessThing",
    run_s: float = 0.1,
    fail: bool = False,
    created_at: float | None = None,
    pushed_at: float | None = None,
    timeout: int | None = None,
    job_id: str | None = None,
) -> str:
    """A payload shaped like Queue::createObjectPayload plus RedisQueue's id and attempts.

    `created_at` adds Laravel 12.11+'s `createdAt` (unix seconds); `pushed_at` adds Horizon's
    `pushedAt` (a microtime string). The fake job's run time rides in `data.fake`.
    """
    identifier = job_id or uuidlib.uuid4().hex
    payload: dict[str, Any] = {
        "uuid": str(uuidlib.uuid4()),
        "displayName": job_class,
        "job": "Illuminate\\Queue\\CallQueuedHandler@call",
        "maxTries": None,
        "maxExceptions": None,
        "failOnTimeout": False,
        "backoff": None,
        "timeout": timeout,
        "retryUntil": None,
        "data": {
            "commandName": job_class,
            "command": f'O:{len(job_class)}:"{job_class}":0:{{}}',
            "fake": {"run_s": run_s, "fail": fail},
        },
    }
    if created_at is not None:
        payload["createdAt"] = int(created_at)
        payload["delay"] = None
    if pushed_at is not None:
        payload["pushedAt"] = f"{pushed_at:.4f}"
    payload["id"] = identifier
    payload["attempts"] = 0
    return json.dumps(payload, separators=(",", ":"))


def push(client: redis.Redis, prefix: str, queue: str, payload: str) -> None:
    """Queue::pushRaw: RPUSH the payload and one notification, atomically."""
    keys = QueueKeys.of(prefix, queue)
    client.eval(_PUSH_LUA, 2, keys.queue, keys.notify, payload)


def later(client: redis.Redis, prefix: str, queue: str, payload: str, available_at: float) -> None:
    """Queue::later: ZADD to `:delayed` scored by the time the job becomes available."""
    client.zadd(QueueKeys.of(prefix, queue).delayed, {payload: available_at})


@dataclass(frozen=True, slots=True)
class PoppedJob:
    queue: str
    raw: str  # the payload as it was in the list
    reserved: str  # the payload as stored in :reserved (attempts + 1)

    @property
    def decoded(self) -> dict[str, Any]:
        return cast(dict[str, Any], json.loads(self.reserved))


def pop(
    client: redis.Redis,
    prefix: str,
    queue: str,
    *,
    retry_after_s: float = 90,
    now: float | None = None,
) -> PoppedJob | None:
    """RedisQueue::pop: migrate due delayed and expired reserved jobs, then reserve the head."""
    keys = QueueKeys.of(prefix, queue)
    moment = time.time() if now is None else now
    for source in (keys.delayed, keys.reserved):
        client.eval(_MIGRATE_LUA, 3, source, keys.queue, keys.notify, moment, MIGRATE_LIMIT)
    result = client.eval(
        _POP_LUA, 3, keys.queue, keys.reserved, keys.notify, moment + retry_after_s
    )
    raw, reserved = cast(list[Any], result)
    if not raw:
        return None
    return PoppedJob(queue=queue, raw=_text(raw), reserved=_text(reserved))


def delete_reserved(client: redis.Redis, prefix: str, job: PoppedJob) -> None:
    """RedisQueue::deleteReserved: the job finished; drop it from `:reserved`."""
    client.zrem(QueueKeys.of(prefix, job.queue).reserved, job.reserved)


def release(client: redis.Redis, prefix: str, job: PoppedJob, delay_s: float) -> None:
    """RedisQueue::deleteAndRelease: back onto `:delayed`, available after `delay_s`."""
    keys = QueueKeys.of(prefix, job.queue)
    pipe = client.pipeline(transaction=True)
    pipe.zrem(keys.reserved, job.reserved)
    pipe.zadd(keys.delayed, {job.reserved: time.time() + delay_s})
    pipe.execute()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
