"""The queues' sample from Redis each tick, tried again on a backoff while Redis is down.

One pipelined round trip per tick (laravel/sampler.py); the oldest-job ages it keeps by FIFO
accounting are settled once the tick's work is known (`settle`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import redis

from autoscaler.laravel.queue_sample import QueueSample
from autoscaler.laravel.sampler import QueueSampler, RedisSample
from autoscaler.observe.retry import retry_backoff, waiting
from autoscaler.policy.model import Policy


class RedisReader:
    """Samples every policy's queues; between retries returns the last failure."""

    def __init__(
        self,
        *,
        client: redis.Redis,
        prefix: str,
        policies: Mapping[str, Policy],
        clock: Callable[[], float],
    ) -> None:
        self.client = client
        self.sampler = QueueSampler(
            client, prefix=prefix, queues=[q for p in policies.values() for q in p.queues]
        )
        self._retry = retry_backoff(clock)
        self._failure = ""

    def follow(self, policies: Mapping[str, Policy]) -> None:
        """Sample the reloaded policies' queues; the lists' job ages are kept."""
        self.sampler = QueueSampler(
            self.client,
            prefix=self.sampler.prefix,
            queues=[q for p in policies.values() for q in p.queues],
            ages=self.sampler.ages,
        )

    def sample(self, now_s: float) -> RedisSample:
        """Redis's queues, or the last failure while its retry is not due yet."""
        wait_s = self._retry.remaining_s()
        if wait_s > 0:
            return RedisSample(at_s=now_s, error=waiting(self._failure, wait_s))
        sample = self.sampler.sample(now_s, settle=False)  # ages: once the work is known
        if sample.error is None:
            self._retry.succeeded()
        else:  # queue_errors (a key of another type) are no outage: no backoff for them
            self._failure = sample.error
            self._retry.failed()
        return sample

    def settle(
        self,
        sample: RedisSample,
        completions: Mapping[str, float],
        reserved_before: Mapping[str, int],
    ) -> None:
        """Date the lists' oldest jobs, from the jobs the workers took since the last tick."""
        self.sampler.settle_ages(sample, pops(sample, completions, reserved_before))


def pops(
    sample: RedisSample, completions: Mapping[str, float], reserved_before: Mapping[str, int]
) -> dict[str, float]:
    """Jobs the workers took from each list since the last tick, for the FIFO ages: the
    ones that finished plus the change in those in hand (where both are known)."""
    taken = {}
    for name, queue in sample.queues.items():
        done, before = completions.get(name), reserved_before.get(name)
        if done is not None and before is not None:
            taken[name] = max(0.0, done + queue.reserved - before)
    return taken


def pool_queues(policy: Policy, sample: RedisSample) -> tuple[QueueSample, ...] | None:
    """The pool's queues from the sample; None unless every one of them was read."""
    if not sample.available or any(q in sample.queue_errors for q in policy.queues):
        return None
    return tuple(sample.queues[q] for q in policy.queues)


def redis_error(sample: RedisSample) -> str | None:
    """The sample's outage, or its queues' errors joined; None when all was read."""
    if sample.error is not None:
        return sample.error
    if sample.queue_errors:
        return "; ".join(sample.queue_errors.values())
    return None
