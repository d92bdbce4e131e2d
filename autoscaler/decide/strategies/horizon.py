"""Strategy `horizon`: Laravel Horizon's auto balancing (laravel/horizon src/AutoScaler.php).

Horizon balances the process pools of one supervisor (here: the pools whose
`strategy.horizon.supervisor` is the same) against each other, every `balanceCooldown`:

1. Per pool: size = ready jobs (LLEN of its queues), time = Σ size × average run time (ms,
   Horizon's metrics; the average resets at every `horizon:snapshot`, so it reads 0 until a
   job of that queue finished since the last snapshot).
2. Target (numberOfWorkersPerQueue), by the knob `balance`: `false` first (one pool per
   supervisor: min(maxProcesses, max(minProcesses, size))), `simple` an even split
   maxProcesses / pools; `auto`: with Σtime > 0, time/Σtime × maxProcesses (strategy
   `time`) or size/Σsize × maxProcesses (`size`); with Σtime = 0, maxProcesses when the pool
   has jobs, else minProcesses.
3. Pools are scaled in ascending order of target (a stable sort). For each (scalePool), with
   total = the pool's processes including those still terminating and desired = ⌈target⌉:
   - up:   upShift = min(max(0, maxProcesses − supervisorTotal), balanceMaxShift);
           new = min(total + upShift, max(minProcesses, maxProcesses − Σ other pools' min),
                     desired)
   - down: downShift = min(supervisorTotal − minProcesses, balanceMaxShift);
           new = max(total − downShift, minProcesses, desired)
   and the pool's active process count becomes `new`.

Horizon has one minProcesses per supervisor; here each pool's min_processes is its own (the
rule above uses the pool's min, and the sum of the other pools' mins where Horizon has
(pools − 1) × min). Workers still draining from an earlier decision count in `total` and in
the supervisor total, as Horizon's terminating processes do; a pool scaled down earlier in
the same pass leaves the total at once (as Horizon's own tests model it). A pool whose data
is missing this tick is held by decide and sits out the pass (its workers do not count).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from autoscaler.decide.strategies.base import PoolTick


class HorizonPool(NamedTuple):
    """One pool as Horizon's AutoScaler sees it."""

    active: int  # processes (not terminating)
    draining: int  # terminating processes, still counted in totals
    size: int  # ready jobs (LLEN)
    runtime_ms: float  # average run time since the last metrics snapshot (0 if none)
    min_processes: int


def horizon_targets(
    *,
    sizes: Sequence[int],
    times: Sequence[float],
    min_processes: Sequence[int],
    max_processes: int,
    by_size: bool,
    balance: str = "auto",
) -> list[float]:
    """numberOfWorkersPerQueue: each pool's target count, in Horizon's order of cases.

    `balance = false` is checked first (laravel/horizon PR #1552, "Set AutoScaler logic to
    target process scaling based on queue size when balance is false"; before it the
    non-balancing case sat inside the Σtime = 0 branch, so any run time sent it to the
    time share, i.e. to maxProcesses): min(max, max(min, size)). `simple` (balancing but
    not auto-scaling) is an even split of maxProcesses; `auto` shares it by time or size,
    or gives max to a pool with jobs (min to one without) while no run time is known."""
    if balance == "false":
        return [
            float(min(max_processes, max(low, size)))
            for size, low in zip(sizes, min_processes, strict=True)
        ]
    if balance == "simple":
        return [max_processes / len(sizes)] * len(sizes)
    total_time = sum(times)
    total_size = sum(sizes)
    if total_time > 0:
        if by_size:
            return [size / total_size * max_processes for size in sizes]
        return [time / total_time * max_processes for time in times]
    return [
        float(max_processes if size else low)
        for size, low in zip(sizes, min_processes, strict=True)
    ]


def horizon_scale_pool(
    *,
    active: int,
    total: int,
    target: float,
    supervisor_total: int,
    max_processes: int,
    min_processes: int,
    others_min: int,
    max_shift: int,
) -> int:
    """scalePool: the pool's new active process count."""
    desired = math.ceil(target)
    if desired > total:
        up_shift = min(max(0, max_processes - supervisor_total), max_shift)
        return min(total + up_shift, max(min_processes, max_processes - others_min), desired)
    if desired < total:
        down_shift = min(supervisor_total - min_processes, max_shift)
        return max(total - down_shift, min_processes, desired)
    return active


