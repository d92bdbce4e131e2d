"""supervisord's processes each tick, in one round trip with every program's command and the
tail of its log (the workers' exits); tried again on a backoff while supervisord is down."""

from __future__ import annotations

import xmlrpc.client
from collections.abc import Callable

from autoscaler.observe.retry import retry_backoff, waiting
from autoscaler.supervisord.exits import TAIL_BYTES as EXIT_TAIL_BYTES
from autoscaler.supervisord.exits import ExitReader, WorkerExit
from autoscaler.supervisord.rpc import ProcessInfo, SupervisorClient, SupervisorUnavailable


class SupervisorReader:
    """Reads the processes; keeps the commands and the exits logged since the last read."""

    def __init__(self, *, supervisor: SupervisorClient | None, clock: Callable[[], float]) -> None:
        self.supervisor = supervisor
        self.commands: dict[tuple[str, str], str] = {}  # (group, name) -> command
        self._retry = retry_backoff(clock)
        self._failure = ""
        self._exit_reader = ExitReader()
        self._logged_exits: list[WorkerExit] = []

    def take_exits(self) -> list[WorkerExit]:
        """The worker exits supervisord logged since the last call."""
        exits, self._logged_exits = self._logged_exits, []
        return exits

    def processes(self) -> tuple[list[ProcessInfo] | None, str | None]:
        """supervisord's processes, or why not (the last failure while backing off)."""
        if self.supervisor is None:
            return None, "no supervisord configured"
        wait_s = self._retry.remaining_s()
        if wait_s > 0:
            return None, waiting(self._failure, wait_s)
        try:
            # One round trip: the processes, and every program's command (to find other
            # programs' workers on our queues).
            raw, configs, log_tail = self.supervisor.multicall(
                [
                    ("getAllProcessInfo", ()),
                    ("getAllConfigInfo", ()),
                    ("readLog", (-EXIT_TAIL_BYTES, 0)),  # its exits (supervisord/exits.py)
                ]
            )
            if isinstance(raw, xmlrpc.client.Fault):
                raise raw
        except SupervisorUnavailable as exc:
            failure = str(exc)
        except xmlrpc.client.Fault as exc:
            failure = f"supervisord at {self.supervisor.url}: {exc.faultString}"
        else:
            self._retry.succeeded()
            self._logged_exits = (
                self._exit_reader.new_exits(log_tail) if isinstance(log_tail, str) else []
            )
            if not isinstance(configs, xmlrpc.client.Fault):
                self.commands = {
                    (str(c.get("group")), str(c.get("name"))): str(c.get("command", ""))
                    for c in configs
                }
            return [ProcessInfo.from_rpc(entry) for entry in raw], None
        self._failure = failure
        self._retry.failed()
        return None, failure
