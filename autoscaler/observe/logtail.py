"""Incremental reading of the workers' Supervisor stdout logs, and what each slot did.

A `LogTail` remembers, per file, the device+inode and the offset read so far, and keeps an
unfinished last line for the next read. It follows Supervisor's rotation (the file is renamed
to `.1`, `.2`, ... and a new one opened: the rest of the old file is read from its new name,
found by inode) and truncation (`stdout_logfile_backups=0` or copytruncate: it starts again
at 0). At most `max_bytes` are read per call; the rest waits for the next call (counts come
late but are not lost). A file more than `max_behind_bytes` behind after a read is skipped
to its end: those bytes are reported as skipped and the caller must not trust the counts.

A `SlotLog` feeds a tail's new lines through `worklog` and keeps the slot's state between
ticks (a job in hand, when it started) so each tick yields a `SlotWork`.
"""

from __future__ import annotations

import errno
import os
import stat as stat_module
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import BinaryIO

from autoscaler.laravel import worklog
from autoscaler.supervisord.rpc import ProcessInfo

DEFAULT_MAX_BYTES = 1 << 20
BEHIND_FACTOR = 4  # skip to the end when more than this many reads behind
CONTEXT_BYTES = 16 << 10  # read before the end on first sight, to learn the slot's state
MAX_LINE_BYTES = 64 << 10  # an unfinished line longer than this is dropped
ROTATED_NAMES = 10  # `.1` .. `.10`: Supervisor's backups (stdout_logfile_backups)


@dataclass(slots=True, kw_only=True)
class ReadResult:
    """What one read of a log file produced."""

    lines: list[str] = field(default_factory=list)  # complete new lines, without newline
    partial: str = ""  # the unfinished last line, kept for the next read
    context: str | None = None  # first sight only: the file's tail, for state, not counting
    bytes_read: int = 0
    behind_bytes: int = 0  # left for later reads because of the bound
    skipped_bytes: int = 0  # never read: too far behind, or lost to truncation
    rotated: bool = False
    truncated: bool = False
    exists: bool = True
    error: str | None = None  # could not be read (permissions, I/O): counts unknown

    @property
    def complete(self) -> bool:
        """Every byte written since the previous read was read (or will be, in order)."""
        return self.error is None and self.skipped_bytes == 0


