"""What the leader tells each host to run, and the host's fence against stale leaders.

The leader appends one entry per tick to a Redis stream: its epoch, its name, when it decided,
and every host's count per pool. Each host reads the entries added since its last read, in
order, and keeps the newest whose epoch is at least the newest epoch it has seen: an entry from
a leader that was paused past its lease (and replaced) carries an older epoch and is ignored,
even when it was written after its successor's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import redis
from redis.client import Pipeline

from autoscaler.fleet.keys import STREAM_MAXLEN, FleetKeys


@dataclass(frozen=True, slots=True, kw_only=True)
class Assignment:
    epoch: int
    leader: str
    at_s: float  # the leader's clock when it decided
    hosts: dict[str, dict[str, int]]  # host -> pool -> count

    def to_fields(self) -> dict[str, str]:
        return {
            "epoch": str(self.epoch),
            "leader": self.leader,
            "at_s": repr(self.at_s),
            "hosts": json.dumps(self.hosts, separators=(",", ":")),
        }

    @classmethod
    def from_fields(cls, fields: dict[bytes, bytes]) -> Assignment:
        return cls(
            epoch=int(fields[b"epoch"]),
            leader=fields[b"leader"].decode(),
            at_s=float(fields[b"at_s"]),
            hosts={
                host: {pool: int(n) for pool, n in counts.items()}
                for host, counts in json.loads(fields[b"hosts"]).items()
            },
        )


def publish(client: redis.Redis | Pipeline, keys: FleetKeys, assignment: Assignment) -> None:
    """One XADD; the stream keeps about the last STREAM_MAXLEN entries."""
    client.xadd(
        keys.assignments,
        assignment.to_fields(),  # type: ignore[arg-type]  # redis-py's field types are loose
        maxlen=STREAM_MAXLEN,
        approximate=True,
    )


@dataclass(slots=True, kw_only=True)
class Fence:
    """The newest epoch a host has seen, and what it made of each entry (for logs and tests)."""

    epoch_seen: int = 0
    ignored: list[Assignment] = field(default_factory=list)

    def see(self, epoch: int) -> None:
        self.epoch_seen = max(self.epoch_seen, epoch)

    def admit(self, assignment: Assignment) -> bool:
        if assignment.epoch < self.epoch_seen:
            self.ignored.append(assignment)
            return False
        self.epoch_seen = assignment.epoch
        return True


class AssignmentReader:
    """Reads a host's new stream entries each tick and keeps the newest admitted one."""

    def __init__(self, *, client: redis.Redis, keys: FleetKeys, fence: Fence) -> None:
        self.client = client
        self.keys = keys
        self.fence = fence
        self.last_id: bytes | None = None  # the last entry read
        self.current: Assignment | None = None

    def queue_read(self, pipe: Pipeline) -> None:
        if self.last_id is None:  # first read: the newest entry only
            pipe.xrevrange(self.keys.assignments, count=1)
        else:
            pipe.xrange(self.keys.assignments, min=b"(" + self.last_id, count=STREAM_MAXLEN)

    def take(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> list[Assignment]:
        """Feed the read's result (oldest first); returns the entries this host admitted."""
        admitted = []
        for entry_id, fields in entries:
            self.last_id = entry_id
            assignment = Assignment.from_fields(fields)
            if self.fence.admit(assignment):
                self.current = assignment
                admitted.append(assignment)
        return admitted

    def restart(self) -> None:
        """Redis came back (maybe empty): read the newest entry again, as on start."""
        self.last_id = None
