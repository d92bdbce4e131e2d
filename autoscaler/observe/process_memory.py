"""Each worker slot's resident memory and CPU, read with psutil from the PIDs supervisord reports.

A slot's RSS is its worker's plus that of the worker's descendants (a job may spawn `convert` or
a shell wrapper may run `php`): what the slot holds of the host's memory. RSS counts shared
pages (PHP's binary, opcache's shared memory) once per process, so a pool's sum over-counts a
little; that errs on the safe side for the budget.

Cost, measured by tests/benchmarks/bench_process_memory.py: psutil reads two small /proc files
per process (statm for memory, stat for CPU), about 30 us; finding descendants needs the parent
of every process on the host (one /proc/<pid>/stat each), so that map is rebuilt only every
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
CHILDREN_EVERY_TICKS = 6  # at a 5 s interval: a new child is counted within 30 s


@dataclass(frozen=True, slots=True, kw_only=True)
class SlotUsage:
    """One slot's process as measured at one tick."""

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

    def measure(
        self,
        processes: Iterable[ProcessInfo],
        owners: Mapping[str, str],
        in_flight: Callable[[str], bool | None] = lambda slot: None,
    ) -> list[SlotUsage]:
        """Every slot of a pool's program (`owners`: program -> pool) whose process is live."""
        live: list[tuple[ProcessInfo, str]] = []
        for process in processes:
            parsed = parse_slot(process.name)
            if parsed is None or process.group != process.name or process.pid <= 0:
                continue
            pool = owners.get(parsed.program)
            if pool is not None and process.statename in MEASURED_STATES:
                live.append((process, pool))
        pids = {process.pid for process, _pool in live}
        self._ticks_since_map += 1
        if self._ticks_since_map >= self._children_every or not pids <= set(self._children):
            self._children = _descendants(pids)
            self._ticks_since_map = 0
        now = self._clock()
        usages = [self._one(process, pool, now, in_flight) for process, pool in live]
        keep = set(pids)
        for children in self._children.values():
            keep.update(children)
        for pid in set(self._handles) - keep:
            del self._handles[pid]
        seen = {u.slot for u in usages}
        for slot in set(self._cpu) - seen:
            del self._cpu[slot]
        return usages

    def _one(
        self,
        process: ProcessInfo,
        pool: str,
        now_s: float,
        in_flight: Callable[[str], bool | None],
    ) -> SlotUsage:
        rss = self._rss_cpu(process.pid)
        counted = 0
        cpu_s: float | None = None
        if rss is not None:
            cpu_s = rss[1]
            total_mb = rss[0]
            for child in self._children.get(process.pid, ()):
                more = self._rss_cpu(child)
                if more is not None:
                    total_mb += more[0]
                    cpu_s += more[1]
                    counted += 1
            rss_mb: float | None = total_mb
        else:
            rss_mb = None
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
        """(RSS in MB, user + system CPU seconds) of one process; None once it is gone."""
        handle = self._handles.get(pid)
        try:
            if handle is None:
                handle = self._handles[pid] = psutil.Process(pid)
            rss = handle.memory_info().rss
            times = handle.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            self._handles.pop(pid, None)
            return None
        return rss / MB, times.user + times.system


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