class LogTail:
    """One log file read incrementally; see the module docstring for the rules."""

    def __init__(
        self,
        path: str,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        from_start: bool = False,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_behind_bytes = max_bytes * BEHIND_FACTOR
        self._from_start = from_start  # a file that appeared after we started: read it all
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino)
        self.offset = 0
        self._partial = b""

    @property
    def started(self) -> bool:
        return self._identity is not None

    def read(self) -> ReadResult:
        """Read what was appended since the last call (bounded); never raises OSError."""
        try:
            return self._read()
        except OSError as exc:
            return ReadResult(error=f"{self.path}: {exc.strerror or exc}")

    def _read(self) -> ReadResult:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            # Between Supervisor's rename and reopen, or a slot that never ran. A file we saw
            # missing is new when it appears: read it from its start then.
            if self._identity is None:
                self._from_start = True
            return ReadResult(exists=False, partial=self._partial_text())
        identity = (stat.st_dev, stat.st_ino)
        result = ReadResult()
        if self._identity is None:
            self._identity = identity
            if not self._from_start or stat.st_size > self.max_bytes:
                self.offset = stat.st_size
                context = self._tail_before(self.path, stat.st_size)
                # An unfinished last line is the start of a line still being written (a
                # 9.21-9.40 job in flight): keep it so the rest of it joins it.
                cut = context.rfind(b"\n")
                self._partial = context[cut + 1 :] if cut >= 0 else b""
                result.context = context.decode("utf-8", errors="replace")
                result.partial = self._partial_text()
                return result
        chunks: list[bytes] = []
        budget = self.max_bytes
        if identity != self._identity:
            result.rotated = True
            budget -= self._drain_rotated(chunks, result, budget)
            self._identity = identity
            self.offset = 0
        elif stat.st_size < self.offset:
            result.truncated = True
            result.skipped_bytes += len(self._partial)
            self._partial = b""
            self.offset = 0
        with open_log(self.path) as handle:
            handle.seek(self.offset)
            data = handle.read(max(0, budget))
        chunks.append(data)
        self.offset += len(data)
        result.bytes_read += len(data)
        size = max(stat.st_size, self.offset)
        result.behind_bytes = size - self.offset
        if result.behind_bytes > self.max_behind_bytes:
            result.skipped_bytes += result.behind_bytes + len(self._partial)
            self.offset = size
            self._partial = b""
            chunks = []
            result.behind_bytes = 0
        self._split(b"".join(chunks), result)
        return result

    def _drain_rotated(self, chunks: list[bytes], result: ReadResult, budget: int) -> int:
        """Read the rest of the file we were reading from its rotated name; bytes read."""
        old = self._find_rotated()
        if old is None:
            result.skipped_bytes += len(self._partial)  # renamed out of reach (logrotate?)
            self._partial = b""
            return 0
        with open_log(old) as handle:
            handle.seek(0, os.SEEK_END)
            end = handle.tell()
            handle.seek(min(self.offset, end))
            data = handle.read(max(0, budget))
            rest = end - handle.tell()
        if rest > 0:
            result.skipped_bytes += rest
        chunks.append(data)
        result.bytes_read += len(data)
        return len(data)

    def _find_rotated(self) -> str | None:
        for number in range(1, ROTATED_NAMES + 1):
            candidate = f"{self.path}.{number}"
            try:
                stat = os.stat(candidate)
            except OSError:
                continue
            if (stat.st_dev, stat.st_ino) == self._identity:
                return candidate
        return None

    def _split(self, data: bytes, result: ReadResult) -> None:
        buffered = self._partial + data
        cut = buffered.rfind(b"\n")
        if cut < 0:
            complete, self._partial = b"", buffered
        else:
            complete, self._partial = buffered[: cut + 1], buffered[cut + 1 :]
        if len(self._partial) > MAX_LINE_BYTES:
            result.skipped_bytes += len(self._partial)
            self._partial = b""
        if complete:
            text = complete.decode("utf-8", errors="replace")
            result.lines = text.split("\n")[:-1]
        result.partial = self._partial_text()

    def _partial_text(self) -> str:
        return self._partial.decode("utf-8", errors="replace")

    @staticmethod
    def _tail_before(path: str, end: int) -> bytes:
        start = max(0, end - CONTEXT_BYTES)
        with open_log(path) as handle:
            handle.seek(start)
            return handle.read(end - start)


