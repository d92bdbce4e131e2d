"""Redis key names of one fleet, in one place (all under `autoscaler:fleet:<name>:`)."""

from __future__ import annotations

from dataclasses import dataclass

# Heartbeats and the lease live this many ticks without renewal ("a few ticks").
TTL_TICKS = 3
# Assignment entries kept in the stream: enough for a host to read every entry written
# while it waited one tick, even with a stale leader writing beside the new one.
STREAM_MAXLEN = 100


@dataclass(frozen=True, slots=True)
class FleetKeys:
    fleet: str

    @property
    def base(self) -> str:
        return f"autoscaler:fleet:{self.fleet}:"

    @property
    def lease(self) -> str:  # {"host", "token", "epoch"}, PX = lease TTL
        return self.base + "lease"

    @property
    def epoch(self) -> str:  # INCR: grows with each new leader
        return self.base + "epoch"

    @property
    def hosts(self) -> str:  # HASH host -> its last heartbeat (JSON), for status
        return self.base + "hosts"

    def alive(self, host: str) -> str:  # present while the host beats (PX = heartbeat TTL)
        return f"{self.base}alive:{host}"

    @property
    def assignments(self) -> str:  # STREAM of the leaders' assignments, newest last
        return self.base + "assignments"
