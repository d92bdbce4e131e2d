"""Throwaway real redis-server and supervisord in a temp directory (tests and `demo`).

Nothing here is a mock: these start the real binaries on a unix socket and a free loopback
port, wait until they answer, and stop them (and everything they started) on close.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import redis
from supervisor.xmlrpc import SupervisorTransport


class StackError(RuntimeError):
    """A server could not be started; the message says which and why."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_binary(name: str) -> str | None:
    """A binary on PATH or beside this Python (pip installs supervisord there)."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def _wait_until(
    check: Callable[[], object], timeout_s: float, what: str, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:
            last = exc
        time.sleep(0.05)
    tail = ""
    if log is not None and log.exists():
        tail = "\n" + log.read_text(errors="replace")[-2000:]
    raise StackError(f"{what} did not come up within {timeout_s:.0f}s: {last}{tail}")


@dataclass
class RedisServer:
    """redis-server with persistence off, on a unix socket and a loopback TCP port."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        return self.directory / "redis.sock"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        return f"unix://{self.socket_path}?db=0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        binary = find_binary("redis-server")
        if binary is None:
            raise StackError("redis-server not found (apt-get install redis-server)")
        self.directory.mkdir(parents=True, exist_ok=True)
        log = self.directory / "redis.log"
        argv = [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--logfile", str(log),
        ]  # fmt: skip
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        _wait_until(lambda: self.client().ping(), timeout_s, "redis-server", log)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


SUPERVISORD_CONF = """\
[unix_http_server]
file={socket}
chmod=0700

{inet}
[supervisord]
logfile={dir}/supervisord.log
pidfile={dir}/supervisord.pid
childlogdir={dir}/childlogs
nodaemon=true
loglevel=info
minfds=1024
minprocs=200

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{socket}

; The broadest include an operator writes (`conf.d/*`): anything autoscaler left beside its
; file, other than hidden names, would be read as config.
[include]
files = {include_dir}/*
"""


@dataclass
class Supervisord:
    """supervisord 4.x with an include directory for program files, on a unix socket.

    With `username`/`password`, it also serves XML-RPC on http://127.0.0.1:<http_port>.
    """

    directory: Path
    username: str | None = None
    password: str | None = None
    http_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        return self.directory / "supervisor.sock"

    @property
    def include_dir(self) -> Path:
        return self.directory / "conf.d"

    @property
    def conf_path(self) -> Path:
        return self.directory / "supervisord.conf"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def proxy(self) -> xmlrpc.client.ServerProxy:
        transport = SupervisorTransport(None, None, self.url)
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def state_name(self) -> str:
        state = cast(dict[str, Any], self.proxy().supervisor.getState())
        return str(state["statename"])

    def write_conf(self) -> None:
        inet = ""
        if self.username is not None:
            inet = (
                f"[inet_http_server]\nport=127.0.0.1:{self.http_port}\n"
                f"username={self.username}\npassword={self.password}\n"
            )
        self.conf_path.write_text(
            SUPERVISORD_CONF.format(
                socket=self.socket_path,
                dir=self.directory,
                include_dir=self.include_dir,
                inet=inet,
            )
        )

    def start(self, timeout_s: float = 15.0) -> Supervisord:
        binary = find_binary("supervisord")
        if binary is None:
            raise StackError("supervisord not found (pip install supervisor)")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.include_dir.mkdir(exist_ok=True)
        (self.directory / "childlogs").mkdir(exist_ok=True)
        if not self.conf_path.exists():
            self.write_conf()
        log = self.directory / "supervisord.out"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [binary, "-n", "-c", str(self.conf_path)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its children die with its process group on close
            )
        _wait_until(
            lambda: self.state_name() == "RUNNING",
            timeout_s,
            "supervisord",
            log,
        )
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        process = self.process
        self.process = None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)  # supervisord stops its programs, then exits
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()
