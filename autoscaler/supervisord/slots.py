"""Worker slots: one Supervisor program per worker, named `<program>_NN`.

The renderer, the actuator and the observer all agree on these names through this module:
a slot's name says its pool (by program) and its index; its log file is derived from the
policy's `stdout_logfile` so each slot writes a file of its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

from autoscaler.policy.model import Policy, default_queue_list
from autoscaler.supervisord.rpc import ProcessInfo

_SLOT = re.compile(r"^(?P<program>.+)_(?P<index>\d{2,})$")

RUNNING_STATES = frozenset({"RUNNING"})
STARTING_STATES = frozenset({"STARTING"})
# Slots whose process died before `startsecs` (BACKOFF) or gave up (FATAL): no process, so no
# memory, and new slots of that pool would crash the same way.
CRASHING_STATES = frozenset({"BACKOFF", "FATAL"})
DRAINING_STATES = frozenset({"STOPPING"})
FAILED_STATES = frozenset({"FATAL", "EXITED", "UNKNOWN"})
LIVE_STATES = RUNNING_STATES | frozenset({"STARTING"})  # an unmanaged worker serving


@dataclass(slots=True, kw_only=True)
class WorkerCounts:
    """A pool's worker slots as Supervisor reports them."""

    running: int  # RUNNING
    starting: int  # STARTING: added, not serving yet
    draining: int  # STOPPING: finishing their job after SIGTERM, still holding memory
    failed: int = 0  # FATAL, or EXITED where Supervisor will not start it again
    crashing: int = 0  # BACKOFF or FATAL: crashed at start (FATAL counts in `failed` too)
    # RUNNING or STARTING processes of other Supervisor programs (not autoscaler's slots)
    # whose command consumes the pool's queues: the hand-written workers during a migration.
    unmanaged: int = 0

    @property
    def current(self) -> int:
        """Slots that count as the pool's size (running or on their way)."""
        return self.running + self.starting


def slot_name(program: str, index: int) -> str:
    """`laravel-mail-worker`, 3 -> `laravel-mail-worker_03` (as the seed's process_name)."""
    return f"{program}_{index:02d}"


@dataclass(frozen=True, slots=True)
class SlotId:
    program: str
    index: int


def parse_slot(name: str) -> SlotId | None:
    match = _SLOT.match(name)
    if match is None:
        return None
    return SlotId(program=match.group("program"), index=int(match.group("index")))


def slot_logfile(policy: Policy, index: int) -> str | None:
    """The slot's own stdout log: `_NN` inserted before the extension of the policy's path,
    unless the path already expands %(program_name)s. None when the policy sets no path
    (Supervisor then writes to its childlogdir under an AUTO name)."""
    path = policy.supervisor.stdout_logfile
    if path is None or "%(program_name)s" in path:
        return path
    pure = PurePosixPath(path)
    suffix = "".join(pure.suffixes[-1:])
    stem = pure.name[: len(pure.name) - len(suffix)] if suffix else pure.name
    return str(pure.with_name(f"{stem}_{index:02d}{suffix}"))


def pool_of_programs(policies: Mapping[str, Policy]) -> dict[str, str]:
    """Supervisor program name -> pool name."""
    return {policy.program: pool for pool, policy in policies.items()}


WORKER_COMMANDS = ("queue:work", "queue:listen")


def pool_of_command(command: str, policies: Mapping[str, Policy]) -> str | None:
    """The pool whose queues a `queue:work` command consumes (its first queue a policy
    consumes), None for anything else."""
    if not any(word in command for word in WORKER_COMMANDS):
        return None
    owner = {queue: pool for pool, policy in policies.items() for queue in policy.queues}
    for queue in default_queue_list(command):
        if queue in owner:
            return owner[queue]
    return None


def is_our_slot(process: ProcessInfo, programs: Mapping[str, str]) -> bool:
    """A single-process group `<program>_NN` of a policy's program (`programs`: program ->
    pool, pool_of_programs)."""
    slot = parse_slot(process.name)
    return slot is not None and process.group == process.name and slot.program in programs


def unmanaged_workers(
    processes: Iterable[ProcessInfo],
    commands: Mapping[tuple[str, str], str],
    policies: Mapping[str, Policy],
) -> dict[str, list[ProcessInfo]]:
    """Pool -> the live processes of other programs that consume its queues. `commands`:
    (group, name) -> command, from getAllConfigInfo."""
    programs = pool_of_programs(policies)
    found: dict[str, list[ProcessInfo]] = {}
    for process in processes:
        if is_our_slot(process, programs) or process.statename not in LIVE_STATES:
            continue
        command = commands.get((process.group, process.name))
        pool = pool_of_command(command, policies) if command else None
        if pool is not None:
            found.setdefault(pool, []).append(process)
    return found


def worker_counts(
    processes: Iterable[ProcessInfo], policies: Mapping[str, Policy]
) -> dict[str, WorkerCounts]:
    """Count every pool's slots by Supervisor state; pools without slots count zero."""
    owner = pool_of_programs(policies)
    counts = {pool: WorkerCounts(running=0, starting=0, draining=0, failed=0) for pool in policies}
    for process in processes:
        slot = parse_slot(process.name)
        if slot is None or process.group != process.name or slot.program not in owner:
            continue  # not ours: programs in other files are never counted or touched
        tally = counts[owner[slot.program]]
        state = process.statename
        if state in RUNNING_STATES:
            tally.running += 1
        elif state in STARTING_STATES:
            tally.starting += 1
        elif state in DRAINING_STATES:
            tally.draining += 1
        elif state == "EXITED" and policies[owner[slot.program]].supervisor.autorestart == "true":
            # e.g. `queue:work --memory` or `--max-jobs` ended it: Supervisor starts it again
            # on its next pass, no operator needed (exit codes do not matter for `true`).
            tally.starting += 1
        elif state in FAILED_STATES:
            tally.failed += 1
        if state in CRASHING_STATES:
            tally.crashing += 1
    return counts
