"""Each worker slot's resident memory and CPU, read with psutil from the PIDs supervisord reports.

A slot's RSS is its worker's plus that of the worker's descendants (a job may spawn `convert` or
a shell wrapper may run `php`): what the slot holds of the host's memory. RSS counts shared
pages (PHP's binary, opcache's shared memory) once per process, so a pool's sum over-counts a
little; that errs on the safe side for the budget.

Cost, measured by tests/benchmarks/bench_process_memory.py: psutil reads two small /proc files
per worker (statm for memory, stat for CPU), about 30 us, and one per child (its memory; a
child's CPU counts in the worker's once it exits). Finding descendants needs the parent of
every process on the host (one /proc/<pid>/stat each), so that map is rebuilt only every
`children_every_ticks` ticks and whenever a new worker PID appears. A child spawned between two
rebuilds is counted from the next one; a known child is read every tick.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import psutil

from autoscaler.supervisord.rpc import ProcessInfo
from autoscaler.supervisord.slots import parse_slot

MB = 1024.0 * 1024.0
# Slots whose process holds memory: serving, or finishing its job after SIGTERM.
MEASURED_STATES = frozenset({"STARTING", "RUNNING", "BACKOFF", "STOPPING"})
# At a 5 s interval a new child is counted within a minute. A Laravel worker has none (unless
# a wrapper script runs php, whose child then lives as long as the slot); rebuilding the map
# costs about as much as a tick's reads (tests/benchmarks/bench_process_memory.py).
CHILDREN_EVERY_TICKS = 12


@dataclass(slots=True, kw_only=True)
class SlotUsage:
    """One slot's process as measured at one tick (not frozen: 100+ are made per tick, and
    a frozen dataclass costs twice as much to create; treat it as immutable)."""

    slot: str
    pool: str
    pid: int
    state: str
    rss_mb: float | None  # worker + descendants; None: the process could not be read
    cpu_percent: float | None  # of one core since the previous tick; None on the first
    age_s: float | None  # since supervisord started it (its own clock)
    children: int  # descendants counted in rss_mb
    in_flight: bool | None  # a job in hand at this tick (the worker's log); None: unknown


class ProcessMeter:
    """Measures the slots' processes every tick; keeps psutil handles between ticks (a PID
    reused by another process is told apart by its start time, as psutil does)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        children_every_ticks: int = CHILDREN_EVERY_TICKS,
    ) -> None:
        self._clock = clock
        self._children_every = max(1, children_every_ticks)
        self._handles: dict[int, psutil.Process] = {}
        self._cpu: dict[str, tuple[int, float, float]] = {}  # slot -> (pid, at_s, cpu_s)
        self._children: dict[int, list[int]] = {}  # worker pid -> descendant pids
        self._ticks_since_map = self._children_every  # rebuild on the first tick
        self._owners: dict[str, str] = {}
        self._pool_of: dict[str, str | None] = {}  # slot name -> pool (None: not ours)

    def measure(
        self,
        processes: Iterable[ProcessInfo],
        owners: Mapping[str, str],
        in_flight: Callable[[str], bool | None] = lambda slot: None,
    ) -> list[SlotUsage]:
        """Every slot of a pool's program (`owners`: program -> pool) whose process is live."""
        live: list[tuple[ProcessInfo, str]] = []
        pool_of = self._pool_of
        if owners != self._owners:  # other policies: slot names map anew
            pool_of.clear()
            self._owners = dict(owners)
        for process in processes:
            if process.pid <= 0 or process.group != process.name:
                continue
            if process.name in pool_of:
                pool = pool_of[process.name]
            else:
                parsed = parse_slot(process.name)
                pool = pool_of[process.name] = (
                    owners.get(parsed.program) if parsed is not None else None
                )
            if pool is not None and process.statename in MEASURED_STATES:
                live.append((process, pool))
        pids = {process.pid for process, _pool in live}
        self._ticks_since_map += 1
        rebuild = self._ticks_since_map >= self._children_every
        if rebuild or not pids <= self._children.keys():
            self._children = _descendants(pids)
            self._ticks_since_map = 0
            self._forget(pids, live)
        now = self._clock()
        return [self._one(process, pool, now, in_flight) for process, pool in live]

    def _forget(self, pids: set[int], live: list[tuple[ProcessInfo, str]]) -> None:
        """Drop the handles and CPU readings of processes gone (with each map rebuild)."""
        keep = set(pids)
        for children in self._children.values():
            keep.update(children)
        for pid in set(self._handles) - keep:
            del self._handles[pid]
        seen = {process.name for process, _pool in live}
        for slot in set(self._cpu) - seen:
            del self._cpu[slot]

    def _one(
        self,
        process: ProcessInfo,
        pool: str,
        now_s: float,
        in_flight: Callable[[str], bool | None],
    ) -> SlotUsage:
        own = self._rss_cpu(process.pid)
        counted = 0
        cpu_s: float | None = None
        rss_mb: float | None = None
        if own is not None:
            rss_mb, cpu_s = own
            for child in self._children.get(process.pid, ()):
                more = self._rss(child)
                if more is not None:
                    rss_mb += more
                    counted += 1
        percent: float | None = None
        previous = self._cpu.get(process.name)
        if cpu_s is not None:
            if previous is not None and previous[0] == process.pid and now_s > previous[1]:
                percent = max(0.0, (cpu_s - previous[2]) / (now_s - previous[1]) * 100.0)
            self._cpu[process.name] = (process.pid, now_s, cpu_s)
        age = process.now_s - process.start_s if process.start_s > 0 else None
        return SlotUsage(
            slot=process.name,
            pool=pool,
            pid=process.pid,
            state=process.statename,
            rss_mb=rss_mb,
            cpu_percent=percent,
            age_s=float(age) if age is not None and age >= 0 else None,
            children=counted,
            in_flight=in_flight(process.name),
        )

    def _rss_cpu(self, pid: int) -> tuple[float, float] | None:
        """(RSS in MB, CPU seconds) of a worker: user + system, its own and that of the
        children it has waited for; None once it is gone."""
        handle = self._handle(pid)
        try:
            if handle is None:
                return None
            rss = handle.memory_info().rss
            times = handle.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            self._handles.pop(pid, None)
            return None
        cpu_s = times.user + times.system + times.children_user + times.children_system
        return rss / MB, cpu_s

    def _rss(self, pid: int) -> float | None:
        """A live child's RSS in MB (its CPU counts once it exits and is waited for: reading
        it every tick would cost as much again)."""
        handle = self._handle(pid)
        try:
            return None if handle is None else handle.memory_info().rss / MB
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            self._handles.pop(pid, None)
            return None

    def _handle(self, pid: int) -> psutil.Process | None:
        handle = self._handles.get(pid)
        if handle is None:
            try:
                handle = self._handles[pid] = psutil.Process(pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                return None
        return handle


def _descendants(roots: set[int]) -> dict[int, list[int]]:
    """Each root's descendants, from one parent map of every process on the host."""
    if not roots:
        return {}
    try:
        parents = _ppid_map()
    except (psutil.Error, OSError):
        return {pid: [] for pid in roots}
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found: dict[int, list[int]] = {}
    for root in roots:
        below: list[int] = []
        todo = list(children.get(root, ()))
        while todo:
            pid = todo.pop()
            below.append(pid)
            todo.extend(children.get(pid, ()))
        found[root] = below
    return found


def _ppid_map() -> dict[int, int]:
    """pid -> parent pid of every process (psutil's own map where it has one: one read of
    /proc/<pid>/stat each on Linux)."""
    platform = getattr(psutil, "_psplatform", None)
    fast: Callable[[], dict[int, int]] | None = getattr(platform, "ppid_map", None)
    if fast is not None:
        return fast()
    return {p.pid: p.info["ppid"] for p in psutil.process_iter(["ppid"])}


class MemoryHistory:
    """The largest worker RSS of each pool at each tick over a window: the pool's recent
    high-water per worker, which the `measured` memory size uses."""

    def __init__(self) -> None:
        self._peaks: dict[str, deque[tuple[float, float]]] = {}

    def add(self, pool: str, at_s: float, max_mb: float | None, window_s: float) -> None:
        peaks = self._peaks.setdefault(pool, deque())
        if max_mb is not None:
            peaks.append((at_s, max_mb))
        while peaks and peaks[0][0] < at_s - window_s:
            peaks.popleft()

    def high_water(self, pool: str) -> tuple[float | None, int]:
        """(highest worker RSS in the window, ticks it covers)."""
        peaks = self._peaks.get(pool)
        if not peaks:
            return None, 0
        return max(mb for _at, mb in peaks), len(peaks)

    def forget_except(self, pools: Iterable[str]) -> None:
        keep = set(pools)
        for pool in set(self._peaks) - keep:
            del self._peaks[pool]
