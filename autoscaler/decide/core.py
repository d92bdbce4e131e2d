"""The decision core: observation + policies + state + now + budget -> plan + new state.

Pure: no clock, no Redis, no files, no logging. The daemon and the simulator call this one
function. Per tick:

1. Each pool with complete, fresh data becomes a PoolTick for its strategy (strategies/);
   a pool whose queues or workers are unknown, or whose observation is stale, keeps the
   count it holds (never scaled down on missing data) and is marked `held`.
2. Each strategy's runner sets a wanted count and a reason per pool; decide bounds it to
   [min_processes, max_processes].
3. The memory budget (budget.py) grants what fits: mins first, then by priority and by how
   far each pool is past its SLO, counting draining workers until they exit. A worker's
   size is its policy's declared one, or the measured one the observation carries
   (`worker_mb`); the simulator's observations carry none, so it plans with declared sizes.

A pool whose slots crash at start (BACKOFF, FATAL) is not given more slots than it has
processes, for CRASH_HOLD_S after the last crash seen: its new slots would crash too, and
slots without a process must not take memory a healthy pool needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from autoscaler.decide.budget import allocate
from autoscaler.decide.plan import ControllerState, MemoryBudget, Plan, PoolDecision
from autoscaler.decide.strategies import RUNNERS, PoolTick
from autoscaler.decide.strategies.base import PolicyConstants, roster
from autoscaler.laravel.queue_sample import QueueSample
from autoscaler.observe.observation import Observation, PoolMemory, PoolObservation
from autoscaler.policy.model import Policy
from autoscaler.supervisord.slots import WorkerCounts

# An observation older than this many intervals (and at least STALE_MIN_S) is not acted on.
STALE_INTERVALS = 3.0
STALE_MIN_S = 15.0
CRASH_HOLD_S = 300.0


def decide(
    observation: Observation,
    policies: Mapping[str, Policy],
    state: ControllerState,
    *,
    now_s: float,
    budget: MemoryBudget,
) -> tuple[Plan, ControllerState]:
    ticks, by_strategy, in_use_mb, unmanaged = _gather(observation, policies, state, now_s=now_s)
    shared: dict[str, Any] = {}
    for strategy, group in by_strategy.items():
        shared.update(RUNNERS[strategy](group, now_s, observation.interval_s, state.shared))
    if unmanaged:  # other programs' workers on a pool's queues: capacity not to add again
        for tick in ticks:
            extra = unmanaged.get(tick.pool)
            if extra and not tick.fixed:
                tick.wanted -= extra
    limit_mb = budget.limit_mb(
        available_mb=observation.memory_available_mb, managed_in_use_mb=in_use_mb
    )
    # Bound every want to [min, max] and, in the same pass, see whether all wants fit the
    # budget (budget.allocate's own first step, done here to save a pass over the pools).
    want_mb = peak_mb = 0.0
    crashed_at = state.crashed_at_s
    for tick in ticks:
        const = tick.const
        wanted = tick.wanted
        if not tick.fixed:
            if wanted < const.min_processes:
                wanted = const.min_processes
            elif wanted > const.max_processes:
                wanted = const.max_processes
            if tick.crashing or crashed_at:
                crashed_at = _crash_hold(tick, wanted, crashed_at, now_s)
                wanted = tick.wanted
            tick.wanted = wanted
            oldest = tick.oldest_wait_s
            if oldest is not None:
                tick.urgency = oldest / const.slo_wait_s
        tick.granted = wanted
        tick.cap = ""
        memory_mb = tick.memory_mb
        want_mb += (wanted + tick.draining) * memory_mb
        current = tick.current
        held = current if tick.workers_known and current > wanted else wanted
        peak_mb += (held + tick.draining) * memory_mb
    if want_mb <= limit_mb + 1e-9 and peak_mb <= limit_mb + 1e-9:
        planned_mb = want_mb
    else:
        planned_mb, peak_mb = allocate(ticks, limit_mb)
    desired: dict[str, int] = {}
    memories: dict[str, Any] = {}
    old_memories = state.pools
    for tick in ticks:
        name = tick.pool
        desired[name] = tick.granted
        if not tick.fixed:
            memories[name] = tick.memory
        elif name in old_memories:
            memories[name] = old_memories[name]
    plan = Plan.lazy(
        at_s=now_s,
        counts=desired,
        build=partial(_decisions, ticks, limit_mb, unmanaged),
        memory_limit_mb=limit_mb,
        memory_planned_mb=planned_mb,
        memory_peak_mb=peak_mb,
    )
    return plan, ControllerState(
        last_desired=dict(desired), pools=memories, shared=shared, crashed_at_s=crashed_at
    )


def _crash_hold(
    tick: PoolTick, wanted: int, crashed_at: dict[str, float], now_s: float
) -> dict[str, float]:
    """Hold a pool whose slots crash at start at the processes it has; sets tick.wanted and
    returns the crash times to remember (a new dict when they change)."""
    name = tick.pool
    if tick.crashing:
        crashed_at = {**crashed_at, name: now_s}
    since = crashed_at.get(name)
    tick.wanted = wanted
    if since is None:
        return crashed_at
    if now_s - since >= CRASH_HOLD_S:
        return {pool: at for pool, at in crashed_at.items() if pool != name}
    floor = max(tick.current, tick.const.min_processes)
    if wanted > floor:
        tick.wanted = floor
        crashed = f"{tick.crashing} slot(s) crash at start" if tick.crashing else "slots crashed"
        tick.crash_note = (
            f"; {crashed} (BACKOFF/FATAL): held at {floor} running, no slot added until "
            f"{CRASH_HOLD_S:.0f}s after the last crash"
        )
    return crashed_at


def _gather(  # noqa: PLR0915 - hot path: one loop, no helper calls per pool
    observation: Observation,
    policies: Mapping[str, Policy],
    state: ControllerState,
    *,
    now_s: float,
) -> tuple[list[PoolTick], dict[str, list[PoolTick]], float, dict[str, int]]:
    """A tick per pool (fixed where data is missing), grouped by strategy, the memory the
    managed workers hold now, and the pools with unmanaged workers (other programs')."""
    age_s = now_s - observation.at_s
    stale = age_s > max(STALE_INTERVALS * observation.interval_s, STALE_MIN_S)
    observed = observation.pools
    last_desired = state.last_desired
    old_memories = state.pools
    ticks: list[PoolTick] = []
    by_strategy: dict[str, list[PoolTick]] = {}
    in_use_mb = 0.0
    unmanaged: dict[str, int] = {}
    paused = observation.paused
    for name, policy, const in roster(policies):
        obs = observed.get(name)
        workers = obs.workers if obs is not None else None
        previous = last_desired.get(name)
        memory = obs.memory if obs is not None else None
        in_use_mb += _holding_mb(const, workers, memory)
        if workers is not None:
            if workers.unmanaged:
                unmanaged[name] = workers.unmanaged
            if previous is None:
                # Never decided: what runs, or (nothing of ours runs: a first start) the
                # policy's starting point; the strategy moves from there as the data says
                # (up at once, down after its scale-down window).
                previous = workers.running + workers.starting or const.static_processes
        elif previous is None:
            previous = const.static_processes
        if paused and name in paused:
            stopped = _paused(name, policy, const, obs=obs)
            stopped.memory_mb = worker_mb(const, memory)
            ticks.append(stopped)
            continue
        queues = obs.queues if obs is not None else None
        if obs is None or queues is None or workers is None or stale:
            if not previous and name not in last_desired:
                # Never decided, nothing of ours runs (a first start): the hand-picked count.
                previous = const.static_processes
            why = _missing(obs, observation, stale=stale, age_s=age_s)
            held = _held(name, policy, const, obs=obs, previous=previous, why=why)
            held.memory_mb = worker_mb(const, memory)
            ticks.append(held)
            continue
        oldest: float | None
        if len(queues) == 1:  # most pools consume one queue
            queue = queues[0]
            pending, reserved = queue.pending, queue.reserved
            delayed_due, oldest = queue.delayed_due, queue.oldest_wait_s
        else:
            pending, reserved, delayed_due, oldest = _summed(queues)
        tick = PoolTick(
            name,
            policy,
            const,
            queues,
            pending,
            reserved,
            delayed_due,
            oldest,
            workers.running,
            workers.starting,
            workers.draining,
            obs.work,
            previous,
            old_memories.get(name),
        )
        tick.memory_mb = worker_mb(const, memory)
        tick.crashing = workers.crashing
        ticks.append(tick)
        group = by_strategy.get(const.strategy)
        if group is None:
            by_strategy[const.strategy] = [tick]
        else:
            group.append(tick)
    return ticks, by_strategy, in_use_mb, unmanaged


def _summed(queues: tuple[QueueSample, ...]) -> tuple[int, int, int, float | None]:
    """A pool of several queues: pending, reserved and due delayed summed, the oldest age."""
    pending = reserved = delayed_due = 0
    oldest: float | None = None
    for queue in queues:
        pending += queue.pending
        reserved += queue.reserved
        delayed_due += queue.delayed_due
        age = queue.oldest_wait_s
        if age is not None and (oldest is None or age > oldest):
            oldest = age
    return pending, reserved, delayed_due, oldest


def _holding_mb(
    const: PolicyConstants, workers: WorkerCounts | None, memory: PoolMemory | None
) -> float:
    """What a pool's workers hold now: measured where known, else by the declared size."""
    if memory is not None:
        return memory.live_mb
    if workers is None:
        return 0.0
    return (workers.running + workers.starting + workers.draining) * const.memory_mb


def worker_mb(const: PolicyConstants, memory: PoolMemory | None) -> float:
    """One worker's size for the budget: declared, or with `[memory] size = "measured"` the
    pool's recent high-water RSS per worker once min_samples ticks are measured, never above
    the worker's --memory plus the margin (a worker past it exits by itself)."""
    if memory is None or not const.measured_size:
        return const.memory_mb
    high = memory.high_water_mb
    if high is None or memory.samples < const.measured_min_samples:
        return const.memory_mb
    return min(high, const.measured_cap_mb)


def _decisions(
    ticks: list[PoolTick], limit_mb: float, unmanaged: dict[str, int]
) -> dict[str, PoolDecision]:
    """The plan's decisions, made when first read (the ticks are decide's own, never
    changed after it returns)."""
    decisions: dict[str, PoolDecision] = {}
    for tick in ticks:
        name = tick.pool
        count = tick.granted
        reason = tick.reason
        if not isinstance(reason, str):
            function, args = reason
            reason = function(*args)
        extra = unmanaged.get(name)
        if extra and not tick.fixed:
            reason = (
                f"{reason}; {extra} unmanaged worker(s) (other Supervisor programs) on its "
                f"queues count as capacity"
            )
        reason += tick.crash_note
        if tick.cap == "budget":
            reason = f"{reason}; memory budget ({limit_mb:.0f} MB) caps at {count}"
        elif tick.cap:
            reason = f"{reason}; {tick.wanted - count} more once draining workers free memory"
        decisions[name] = PoolDecision(
            pool=name,
            strategy=tick.const.strategy,
            current=tick.current if tick.workers_known else None,
            desired=count,
            reason=reason,
            held=tick.fixed,
            wanted=tick.wanted,
            capped=tick.cap != "",
            crashing=tick.crashing,
        )
    return decisions


def _held(
    name: str,
    policy: Policy,
    const: PolicyConstants,
    *,
    obs: PoolObservation | None,
    previous: int,
    why: str,
) -> PoolTick:
    """A pool without usable data keeps its count (within min/max): a fixed tick."""
    count = min(max(previous, const.min_processes), const.max_processes)
    workers = obs.workers if obs is not None else None
    tick = PoolTick(
        name,
        policy,
        const,
        (),
        0,
        0,
        0,
        None,
        workers.running if workers is not None else 0,
        workers.starting if workers is not None else 0,
        workers.draining if workers is not None else 0,
        None,
        count,
        None,
    )
    tick.workers_known = workers is not None
    tick.fixed = True
    tick.wanted = count
    tick.reason = f"{why}: hold {count}"
    return tick


def _paused(
    name: str, policy: Policy, const: PolicyConstants, *, obs: PoolObservation | None
) -> PoolTick:
    """A paused pool: zero workers, whatever its min (its slots drain: SIGTERM)."""
    tick = _held(name, policy, const, obs=obs, previous=0, why="")
    tick.wanted = tick.granted = 0
    tick.reason = "paused (`autoscaler resume` to resume): 0 workers"
    return tick


def _missing(
    obs: PoolObservation | None, observation: Observation, *, stale: bool, age_s: float
) -> str:
    """Why a pool is held, for its reason."""
    if stale:
        return f"observation {age_s:.0f}s old"
    if obs is None:
        return "pool not observed"
    if obs.queues is None:
        detail = f" ({observation.redis_error})" if observation.redis_error else ""
        return f"queues unknown{detail}"
    detail = f" ({observation.supervisor_error})" if observation.supervisor_error else ""
    return f"workers unknown{detail}"
