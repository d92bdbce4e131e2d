"""Rolling restarts (`autoscaler restart`): begin one, read its progress, cancel it.

A restart is a record in the replacement state (retire_state.Restart) naming the pool's
workers at its start by slot and PID; every apply (the daemon's ticks, `restart`'s own loop,
`scale`) then replaces them one at a time, surge-first (retire.Replacer). Beginning and
cancelling take the apply lock, so they never interleave with an apply.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection
from dataclasses import dataclass

from autoscaler.act.actuator import Actuator
from autoscaler.act.reconcile import SERVING, our_slots, pool_members
from autoscaler.act.retire_state import ReplaceState, Restart, load, pid_alive, save
from autoscaler.supervisord.include_file import section_names


class RestartRefused(Exception):
    """Another `autoscaler restart` of the pool is running; the message says which."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolProgress:
    pool: str
    total: int  # workers to replace
    replaced: int
    remaining: int  # old workers still alive (serving, or finishing their job)
    step: str | None  # the replacement in progress, for people
    failed: str | None
    done: bool


def begin(actuator: Actuator, pools: Collection[str], *, owner_pid: int | None = None) -> None:
    """Record a restart of every worker `pools` run now. supervisord down:
    SupervisorUnavailable; another live `restart` of a pool: RestartRefused."""
    owner = os.getpid() if owner_pid is None else owner_pid
    path = actuator.replacer.path
    with actuator.file.locked():
        processes = actuator.client.processes()
        slots = our_slots(actuator.policies, section_names(actuator.file.read() or ""), processes)
        state = load(path)
        for pool in pools:
            current = state.restarts.get(pool)
            if (
                current is not None
                and current.failed is None
                and current.owner_pid != owner
                and pid_alive(current.owner_pid)
            ):
                raise RestartRefused(
                    f"pool {pool} is being restarted by pid {current.owner_pid} already"
                )
        now = time.time()
        for pool in pools:
            members = [
                s for s in pool_members(slots, pool) if s.process is not None and s.state in SERVING
            ]
            state.restarts[pool] = Restart(
                pool=pool,
                old={s.name: s.process.pid for s in members if s.process is not None},
                running_at_start=sum(1 for s in members if s.state == "RUNNING"),
                owner_pid=owner,
                started_s=now,
            )
        save(path, state, unchanged_from="")


def progress(
    actuator: Actuator, pools: Collection[str], totals: dict[str, int]
) -> list[PoolProgress]:
    """Where each pool's restart stands, from the state the last apply left (any applier's).
    `totals`: workers each pool had to replace (its record may be gone once done)."""
    state = load(actuator.replacer.path)
    rows = []
    for pool in pools:
        restart = state.restarts.get(pool)
        step = state.retiring.get(pool)
        text = None
        if step is not None and step.origin == "restart":
            text = f"{step.slot} -> {step.replacement or '(new slot)'}"
        if restart is None:
            rows.append(
                PoolProgress(
                    pool=pool,
                    total=totals[pool],
                    replaced=totals[pool],
                    remaining=0,
                    step=None,
                    failed=None,
                    done=True,
                )
            )
            continue
        rows.append(
            PoolProgress(
                pool=pool,
                total=totals[pool],
                replaced=restart.replaced,
                remaining=len(restart.old),
                step=text,
                failed=restart.failed,
                done=False,
            )
        )
    return rows


def forget(actuator: Actuator, pools: Collection[str], *, cancel: bool) -> ReplaceState:
    """Drop the pools' restart records (a failed one, once reported). `cancel`: also stop
    the step in progress; the next apply finishes it (the new worker runs: the old one goes)
    or undoes it (the new one goes), so no extra slot outlives it."""
    path = actuator.replacer.path
    with actuator.file.locked():
        state = load(path)
        for pool in pools:
            state.restarts.pop(pool, None)
            step = state.retiring.get(pool)
            if cancel and step is not None and step.origin == "restart":
                step.cancel = True
        save(path, state, unchanged_from="")
    return state
