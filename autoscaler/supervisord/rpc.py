"""A thin XML-RPC client for supervisord with a timeout on every call.

Supervisor's own transport has no timeout, so a wedged supervisord would hang the daemon;
here every connection gets one. Credentials go in the Authorization header only and are
never part of a message. Connection problems become SupervisorUnavailable; a Fault from
supervisord (BAD_NAME, STILL_RUNNING, ...) is passed through for the caller to handle.
`multicall` sends many calls in one round trip (system.multicall) and returns each call's
result or its Fault, so one refused call does not hide the others.
"""

from __future__ import annotations

import http.client
import socket
import xmlrpc.client
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, cast
from urllib.parse import urlsplit

from supervisor.xmlrpc import SupervisorTransport

from autoscaler.constants import SUPERVISOR_STATES
from autoscaler.settings import Settings, mask_url


class SupervisorUnavailable(Exception):
    """supervisord cannot be reached or refused us; the message says why (never a secret)."""


class Faults(IntEnum):
    """Fault codes of supervisord's XML-RPC interface (supervisor/xmlrpc.py)."""

    UNKNOWN_METHOD = 1
    INCORRECT_PARAMETERS = 2
    BAD_ARGUMENTS = 3
    SIGNATURE_UNSUPPORTED = 4
    SHUTDOWN_STATE = 6
    BAD_NAME = 10
    BAD_SIGNAL = 11
    NO_FILE = 20
    NOT_EXECUTABLE = 21
    FAILED = 30
    ABNORMAL_TERMINATION = 40
    SPAWN_ERROR = 50
    ALREADY_STARTED = 60
    NOT_RUNNING = 70
    SUCCESS = 80
    ALREADY_ADDED = 90
    STILL_RUNNING = 91
    CANT_REREAD = 92


def fault_name(code: int) -> str:
    try:
        return Faults(code).name
    except ValueError:
        return f"FAULT_{code}"


@dataclass(frozen=True, slots=True)
class ConfigDiff:
    """reloadConfig's answer: process groups added, changed and removed in the files."""

    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]


@dataclass(slots=True, kw_only=True)
class ProcessInfo:
    """One entry of getAllProcessInfo."""

    name: str
    group: str
    state: int
    pid: int
    start_s: int
    now_s: int
    stdout_logfile: str
    spawnerr: str
    exitstatus: int

    @property
    def statename(self) -> str:
        return SUPERVISOR_STATES.get(self.state, "UNKNOWN")

    @classmethod
    def from_rpc(cls, raw: dict[str, Any]) -> ProcessInfo:
        return cls(
            name=str(raw["name"]),
            group=str(raw["group"]),
            state=int(raw["state"]),
            pid=int(raw.get("pid", 0)),
            start_s=int(raw.get("start", 0)),
            now_s=int(raw.get("now", 0)),
            stdout_logfile=str(raw.get("stdout_logfile", "")),
            spawnerr=str(raw.get("spawnerr", "")),
            exitstatus=int(raw.get("exitstatus", 0)),
        )


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout_s: float) -> None:
        super().__init__("localhost", timeout=timeout_s)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.path)
        self.sock = sock


class _TimeoutTransport(SupervisorTransport):  # type: ignore[misc]
    def __init__(self, url: str, username: str | None, password: str | None, timeout_s: float):
        super().__init__(username, password, url)
        self._url = urlsplit(url)
        self._timeout_s = timeout_s
        self._get_connection = self._connect

    def _connect(self) -> http.client.HTTPConnection:
        if self._url.scheme == "unix":
            return _UnixConnection(self._url.path or self._url.netloc, self._timeout_s)
        host, port = self._url.hostname or "127.0.0.1", self._url.port or 80
        return http.client.HTTPConnection(host, port, timeout=self._timeout_s)


class SupervisorClient:
    """supervisord's `supervisor.*` namespace with timeouts and clear errors."""

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        self.url = mask_url(url)  # for messages; the transport keeps the real one
        self._transport = _TimeoutTransport(url, username, password, timeout_s)
        endpoint = "http://127.0.0.1" if url.startswith("unix://") else url.rstrip("/") + "/RPC2"
        self._proxy = xmlrpc.client.ServerProxy(endpoint, transport=self._transport)

    @classmethod
    def from_settings(cls, settings: Settings) -> SupervisorClient:
        password = settings.supervisor_password
        return cls(
            settings.supervisor_url,
            username=settings.supervisor_username,
            password=password.get_secret_value() if password is not None else None,
            timeout_s=settings.supervisor_timeout_s,
        )

    def call(self, method: str, *args: Any) -> Any:
        """Call `supervisor.<method>`; raise SupervisorUnavailable on transport problems."""
        return self._invoke(getattr(self._proxy.supervisor, method), *args)

    def _invoke(self, function: Any, *args: Any) -> Any:
        try:
            return function(*args)
        except xmlrpc.client.Fault:
            raise
        except xmlrpc.client.ProtocolError as exc:
            self._transport.close()
            why = (
                "authentication failed (check the username/password)"
                if exc.errcode == 401
                else (f"HTTP {exc.errcode} {exc.errmsg}")
            )
            raise SupervisorUnavailable(f"supervisord at {self.url}: {why}") from None
        except (OSError, http.client.HTTPException, xmlrpc.client.Error) as exc:
            self._transport.close()
            raise SupervisorUnavailable(
                f"supervisord at {self.url} unreachable: {type(exc).__name__}: {exc}"
            ) from None

    def state(self) -> str:
        return str(cast(dict[str, Any], self.call("getState"))["statename"])

    def processes(self) -> list[ProcessInfo]:
        raw = cast(list[dict[str, Any]], self.call("getAllProcessInfo"))
        return [ProcessInfo.from_rpc(entry) for entry in raw]

    def config_info(self) -> list[dict[str, Any]]:
        """getAllConfigInfo: every loaded program configuration (read only)."""
        return cast(list[dict[str, Any]], self.call("getAllConfigInfo"))

    def reload_config(self) -> ConfigDiff:
        """reloadConfig (`supervisorctl reread`): supervisord rereads every file and says what
        differs from what runs. Changes no process. A bad file anywhere: Fault CANT_REREAD."""
        raw = cast(list[list[list[str]]], self.call("reloadConfig"))
        added, changed, removed = raw[0]
        return ConfigDiff(tuple(added), tuple(changed), tuple(removed))

    def multicall(self, calls: Sequence[tuple[str, tuple[Any, ...]]]) -> list[Any]:
        """Run `supervisor.<method>(*args)` for each (method, args) in one round trip.

        Returns one entry per call: its result, or an xmlrpc.client.Fault for a refused call.
        """
        if not calls:
            return []
        batch = [{"methodName": f"supervisor.{m}", "params": list(a)} for m, a in calls]
        raw = cast(list[Any], self._invoke(self._proxy.system.multicall, batch))
        results: list[Any] = []
        for entry in raw:
            if isinstance(entry, dict) and "faultCode" in entry:
                results.append(xmlrpc.client.Fault(entry["faultCode"], entry["faultString"]))
            else:
                results.append(entry)
        return results

    def close(self) -> None:
        self._transport.close()
