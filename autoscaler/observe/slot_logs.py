"""Each pool's slot logs read every tick: which files to follow, this tick's work from each,
and whether the logs can give the pool's counts (else its work comes from Redis alone).

Log offsets live here between ticks, as does which slot had a job in hand at the last read.
"""

from __future__ import annotations

import socket
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from autoscaler.observe.logtail import DEFAULT_MAX_BYTES, LogTail, SlotLog, SlotWork
from autoscaler.policy.model import Policy
from autoscaler.supervisord.rpc import ProcessInfo
from autoscaler.supervisord.slots import parse_slot, slot_logfile, slot_name

# Slots that hold (or are about to hold) jobs: their logs must be readable for log counts.
LIVE_STATES = frozenset({"RUNNING", "STARTING", "STOPPING"})


@dataclass(slots=True)
class PoolLogs:
    works: dict[str, SlotWork] = field(default_factory=dict)  # path -> this tick's work
    live: set[str] = field(default_factory=set)  # paths of slots Supervisor says are live
    supervisor_known: bool = False  # False: which slots are live is unknown
    problem: str | None = None  # why the logs cannot give this tick's counts

    @property
    def usable(self) -> bool:
        return self.problem is None


class SlotLogReader:
    """Follows every pool's slot logs from tick to tick."""

    def __init__(
        self, *, policies: Mapping[str, Policy], log_max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        self._log_max_bytes = log_max_bytes
        self._logs: dict[str, dict[str, SlotLog]] = {pool: {} for pool in policies}
        self._slot_paths = {pool: policy_log_paths(p) for pool, p in policies.items()}
        # Per slot, whether its log showed a job in hand at the last read (None: unknown).
        self.in_flight: dict[str, bool | None] = {}

    def follow(self, policies: Mapping[str, Policy]) -> None:
        """Follow reloaded policies; log offsets of kept pools stay."""
        self._logs = {pool: self._logs.get(pool, {}) for pool in policies}
        self._slot_paths = {pool: policy_log_paths(p) for pool, p in policies.items()}

    def read(
        self,
        pool: str,
        policy: Policy,
        processes: list[ProcessInfo] | None,
        unmanaged: Collection[ProcessInfo] = (),
    ) -> PoolLogs:
        """Read every log file of the pool's slots: those Supervisor reports, and the paths
        the policy gives slots 0..max-1 (tracked even while stopped, so a slot that starts
        later is read from where its file stood, not from its old content). `unmanaged`:
        other programs' live workers on the pool's queues."""
        paths = dict(self._slot_paths[pool])  # path -> slot name
        logs = PoolLogs(supervisor_known=processes is not None)
        live_without_log: list[str] = []
        # Other programs' workers on this pool's queues (a migration's hand-written ones):
        # their logs count too, or `record` and the run time would see only ours.
        others = {id(p) for p in unmanaged} if processes is not None else set()
        for process in processes or []:
            slot = parse_slot(process.name)
            is_unmanaged = id(process) in others
            if not is_unmanaged and (
                slot is None or slot.program != policy.program or process.group != process.name
            ):
                continue
            path = process.stdout_logfile if _is_log_path(process.stdout_logfile) else None
            if path is not None:
                # `group:name`: an old group's process may be named like one of our slots.
                paths[path] = f"{process.group}:{process.name}" if is_unmanaged else process.name
            if process.statename in LIVE_STATES:
                if path is None:
                    live_without_log.append(process.name)
                else:
                    logs.live.add(path)
        tails = self._logs[pool]
        for stale in set(tails) - set(paths):
            del tails[stale]
        for path, name in paths.items():
            slot_log = tails.get(path)
            if slot_log is None:
                # Read from its end: a path never seen before may hold history. (A tail that
                # finds its file missing reads it from the start once it appears.)
                tail = LogTail(path, max_bytes=self._log_max_bytes)
                slot_log = tails[path] = SlotLog(tail, queues=policy.queues)
            logs.works[path] = work = slot_log.read()
            self.in_flight[name] = work.in_flight
        logs.problem = _logs_problem(logs, live_without_log)
        return logs


def policy_log_paths(policy: Policy) -> dict[str, str]:
    """The log path the policy gives each of its slots 0..max-1 (path -> slot name), where
    one can be known without Supervisor. The same for every tick: computed per policy."""
    paths: dict[str, str] = {}
    for index in range(policy.max_processes):
        name = slot_name(policy.program, index)
        path = expand_logfile(slot_logfile(policy, index), name)
        if path is not None:
            paths[path] = name
    return paths


def expand_logfile(path: str | None, slot: str) -> str | None:
    """A policy's per-slot log path with Supervisor's expansions done for one slot."""
    if path is None or "%" not in path:
        return path
    values = {
        "program_name": slot,
        "group_name": slot,
        "process_num": 0,
        "numprocs": 1,
        "host_node_name": socket.gethostname(),
    }
    try:
        return path % values
    except (KeyError, ValueError, TypeError):
        return None  # %(here)s and the like: only Supervisor knows; it reports the path


def _is_log_path(path: str) -> bool:
    return bool(path) and path not in ("NONE", "AUTO") and not path.startswith("/dev/")


def _logs_problem(logs: PoolLogs, live_without_log: list[str]) -> str | None:
    if live_without_log:
        return f"no stdout log for {', '.join(sorted(live_without_log))}"
    if logs.supervisor_known:
        for path in sorted(logs.live):
            work = logs.works[path]
            if not work.readable:
                return work.problem or f"{path}: unreadable"
            if not work.exists:
                return f"{path}: missing"
        return None
    broken = [w for w in logs.works.values() if not w.readable]
    if broken:
        return broken[0].problem or "unreadable log"
    if not any(w.exists for w in logs.works.values()):
        return "no worker log found and supervisord unreachable"
    return None
