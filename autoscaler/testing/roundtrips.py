"""Count a Redis client's network round trips (tests and the sampler benchmark).

A round trip is a write that has to wait for the replies of the previous one: every send
that follows a read (or is the first) starts one. A pipeline of any length is one send and
then its reads; a command at a time would be one round trip each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis


@dataclass(slots=True)
class RoundTrips:
    round_trips: int = 0
    sends: int = 0
    reads: int = 0
    _reading: bool = True

    def on_send(self) -> None:
        if self._reading:
            self.round_trips += 1
        self._reading = False
        self.sends += 1

    def on_read(self) -> None:
        self._reading = True
        self.reads += 1

    def reset(self) -> None:
        self.round_trips = self.sends = self.reads = 0
        self._reading = True


def counting_client(url: str, **options: Any) -> tuple[redis.Redis, RoundTrips]:
    """A client whose connections report every send and read to the returned counter."""
    counter = RoundTrips()

    class CountingConnection(redis.Connection):
        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            counter.on_send()
            super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]

        def read_response(self, *args: Any, **kwargs: Any) -> Any:
            counter.on_read()
            return super().read_response(*args, **kwargs)

    pool = redis.ConnectionPool.from_url(url, connection_class=CountingConnection, **options)
    return redis.Redis(connection_pool=pool), counter
