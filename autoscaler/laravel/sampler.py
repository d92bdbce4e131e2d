"""Every Laravel queue in one pipelined Redis round trip per tick.

Per queue X under the key prefix: LLEN `queues:X` (pending), ZCARD `queues:X:reserved`
(in flight), ZCARD `queues:X:delayed`, ZCOUNT `queues:X:delayed -inf now` (already due: the
next pop moves them to the list), LINDEX `queues:X 0` (the next job, for its timestamp) and
LINDEX `queues:X -1` (the last job, for FIFO accounting of ages: autoscaler/laravel/fifo.py).
All of them go out in one non-transactional pipeline: one write, one read, whatever the
number of queues. A sampler returns numbers; a Redis problem becomes an `error`, never an
exception.

Ages come in two steps: `sample` reads Redis and the head's own timestamp; `settle_ages`
runs the FIFO accounting, given how many jobs the workers took since the previous tick when
the caller knows (the Observer counts them in the workers' logs). `sample(settle=True)` does
both with no such count.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from autoscaler.constants import DELAYED_SUFFIX, QUEUE_KEY, RESERVED_SUFFIX
from autoscaler.laravel.fifo import FifoAges
from autoscaler.laravel.headjob import PayloadAge, payload_age
from autoscaler.laravel.queue_sample import QueueSample

COMMANDS_PER_QUEUE = 6


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
    tails: dict[str, str | None] = field(default_factory=dict)  # digest of each list's last job
    head_problems: dict[str, str] = field(default_factory=dict)  # a head payload not usable

    @property
    def available(self) -> bool:
        return self.error is None


class QueueSampler:
    """Samples a fixed set of queues; keeps each list's FIFO accounting between ticks."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str,
        queues: Sequence[str],
        ages: FifoAges | None = None,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.keys = [QueueKeys.of(prefix, queue) for queue in dict.fromkeys(queues)]
        self.ages = ages or FifoAges()

    def sample(self, now_s: float, *, settle: bool = True) -> RedisSample:
        """Read every queue in one round trip; `now_s` decides which delayed jobs are due.
        With `settle=False` the ages without a payload timestamp wait for `settle_ages`."""
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
                self.ages.forget(keys.queue)
                continue
            pending, reserved, delayed, due, head, tail = chunk
            own = payload_age(head, now_s) if head is not None else None
            result.queues[keys.queue] = QueueSample(
                queue=keys.queue,
                pending=int(pending),
                reserved=int(reserved),
                delayed=int(delayed),
                delayed_due=int(due),
                oldest_wait_s=own.age_s if own else None,
                oldest_wait_source=(own.source if own else None) or "unknown",
                age_problem=own.problem if own and own.unusable else None,
            )
            result.tails[keys.queue] = _digest(tail)
            if own is not None and own.problem is not None:
                result.head_problems[keys.queue] = _consequence(own)
        if settle:
            self.settle_ages(result)
        return result

    def settle_ages(
        self, sample: RedisSample, pops: Mapping[str, float | None] | None = None
    ) -> None:
        """Run each queue's FIFO accounting and give the queues whose head has no timestamp
        its age. `pops`: jobs taken from each list since the previous tick, where known."""
        for name, queue in sample.queues.items():
            fifo = self.ages.update(
                name,
                now_s=sample.at_s,
                length=queue.pending,
                tail=sample.tails.get(name),
                pops_hint=(pops or {}).get(name),
            )
            if queue.age_problem is not None:
                queue.oldest_wait_s, queue.oldest_wait_source = None, "unknown"
            elif queue.oldest_wait_source == "unknown" or fifo.source == "empty":
                queue.oldest_wait_s, queue.oldest_wait_source = fifo.age_s, fifo.source

    def _round_trip(self, now_s: float) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for keys in self.keys:
            pipe.llen(keys.pending)
            pipe.zcard(keys.reserved)
            pipe.zcard(keys.delayed)
            pipe.zcount(keys.delayed, "-inf", now_s)
            pipe.lindex(keys.pending, 0)
            pipe.lindex(keys.pending, -1)
        # raise_on_error=False: a key of the wrong type spoils its queue, not the tick.
        return list(pipe.execute(raise_on_error=False))


def describe_redis_error(exc: BaseException) -> str:
    """A one-line reason for operators (no URL, so no password)."""
    text = str(exc).strip() or type(exc).__name__
    return f"Redis unavailable: {type(exc).__name__}: {text}"


def _consequence(own: PayloadAge) -> str:
    """The head's problem and what it costs, for the daemon's log."""
    if own.unusable:
        return f"head job: {own.problem}; its age is unknown while it is at the head"
    return f"head job: {own.problem}; its age comes from FIFO accounting"


def _digest(payload: bytes | str | None) -> str | None:
    """A short stable name for a list element: whether the tail job changed between ticks."""
    if payload is None:
        return None
    raw = payload if isinstance(payload, bytes) else payload.encode()
    return hashlib.blake2b(raw, digest_size=12).hexdigest()