def open_log(path: str) -> BinaryIO:
    """Open a log for reading without ever blocking: a FIFO (or a device) put at a slot's log
    path would block a plain open() until a writer came, and with it every tick. Opened
    non-blocking, anything but a regular file is refused with a reason (OSError)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat_module.S_ISREG(mode):
            kind = "a FIFO" if stat_module.S_ISFIFO(mode) else "not a regular file"
            raise OSError(errno.EINVAL, f"{kind}: skipped (a worker log must be a file)")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def slot_in_flight(path: str, *, tail_bytes: int = CONTEXT_BYTES) -> bool | None:
    """Whether the worker writing `path` has a job in hand (worklog.job_in_flight on the
    file's last `tail_bytes`); None when the file cannot be read or shows no job line."""
    try:
        with open_log(path) as handle:
            handle.seek(0, os.SEEK_END)
            end = handle.tell()
            handle.seek(max(0, end - tail_bytes))
            data = handle.read()
    except OSError:
        return None
    return worklog.job_in_flight(data.decode("utf-8", errors="replace"))


def busy_slots(processes: Iterable[ProcessInfo], *, tail_bytes: int = CONTEXT_BYTES) -> set[str]:
    """Names of the processes whose stdout log shows a job in hand (for the actuator's
    `busy_slots`: stop idle workers first). Unreadable logs count as not busy."""
    return {
        process.name
        for process in processes
        if process.stdout_logfile and slot_in_flight(process.stdout_logfile, tail_bytes=tail_bytes)
    }


@dataclass(slots=True, kw_only=True)
class QueueWork:
    completions: int = 0
    failures: int = 0
    run_times_s: list[float] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class SlotWork:
    """What one slot's log said during one tick."""

    completions: int = 0
    failures: int = 0
    run_times_s: list[float] = field(default_factory=list)
    # Per Laravel queue where the lines tell it (json, 12.20+ -v, single-queue pools).
    by_queue: dict[str, QueueWork] = field(default_factory=dict)
    unlabeled: QueueWork = field(default_factory=QueueWork)
    in_flight: bool | None = None  # a job in hand at the end of the read; None: unknown
    readable: bool = True  # False: the file could not be read or bytes were skipped
    exists: bool = True
    problem: str | None = None


class SlotLog:
    """One worker slot's log: the tail reader plus the slot's state between ticks."""

    def __init__(self, tail: LogTail, *, queues: tuple[str, ...]) -> None:
        self.tail = tail
        self.queues = queues
        self.in_flight: bool | None = None
        self._started_stamp: str | None = None  # legacy lines carry no run time

    def read(self) -> SlotWork:
        result = self.tail.read()
        work = SlotWork(exists=result.exists)
        if result.error is not None:
            work.readable = False
            work.problem = result.error
            work.in_flight = self.in_flight
            return work
        if not result.complete:
            work.readable = False
            work.problem = f"{self.tail.path}: {result.skipped_bytes} bytes skipped"
        if result.context is not None:
            self._learn_state(result.context)
        for line in result.lines:
            event = worklog.parse_line(line)
            if event is not None:
                self._apply(event, work)
        if result.partial and worklog.parse_partial(result.partial) is not None:
            self.in_flight = True  # 9.21-9.40: the job's line stays open while it runs
        work.in_flight = self.in_flight
        return work

    def feed(self, lines: Iterable[str]) -> SlotWork:
        """Count complete lines that were not read through the tail (a log's history)."""
        work = SlotWork(exists=True)
        for line in lines:
            event = worklog.parse_line(line)
            if event is not None:
                self._apply(event, work)
        return work

    def _learn_state(self, context: str) -> None:
        self.in_flight = worklog.job_in_flight(context)
        if self.in_flight:
            for line in reversed(context.split("\n")):
                event = worklog.parse_line(line)
                if event is not None:
                    self._started_stamp = event.stamp if event.generation == "legacy" else None
                    break

    def _apply(self, event: worklog.JobEvent, work: SlotWork) -> None:
        if event.kind == "reset":
            self.in_flight = False
            self._started_stamp = None
            return
        if event.kind == "start":
            if event.generation == "legacy" and self.in_flight:
                # Up to 9.20 an attempt released after an exception prints nothing: a new
                # start means the previous attempt ended, with an exception.
                self._count(work, event, ok=False, run_s=None)
            self.in_flight = True
            self._started_stamp = event.stamp if event.generation == "legacy" else None
            return
        run_s = event.run_s
        if run_s is None and event.generation == "legacy" and self._started_stamp and event.stamp:
            # Second-resolution stamps: each difference is off by up to a second, but with
            # jobs starting at random points of a second the mean of the differences is exact.
            run_s = max(
                0.0,
                worklog.stamp_seconds(event.stamp) - worklog.stamp_seconds(self._started_stamp),
            )
        self._count(work, event, ok=event.ok, run_s=run_s)
        self.in_flight = False
        self._started_stamp = None

    def _count(
        self, work: SlotWork, event: worklog.JobEvent, *, ok: bool, run_s: float | None
    ) -> None:
        queue = worklog.queue_of(event, self.queues)
        bucket = work.unlabeled if queue is None else work.by_queue.setdefault(queue, QueueWork())
        work.completions += 1
        bucket.completions += 1
        if not ok:
            work.failures += 1
            bucket.failures += 1
        if run_s is not None:
            work.run_times_s.append(run_s)
            bucket.run_times_s.append(run_s)


HISTORY_BYTES = 4 << 20  # of each file's end, for logged_run_times


def logged_run_times(
    path: str, *, queues: tuple[str, ...], tail_bytes: int = HISTORY_BYTES
) -> list[float]:
    """The run times a worker log states (or its legacy stamps give) in its last `tail_bytes`:
    what `init` learns from the hand-written programs' existing logs. [] when unreadable."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - tail_bytes))
            data = handle.read()
    except OSError:
        return []
    lines = data.decode("utf-8", errors="replace").split("\n")
    if size > tail_bytes:
        lines = lines[1:]  # cut by the window
    work = SlotLog(LogTail(path), queues=queues).feed(lines[:-1])  # the last may be unfinished
    return list(work.run_times_s)
