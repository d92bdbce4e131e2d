"""One pool's slot logs read as one: `autoscaler logs POOL [-f] [-n N]`.

Each slot writes a file of its own (supervisord/slots.py `slot_logfile`), so a `tail -f` on
one path misses the slots added later. Here every slot's file is read, lines are merged in
time order (by the timestamp Laravel prints on the line, carried forward to lines without
one) and each keeps its slot's name. Following re-reads the set of paths on every poll, so
a slot added later is picked up from its first line; a file rotated by Supervisor (renamed
to `.1`, a new file opened) is read to its end through the open descriptor before the new
file is read from its start, and a truncated file is read again from its start.
"""

from __future__ import annotations

import heapq
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# Laravel's stamps: `2024-01-01 12:00:00` (queue:work) and `2024-01-01T12:00:00.123456+00:00`
# (--json); the first one on a line, near its start.
_STAMP = re.compile(r"(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2}(?:\.\d+)?)")
STAMP_SEARCH_CHARS = 80
TAIL_READ_BYTES = 1 << 20  # -n N: at most this much of each file's end is read
ROTATED_NAMES = 10  # `.1` .. `.10`: Supervisor's backups (stdout_logfile_backups)


@dataclass(frozen=True, slots=True)
class LogLine:
    key: str  # the sortable time of the line (`YYYY-MM-DD HH:MM:SS[.f]`; "" before any stamp)
    slot: str
    text: str  # without the line break


def stamp_key(text: str, carried: str) -> str:
    """The line's own time as a sortable string, else the one carried from earlier lines."""
    match = _STAMP.search(text, 0, STAMP_SEARCH_CHARS)
    if match is None:
        return carried
    return f"{match.group(1)} {match.group(2)}"


def merge(streams: Iterable[list[LogLine]]) -> list[LogLine]:
    """Lines of several slots in time order; each slot's own order is kept."""
    return list(heapq.merge(*streams, key=lambda line: line.key))


class FollowedFile:
    """One slot's log: its complete lines since the last read, across rotation and truncation."""

    def __init__(self, path: str, slot: str, *, from_end: bool) -> None:
        self.path = path
        self.slot = slot
        self._fd: int | None = None
        self._inode: tuple[int, int] | None = None
        self._partial = b""
        self._carried = ""
        self._from_end = from_end  # the first open starts at the end (history already shown)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def tail(self, lines: int) -> list[LogLine]:
        """The file's last `lines` complete lines, and the position after them for read()."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return []
        stat = os.fstat(fd)
        start = max(0, stat.st_size - TAIL_READ_BYTES)
        data = os.pread(fd, stat.st_size - start, start)
        end = data.rfind(b"\n") + 1
        self._adopt(fd, stat, position=start + end)
        self._from_end = False
        chunk = data[:end]
        if start > 0:  # the first line was cut by the read window
            chunk = chunk[chunk.find(b"\n") + 1 :]
        texts = chunk.decode("utf-8", "replace").splitlines()
        found = self._keyed(texts)
        return found[-lines:] if lines > 0 else []

    def read(self) -> list[LogLine]:
        """New complete lines since the last call (an unfinished last line waits)."""
        lines: list[LogLine] = []
        if self._fd is None and not self._open():
            return lines
        lines += self._read_fd()
        current = _inode_of(self.path)
        if current is not None and current != self._inode:
            # Rotated: the old file was read to its end above. Files rotated after it (more
            # than one rotation between two polls) are read whole, oldest first, then the
            # new file from its start.
            for between in self._rotated_since():
                lines += self._keyed(_complete_lines(between))
            self.close()
            self._partial = b""
            if self._open():
                lines += self._read_fd()
        return lines

    def _rotated_since(self) -> list[str]:
        """`path.(k-1)` .. `path.1`, where `path.k` is the file we were reading."""
        for number in range(1, ROTATED_NAMES + 1):
            if _inode_of(f"{self.path}.{number}") == self._inode:
                return [f"{self.path}.{n}" for n in range(number - 1, 0, -1)]
        return []

    def _open(self) -> bool:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return False
        stat = os.fstat(fd)
        self._adopt(fd, stat, position=stat.st_size if self._from_end else 0)
        self._from_end = False
        return True

    def _adopt(self, fd: int, stat: os.stat_result, *, position: int) -> None:
        self.close()
        self._fd = fd
        self._inode = (stat.st_dev, stat.st_ino)
        os.lseek(fd, position, os.SEEK_SET)

    def _read_fd(self) -> list[LogLine]:
        assert self._fd is not None
        position = os.lseek(self._fd, 0, os.SEEK_CUR)
        if os.fstat(self._fd).st_size < position:  # truncated (copytruncate, backups=0)
            os.lseek(self._fd, 0, os.SEEK_SET)
            self._partial = b""
        chunks = [self._partial]
        while block := os.read(self._fd, 1 << 16):
            chunks.append(block)
        data = b"".join(chunks)
        end = data.rfind(b"\n") + 1
        self._partial = data[end:]
        return self._keyed(data[:end].decode("utf-8", "replace").splitlines())

    def _keyed(self, texts: list[str]) -> list[LogLine]:
        found = []
        for text in texts:
            self._carried = stamp_key(text, self._carried)
            found.append(LogLine(key=self._carried, slot=self.slot, text=text))
        return found


class PoolLog:
    """Every slot file of a pool, read together; `paths` may grow between polls."""

    def __init__(self) -> None:
        self._files: dict[str, FollowedFile] = {}

    def close(self) -> None:
        for followed in self._files.values():
            followed.close()

    def last(self, paths: Mapping[str, str], lines: int) -> list[LogLine]:
        """The last `lines` lines of all the files together, in time order."""
        streams = []
        for path, slot in sorted(paths.items()):
            followed = self._files[path] = FollowedFile(path, slot, from_end=False)
            streams.append(followed.tail(lines))
        merged = merge(streams)
        return merged[-lines:] if lines > 0 else []

    def poll(self, paths: Mapping[str, str]) -> list[LogLine]:
        """New lines of every file since the last poll, in time order. A path seen for the
        first time is read from its start: it is a slot added since (or one not yet written)."""
        for path, slot in paths.items():
            if path not in self._files:
                self._files[path] = FollowedFile(path, slot, from_end=False)
        return merge(self._files[path].read() for path in sorted(self._files))


def _complete_lines(path: str) -> list[str]:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return []
    return data.decode("utf-8", "replace").splitlines()


def _inode_of(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino)
