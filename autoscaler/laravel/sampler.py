"""Every Laravel queue in one pipelined Redis round trip per tick.

Per queue X under the key prefix: LLEN `queues:X` (pending), ZCARD `queues:X:reserved`
(in flight), ZCARD `queues:X:delayed`, ZCOUNT `queues:X:delayed -inf now` (already due: the
next pop moves them to the list) and LINDEX `queues:X 0` (the next job, for its age). All of
them go out in one non-transactional pipeline: one write, one read, whatever the number of
queues. A sampler returns numbers; a Redis problem becomes an `error`, never an exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from autoscaler.constants import DELAYED_SUFFIX, QUEUE_KEY, RESERVED_SUFFIX
from autoscaler.laravel.headjob import HeadJobAges
from autoscaler.laravel.queue_sample import QueueSample

COMMANDS_PER_QUEUE = 5


def connect_redis(url: str, *, timeout_s: float) -> redis.Redis:
    """A client that fails fast: one attempt per tick, a timeout on connect and on reads."""
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )


@dataclass(frozen=True, slots=True)
class QueueKeys:
    queue: str
    pending: str
    reserved: str
    delayed: str

    @classmethod
    def of(cls, prefix: str, queue: str) -> QueueKeys:
        base = prefix + QUEUE_KEY.format(queue=queue)
        return cls(queue, base, base + RESERVED_SUFFIX, base + DELAYED_SUFFIX)


@dataclass(slots=True, kw_only=True)
class RedisSample:
    """One tick's reading: a QueueSample per queue, or why Redis could not be read."""

    at_s: float
    queues: dict[str, QueueSample] = field(default_factory=dict)
    error: str | None = None  # the round trip failed: no queue was read
    queue_errors: dict[str, str] = field(default_factory=dict)  # e.g. a key of another type
    head_problems: dict[str, str] = field(default_factory=dict)  # a head payload not usable

    @property
    def available(self) -> bool:
        return self.error is None


class QueueSampler:
    """Samples a fixed set of queues; remembers head-job ids between ticks (bounded)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str,
        queues: Sequence[str],
        ages: HeadJobAges | None = None,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.keys = [QueueKeys.of(prefix, queue) for queue in dict.fromkeys(queues)]
        self.ages = ages or HeadJobAges()

    def sample(self, now_s: float) -> RedisSample:
        """Read every queue in one round trip; `now_s` decides which delayed jobs are due."""
        result = RedisSample(at_s=now_s)
        try:
            replies = self._round_trip(now_s)
        except (redis.RedisError, OSError) as exc:
            result.error = describe_redis_error(exc)
            return result
        for index, keys in enumerate(self.keys):
            chunk = replies[index * COMMANDS_PER_QUEUE : (index + 1) * COMMANDS_PER_QUEUE]
            problem = next((r for r in chunk if isinstance(r, Exception)), None)
            if problem is not None:
                result.queue_errors[keys.queue] = f"{keys.pending}: {problem}"
                continue
            pending, reserved, delayed, due, head = chunk
            oldest, source = self.ages.age(keys.queue, head, now_s)
            result.queues[keys.queue] = QueueSample(
                queue=keys.queue,
                pending=int(pending),
                reserved=int(reserved),
                delayed=int(delayed),
                delayed_due=int(due),
                oldest_wait_s=oldest,
                oldest_wait_source=source,
            )
            if keys.queue in self.ages.problems:
                result.head_problems[keys.queue] = self.ages.problems[keys.queue]
        return result

    def _round_trip(self, now_s: float) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for keys in self.keys:
            pipe.llen(keys.pending)
            pipe.zcard(keys.reserved)
            pipe.zcard(keys.delayed)
            pipe.zcount(keys.delayed, "-inf", now_s)
            pipe.lindex(keys.pending, 0)
        # raise_on_error=False: a key of the wrong type spoils its queue, not the tick.
        return list(pipe.execute(raise_on_error=False))


def describe_redis_error(exc: BaseException) -> str:
    """A one-line reason for operators (no URL, so no password)."""
    text = str(exc).strip() or type(exc).__name__
    return f"Redis unavailable: {type(exc).__name__}: {text}"
