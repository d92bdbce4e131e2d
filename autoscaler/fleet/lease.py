"""One leader per fleet: a Redis lease with a token, and a fencing epoch.

`keep()` runs one Lua script (atomic in Redis), every tick, on every host:
- the lease holds our token: renew it (compare-and-set, then PEXPIRE);
- the lease is free: take it (`SET NX PX`) with a new epoch: INCR of the epoch counter, and
  above any epoch this host or a heartbeat has seen (a Redis restarted without its data starts
  the counter again);
- someone else holds it: report who, and their epoch.
The epoch is the fence: assignments carry it, and hosts ignore any older than the newest they
have seen (assignment.py), so a leader paused past its lease cannot undo its successor's work.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

import redis
from redis.client import Pipeline

from autoscaler.fleet.keys import FleetKeys

KEEP_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if current then
  local lease = cjson.decode(current)
  if lease.token == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    return {1, lease.epoch, lease.host}
  end
  return {0, lease.epoch, lease.host}
end
local epoch = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[4])
for _, raw in ipairs(redis.call('HVALS', KEYS[3])) do
  local ok, beat = pcall(cjson.decode, raw)
  if ok and type(beat) == 'table' and type(beat.epoch_seen) == 'number'
      and beat.epoch_seen > floor then
    floor = beat.epoch_seen
  end
end
if epoch <= floor then
  epoch = floor + 1
  redis.call('SET', KEYS[2], epoch)
end
local value = cjson.encode({host = ARGV[2], token = ARGV[1], epoch = epoch})
redis.call('SET', KEYS[1], value, 'NX', 'PX', ARGV[3])
return {2, epoch, ARGV[2]}
"""

RELEASE_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current).token == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseView:
    held: bool  # this host holds the lease after the call
    acquired: bool  # ... and took it in this call (a new epoch)
    epoch: int
    leader: str

    @classmethod
    def of(cls, reply: list[Any]) -> LeaseView:
        """The keep script's reply: [code, epoch, leader]."""
        code, epoch, leader = reply
        name = leader.decode() if isinstance(leader, bytes) else str(leader)
        return cls(held=code in (1, 2), acquired=code == 2, epoch=int(epoch), leader=name)

    @classmethod
    def observed(cls, raw: bytes | None) -> LeaseView:
        """The lease as read by a host that may not lead (GET): nobody, or its holder."""
        if raw is None:
            return cls(held=False, acquired=False, epoch=0, leader="")
        data = json.loads(raw)
        return cls(held=False, acquired=False, epoch=int(data["epoch"]), leader=str(data["host"]))


class Lease:
    def __init__(self, *, client: redis.Redis, keys: FleetKeys, host: str, ttl_ms: int) -> None:
        self.client = client
        self.keys = keys
        self.host = host
        self.ttl_ms = ttl_ms
        self.token = secrets.token_hex(16)  # new per process: a restarted daemon is a new leader

    def queue_keep(self, pipe: Pipeline, *, epoch_floor: int) -> None:
        """Renew, take or observe the lease: one EVAL in `pipe`; its reply goes to
        LeaseView.of. EVAL rather than EVALSHA: a restarted Redis has no scripts loaded, and
        the script is sent once per tick, not per pool."""
        pipe.eval(
            KEEP_SCRIPT, 3, self.keys.lease, self.keys.epoch, self.keys.hosts,
            self.token, self.host, self.ttl_ms, epoch_floor,
        )  # fmt: skip

    def release(self) -> bool:
        """Give the lease up (stopping, or a host has seen a newer epoch than ours)."""
        return bool(self.client.eval(RELEASE_SCRIPT, 1, self.keys.lease, self.token))


def read_lease(client: redis.Redis, keys: FleetKeys) -> tuple[str | None, int | None]:
    """(leader, epoch) of the current lease, for status; (None, None) when nobody leads."""
    raw = client.get(keys.lease)
    if raw is None:
        return None, None
    data = json.loads(raw)
    return str(data["host"]), int(data["epoch"])