def horizon_balance(
    pools: Sequence[HorizonPool],
    *,
    max_processes: int,
    max_shift: int,
    by_size: bool,
    balance: str = "auto",
) -> list[int]:
    """AutoScaler::scale for one supervisor: the new active count of every pool, in order."""
    targets = horizon_targets(
        sizes=[p.size for p in pools],
        times=[p.size * p.runtime_ms for p in pools],
        min_processes=[p.min_processes for p in pools],
        max_processes=max_processes,
        by_size=by_size,
        balance=balance,
    )
    counts = [p.active for p in pools]
    supervisor_total = sum(p.active + p.draining for p in pools)
    all_min = sum(p.min_processes for p in pools)
    for index in sorted(range(len(pools)), key=lambda i: targets[i]):  # stable, as PHP 8
        pool = pools[index]
        new = horizon_scale_pool(
            active=pool.active,
            total=pool.active + pool.draining,
            target=targets[index],
            supervisor_total=supervisor_total,
            max_processes=max_processes,
            min_processes=pool.min_processes,
            others_min=all_min - pool.min_processes,
            max_shift=max_shift,
        )
        supervisor_total += new - pool.active
        counts[index] = new
    return counts


class HorizonMemory(NamedTuple):
    """Horizon's per-queue metrics: the run-time average since the last snapshot."""

    snapshot: int  # index of the snapshot period the average belongs to
    runtime_ms: float
    throughput: int


def update_runtime(
    memory: HorizonMemory | None,
    *,
    now_s: float,
    snapshot_s: float,
    completions: int,
    run_time_mean_s: float | None,
) -> HorizonMemory:
    """Horizon's metrics: a running mean of run times, reset by every `horizon:snapshot`."""
    period = math.floor(now_s / snapshot_s)
    if memory is None or memory.snapshot != period:
        memory = HorizonMemory(snapshot=period, runtime_ms=0.0, throughput=0)
    if completions <= 0 or run_time_mean_s is None:
        return memory
    count = memory.throughput + completions
    runtime = (memory.runtime_ms * memory.throughput + run_time_mean_s * 1000.0 * completions) / (
        count
    )
    return HorizonMemory(snapshot=period, runtime_ms=runtime, throughput=count)


def run(
    ticks: list[PoolTick], now_s: float, interval_s: float, shared: Mapping[str, Any]
) -> dict[str, Any]:
    groups: dict[str, list[PoolTick]] = {}
    for tick in ticks:
        knobs = tick.policy.strategy.horizon
        # balance = false: Horizon runs one process pool per supervisor, so each pool here
        # (a program of its own, with its own queues) is a supervisor of its own
        group = f"{tick.pool} (balance false)" if knobs.balance == "false" else knobs.supervisor
        groups.setdefault(group, []).append(tick)
    kept: dict[str, Any] = {}
    for supervisor, members in groups.items():
        knobs = members[0].policy.strategy.horizon
        for tick in members:
            work = tick.work
            tick.memory = update_runtime(
                tick.memory if isinstance(tick.memory, HorizonMemory) else None,
                now_s=now_s,
                snapshot_s=knobs.metrics_snapshot_s,
                completions=work.completions if work is not None else 0,
                run_time_mean_s=work.run_time_mean_s if work is not None else None,
            )
        key = f"horizon:{supervisor}"
        last = shared.get(key)
        if knobs.balance == "false":
            max_processes = members[0].const.max_processes
        else:
            max_processes = knobs.max_processes or sum(t.const.max_processes for t in members)
        if isinstance(last, float | int) and now_s - last < knobs.balance_cooldown_s:
            kept[key] = last
            for tick in members:
                tick.wanted = tick.current
                tick.reason = f"horizon: cooling down; hold {tick.current}"
            continue
        kept[key] = now_s
        pools = [
            HorizonPool(
                active=t.current,
                draining=t.draining,
                size=t.pending,
                runtime_ms=t.memory.runtime_ms,
                min_processes=t.const.min_processes,
            )
            for t in members
        ]
        counts = horizon_balance(
            pools,
            max_processes=max_processes,
            max_shift=knobs.balance_max_shift,
            by_size=knobs.auto_scaling_strategy == "size",
            balance=knobs.balance,
        )
        for tick, pool, count in zip(members, pools, counts, strict=True):
            tick.wanted = count
            tick.reason = (
                f"horizon {supervisor} (balance {knobs.balance}): size {pool.size}, "
                f"runtime {pool.runtime_ms:.0f}ms, of {max_processes}; {tick.current} -> {count}"
            )
    return kept
