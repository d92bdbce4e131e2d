"""One active controller per managed file: an exclusive flock on `daemon.lock` in the include
file's state directory (hidden, so a `files = conf.d/*` include never reads it as config).

Why a file lock and not a Redis key with a TTL: the file autoscaler owns lives on one host, so
the daemons that could fight over it run on that host; the kernel releases a flock the moment
its holder dies (no TTL to wait out, no clock skew), and the lock keeps working while Redis is
down — exactly when a Redis-based lease would expire and let a standby act on stale data.
A standby daemon polls the lock every tick and takes over when the holder is gone.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

LOCK_NAME = "daemon.lock"


class ControllerLock:
    """Non-blocking exclusive lock; `acquire()` returns whether this process now holds it."""

    def __init__(self, *, state_dir: Path) -> None:
        self.path = state_dir / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        # The holder's pid, for operators (`cat file.lock`); the lock itself is the flock.
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def holder_pid(self) -> int | None:
        try:
            text = self.path.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def release(self) -> None:
        if self._fd is None:
            return
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> ControllerLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
