"""Find Laravel's queues and key prefixes in Redis with SCAN (never KEYS), and compare them
with the policies: queues nobody manages, policies whose queue has no key, a wrong prefix.

An idle Laravel queue has no key at all (Redis deletes empty lists and sorted sets), so
"no key" means "empty right now, never used, or under another prefix".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import redis

from autoscaler.constants import DELAYED_SUFFIX, NOTIFY_SUFFIX, RESERVED_SUFFIX
from autoscaler.policy.model import Policy

QUEUES_MARK = "queues:"
_SUFFIXES = {RESERVED_SUFFIX: "reserved", DELAYED_SUFFIX: "delayed", NOTIFY_SUFFIX: "notify"}
SCAN_COUNT = 1000  # keys per SCAN call: a hint to Redis, bounded work per call


@dataclass(slots=True, kw_only=True)
class FoundQueue:
    prefix: str
    queue: str
    keys: set[str] = field(default_factory=set)  # list, reserved, delayed, notify
    pool: str | None = None  # the policy consuming it (under the configured prefix only)


@dataclass(slots=True, kw_only=True)
class Discovery:
    prefix: str  # the configured one
    queues: list[FoundQueue]  # every queue found, under any prefix
    scanned_keys: int
    missing: list[tuple[str, str]]  # (pool, queue) with no key under the configured prefix

    @property
    def prefixes(self) -> dict[str, int]:
        """Every prefix found -> how many queues it holds."""
        counts: dict[str, int] = {}
        for found in self.queues:
            counts[found.prefix] = counts.get(found.prefix, 0) + 1
        return dict(sorted(counts.items()))

    @property
    def unmanaged(self) -> list[FoundQueue]:
        """Queues under the configured prefix that no policy consumes."""
        return [q for q in self.queues if q.prefix == self.prefix and q.pool is None]

    @property
    def suggested_prefix(self) -> str | None:
        """Another prefix holding more of the policies' queues than the configured one."""
        wanted = {queue for _pool, queue in self.missing} | {
            q.queue for q in self.queues if q.prefix == self.prefix and q.pool is not None
        }
        score: dict[str, int] = {}
        for found in self.queues:
            if found.queue in wanted:
                score[found.prefix] = score.get(found.prefix, 0) + 1
        if not score:
            return None
        best = max(sorted(score), key=lambda p: score[p])
        if best == self.prefix or score[best] <= score.get(self.prefix, 0):
            return None
        return best


def split_key(key: str) -> tuple[str, str, str] | None:
    """`<prefix>queues:<name>[:reserved|:delayed|:notify]` -> (prefix, name, kind)."""
    index = key.find(QUEUES_MARK)
    if index < 0:
        return None
    prefix, rest = key[:index], key[index + len(QUEUES_MARK) :]
    kind = "list"
    for suffix, name in _SUFFIXES.items():
        if rest.endswith(suffix):
            rest, kind = rest[: -len(suffix)], name
            break
    if not rest:
        return None
    return prefix, rest, kind


def discover(client: redis.Redis, *, prefix: str, policies: Mapping[str, Policy]) -> Discovery:
    """SCAN every key matching `*queues:*` and sort them into queues by prefix.

    Raises redis.RedisError when Redis cannot be read (the caller reports it).
    """
    pool_of = {queue: pool for pool, policy in policies.items() for queue in policy.queues}
    found: dict[tuple[str, str], FoundQueue] = {}
    scanned = 0
    for raw in client.scan_iter(match=f"*{QUEUES_MARK}*", count=SCAN_COUNT):
        scanned += 1
        key = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
        parts = split_key(key)
        if parts is None:
            continue
        key_prefix, queue, kind = parts
        entry = found.setdefault(
            (key_prefix, queue),
            FoundQueue(
                prefix=key_prefix,
                queue=queue,
                pool=pool_of.get(queue) if key_prefix == prefix else None,
            ),
        )
        entry.keys.add(kind)
    present = {queue for (p, queue) in found if p == prefix}
    missing = [
        (pool, queue)
        for pool, policy in policies.items()
        for queue in policy.queues
        if queue not in present
    ]
    return Discovery(
        prefix=prefix,
        queues=sorted(found.values(), key=lambda q: (q.prefix != prefix, q.prefix, q.queue)),
        scanned_keys=scanned,
        missing=missing,
    )
