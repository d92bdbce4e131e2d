"""Strategy `slo` (the default): keep each pool's wait under its SLO at the fewest workers.

docs/slo-strategy.md derives every formula; in short, each tick and pool:

1. Estimate the run time S (completion-weighted average of the measured run times, starting
   from the policy's expected_run_time_s) and the arrival rate λ by flow balance
   (arrivals = completions + change in queued work, an EWMA over ticks; the observer's own
   balance, `WorkSample.arrivals`, when it gives one). Without worker logs the completions
   are estimated from Redis: busy workers × interval / S.
2. Workers needed = the larger of
   - steady state: the fewest c with P(wait > T) <= 1 − steady_percentile in an M/M/c queue
     with load a = λ·S (Erlang C, or square-root staffing). This is the base the pool runs
     on; it need not meet the SLO percentile alone, because the controller looks again every
     tick and the backlog rule below rescues the jobs that do wait;
   - backlog: enough workers to start every job waiting now within the SLO, FIFO, after the
     workers' start-up delay (queueing.backlog_servers).
3. Scale up in one jump to that count (optionally at most max_step_up at once). Scale down
   only to the highest count needed during the last scale_down_window_s, and by at most
   scale_down_step per decision, so a lull between two bursts does not flap. Decisions
   closer than MIN_DOWN_GAP_S to the last scale-down (catch-up ticks after a stall) hold:
   the step is a rate, not something a burst of ticks can repeat. Optional hysteresis
   (knobs, off by default): no return to the count before the last scale-up within
   reversal_hold_s, and no scale-down to a count that would not keep down_percentile of
   jobs within the SLO at the current load.
4. A busy worker that finished nothing in an interval of several run times is stuck on a
   long job: once the oldest waiting job nears its SLO, the backlog's workers come on top.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from autoscaler.decide.queueing import backlog_servers, erlang_c_servers, staffing_rule
from autoscaler.decide.strategies.base import PolicyConstants, PoolTick
from autoscaler.observe.estimators import ewma_weight

# Run times are averaged per job: a new mean over n jobs moves the estimate by
# 1 − 2^(−n / SERVICE_HALF_LIFE_JOBS), or by n / (jobs measured so far + n) while that is
# more: the first measured jobs replace the policy's guess outright (it is only a guess), and
# the estimate is their plain mean until enough jobs are measured for the moving average.
SERVICE_HALF_LIFE_JOBS = 30.0
# A flow-balance sample spanning more than this many intervals (a tick was skipped or held)
# is not trusted: the completions in between were not seen.
MAX_GAP_INTERVALS = 2.5
# A scale-down this soon after the last one waits (ticks run back to back after a stall).
MIN_DOWN_GAP_S = 0.5
# A busy worker that finished no job in an interval of at least STUCK_RUN_TIMES mean run
# times is held by a job far longer than the mean (heavy-tailed run times); once the oldest
# waiting job has used STUCK_WAIT_SHARE of its SLO, the backlog rule's workers are counted
# on top of such workers instead of among them.
STUCK_RUN_TIMES = 4.0
STUCK_WAIT_SHARE = 0.75
# distinct sample spans whose EWMA weight is kept per policy (arrival_weight)
WEIGHT_CACHE_LIMIT = 256

Window = tuple[tuple[float, int], ...]
# A steady-state grid cell: (load low, load high, T/S low, T/S high, workers)
Cell = tuple[float, float, float, float, int]


class SloMemory(NamedTuple):
    at_s: float  # time of the last sample used
    queued: int  # pending + reserved + due delayed then
    arrival_rate_per_s: float | None  # EWMA of λ (None before the first flow balance)
    service_s: float  # estimate of the mean run time
    window: Window  # (time, needed) pairs, needed decreasing: a sliding maximum
    cell: Cell | None  # the steady-state grid cell last used
    down_at_s: float  # time of the last scale-down (-inf: none yet)
    measured_jobs: float  # jobs whose run time the estimate holds (0: the policy's guess)
    up_at_s: float  # time of the last scale-up (-inf: none yet)
    up_from: int  # the count before that scale-up


class SloNeed(NamedTuple):
    """Workers needed and why (the terms of the sizing, for the reason and the tests)."""

    needed: int
    steady: int  # from the queueing model
    backlog: float  # from the jobs waiting now
    arrival_rate_per_s: float
    service_s: float


def estimate_service_s(
    previous_s: float, completions: int, run_time_mean_s: float | None, measured_jobs: float = 0.0
) -> tuple[float, float]:
    """Completion-weighted moving average of the run time, weighted by how much is measured:
    (new estimate, jobs measured so far). `previous_s` counts as `measured_jobs` jobs, so
    the policy's guess (0 jobs) gives way to the first measurement entirely."""
    if completions <= 0 or run_time_mean_s is None or run_time_mean_s <= 0:
        return previous_s, measured_jobs
    weight = 1.0 - math.pow(2.0, -completions / SERVICE_HALF_LIFE_JOBS)
    share = completions / (measured_jobs + completions)
    weight = max(weight, share)
    return previous_s + weight * (run_time_mean_s - previous_s), measured_jobs + completions


def stuck_workers(  # noqa: PLR0917 - positional on the hot path
    busy: int,
    completions: int,
    interval_s: float,
    service_s: float,
    oldest_wait_s: float,
    slo_wait_s: float,
) -> int:
    """Busy workers that finished no job in an interval of at least STUCK_RUN_TIMES mean
    run times (at least busy − completions of them), counted once the oldest waiting job has
    used STUCK_WAIT_SHARE of its SLO; else 0. Such a worker is held by a job far longer than
    the mean (heavy-tailed run times) and serves none of the waiting jobs soon."""
    if (
        completions >= busy
        or interval_s < STUCK_RUN_TIMES * service_s
        or oldest_wait_s < STUCK_WAIT_SHARE * slo_wait_s
    ):
        return 0
    return busy - completions


def needed_workers(
    *,
    arrival_rate_per_s: float,
    service_s: float,
    waiting: int,
    oldest_wait_s: float,
    slo_wait_s: float,
    steady_percentile: float,
    startup_s: float,
    reaction_s: float,
    model: str = "erlang_c",
    steady_load_slack: float = 0.0,
    reaction_share: float = 1.0,
    stuck: int = 0,
) -> SloNeed:
    """The workers that keep the SLO: max(steady state, backlog), rounded up (pure).

    steady: the queueing model's count for P(wait > T) <= 1 − steady_percentile/100;
    backlog: queueing.backlog_servers for the jobs waiting now, plus the `stuck` workers
    (stuck_workers) when jobs wait. (The strategy's hot path,
    _decide_pool, computes the same; a test holds them equal.)"""
    steady = steady_count(
        arrival_rate_per_s * service_s - steady_load_slack,
        slo_wait_s / service_s,
        staffing_rule(model, steady_percentile),
    )
    backlog = backlog_servers(
        waiting,
        oldest_wait_s,
        arrival_rate_per_s,
        service_s,
        slo_wait_s,
        startup_s,
        reaction_s,
        reaction_share,
    )
    if waiting > 0:
        backlog += stuck
    needed = steady if backlog <= steady else math.ceil(backlog - 1e-9)
    return SloNeed(
        needed=needed,
        steady=steady,
        backlog=backlog,
        arrival_rate_per_s=arrival_rate_per_s,
        service_s=service_s,
    )


# The steady-state count depends on the load a = λ·S and on T/S only, and both are estimates
# that move a little every tick. T/S is rounded down (the safe direction) on a 5 % geometric
# grid; for each grid value the loads at which the count steps up are found once, by
# bisection, and shared by every policy with the same model and percentile. A pool keeps the
# cell its count holds in (the range of loads and of T/S) and searches again only when the
# load or T/S leaves it -- or rather leaves it by more than CELL_SLACK in the direction that
# needs fewer workers, so that a decaying estimate does not cost a search every tick.
_DECAY_STEPS = 20.0  # grid steps per e-fold of T/S: 5 %
_LOAD_STEPS = 50.0  # above TABLE_MAX workers: a 2 % load grid instead of exact limits
TABLE_MAX = 64
_LIMIT_BISECT_STEPS = 30
CELL_SLACK = 0.1
_CACHE_LIMIT = 1 << 16
_limits: dict[tuple[Callable[[float, float], int], int, int], float] = {}


def steady_count(load: float, decay: float, sizing: Callable[[float, float], int]) -> int:
    """`sizing(load, T/S)` with T/S rounded down to the grid."""
    return steady_cell(load, decay, sizing)[4]


def steady_cell(load: float, decay: float, sizing: Callable[[float, float], int]) -> Cell:
    """The count for (load, T/S) and the cell it holds in: (load low, load high, T/S low,
    T/S high, count) -- the same count for every low < load <= high, low <= T/S < high."""
    if load <= 0.0:
        return (0.0, 0.0, 0.0, 0.0, 0)
    decay_step = math.floor(math.log(decay) * _DECAY_STEPS)
    decay_low = math.exp(decay_step / _DECAY_STEPS)
    decay_high = math.exp((decay_step + 1) / _DECAY_STEPS)
    count = sizing(load, decay_low)
    if count > TABLE_MAX:  # a big pool: bound the load to a 2 % step instead
        load_step = math.ceil(math.log(load) * _LOAD_STEPS)
        high = math.exp(load_step / _LOAD_STEPS)
        low = math.exp((load_step - 1) / _LOAD_STEPS)
        return (low, high, decay_low, decay_high, sizing(high, decay_low))
    low = _load_limit(sizing, decay_step, count - 1) if count > 1 else 0.0
    high = _load_limit(sizing, decay_step, count)
    return (low, high, decay_low, decay_high, count)


def _load_limit(sizing: Callable[[float, float], int], decay_step: int, count: int) -> float:
    """The largest load `count` workers carry at this T/S (the bisection's safe bracket)."""
    key = (sizing, decay_step, count)
    limit = _limits.get(key)
    if limit is None:
        decay = math.exp(decay_step / _DECAY_STEPS)
        low, high = 0.0, float(count)  # at a load of `count` the queue is unstable
        for _ in range(_LIMIT_BISECT_STEPS):
            middle = 0.5 * (low + high)
            if sizing(middle, decay) <= count:
                low = middle
            else:
                high = middle
        if len(_limits) >= _CACHE_LIMIT:
            _limits.clear()
        limit = _limits[key] = low
    return limit


def slide(window: Window, now_s: float, needed: int, span_s: float) -> Window:
    """Add `needed` at `now_s` to a sliding-maximum window and forget what is older than
    `span_s`; the first entry is then the highest need within the span.

    The window is a monotonic queue: times increase and needs strictly decrease along it,
    so expired entries sit at the head and entries the new need dominates at the tail.
    """
    cutoff = now_s - span_s
    start, end = 0, len(window)
    while start < end and window[start][0] <= cutoff:
        start += 1
    while end > start and window[end - 1][1] <= needed:
        end -= 1
    if start == end:
        return ((now_s, needed),)
    return (*window[start:end], (now_s, needed))


def scale(
    base: int, needed: int, window_max: int, scale_down_step: int, max_step_up: int | None
) -> int:
    """Up in one jump (bounded by max_step_up), down only to the window's maximum and by at
    most scale_down_step."""
    if needed > base:
        if max_step_up is not None and needed > base + max_step_up:
            return base + max_step_up
        return needed
    if needed == base or window_max >= base:
        return base
    return max(window_max, base - scale_down_step)


def run(
    ticks: list[PoolTick], now_s: float, interval_s: float, shared: Mapping[str, Any]
) -> dict[str, Any]:
    dt = interval_s if interval_s > 0 else 1.0
    for tick in ticks:
        _decide_pool(tick, now_s, dt)
    return {}


_make_memory = tuple.__new__  # builds an SloMemory without its Python-level __new__


def arrival_weight(const: PolicyConstants, span_s: float) -> float:
    """The EWMA weight of an arrival sample over `span_s`, cached per policy.

    The simulator's spans repeat (one per tick length), so the cache saves the exp(); the
    daemon's are wall-clock differences that rarely repeat, so the cache is bounded: without
    the bound it would grow by one entry per pool per tick for as long as the policy lives.
    """
    weight = const.weights.get(span_s)
    if weight is None:
        if len(const.weights) >= WEIGHT_CACHE_LIMIT:
            const.weights.clear()
        weight = const.weights[span_s] = ewma_weight(span_s, const.arrival_half_life_s)
    return weight


def _decide_pool(tick: PoolTick, now_s: float, dt: float) -> None:  # noqa: PLR0915 - hot path
    """needed_workers, slide and scale for one pool, with the estimates carried in memory.
    Written for speed (it runs for every pool at every tick)."""
    const = tick.const
    memory = tick.memory
    fresh = type(memory) is not SloMemory
    cell: Cell | None
    if fresh:
        at_s, queued_before, rate, service_s = now_s, 0, None, const.expected_run_time_s
        window: Window = ((now_s, tick.previous),)
        cell = None
        down_at_s = -math.inf
        measured = 0.0
        up_at_s, up_from = -math.inf, 0
    else:
        (at_s, queued_before, rate, service_s, window, cell) = memory[:6]
        down_at_s, measured, up_at_s, up_from = memory[6:]
    reserved = tick.reserved
    waiting = tick.pending + tick.delayed_due
    queued = waiting + reserved
    work = tick.work
    arrived: float | None = None
    if work is not None:
        completions: float = work.completions
        if completions > 0:
            service_s, measured = estimate_service_s(
                service_s, work.completions, work.run_time_mean_s, measured
            )
        arrived = work.arrivals
    else:  # no worker logs: what Redis shows in flight finishes at 1/S per worker
        running = tick.running
        completions = (reserved if reserved < running else running) * dt / service_s

    span = dt
    sample: float | None = None
    if arrived is not None:  # the observer's flow balance, kept across Redis outages
        if not fresh and now_s > at_s:
            span = now_s - at_s
        sample = arrived / span
    elif not fresh and now_s - at_s <= MAX_GAP_INTERVALS * dt:
        # jobs deleted by hand are not negative arrivals
        sample = max(completions + queued - queued_before, 0.0) / dt
    if sample is not None:
        if rate is None:
            rate = sample
        else:
            rate += arrival_weight(const, span) * (sample - rate)
    elif rate is None and work is not None:
        rate = completions / dt  # first sight: throughput is the best guess

    slo_wait_s = const.slo_wait_s
    steady = 0
    if rate is not None and rate > 0.0:
        load = rate * service_s - const.steady_load_slack
        decay = slo_wait_s / service_s
        # reuse the last cell while inside it, or outside only where fewer workers would do
        if (
            cell is None
            or not cell[0] * (1.0 - CELL_SLACK) < load <= cell[1]
            or not cell[2] <= decay < cell[3] * (1.0 + CELL_SLACK)
        ):
            cell = steady_cell(load, decay, const.sizing)
        steady = cell[4]
    backlog = 0.0
    needed = steady
    oldest = tick.oldest_wait_s
    if waiting > 0:
        backlog = backlog_servers(
            waiting,
            oldest if oldest is not None else 0.0,
            rate if rate is not None else 0.0,
            service_s,
            slo_wait_s,
            const.startup_s,
            dt,
            const.reaction_share,
        )
        if work is not None and oldest is not None:
            busy = reserved if reserved < tick.running else tick.running
            backlog += stuck_workers(busy, work.completions, dt, service_s, oldest, slo_wait_s)
        if backlog > steady:
            needed = math.ceil(backlog - 1e-9)
    if needed < const.min_processes:
        needed = const.min_processes
    elif needed > const.max_processes:
        needed = const.max_processes
    base = tick.previous
    if window[0][1] <= needed:  # the common case: nothing in the window exceeds the need
        window = ((now_s, needed),)
    else:
        # at least a few run times: a pool of long jobs would step down job by job
        span_s = max(const.scale_down_window_s, const.scale_down_window_jobs * service_s)
        window = slide(window, now_s, needed, span_s)
    window_max = window[0][1]
    if needed == base:  # hold (window_max >= needed): the common case again
        count = base
    else:
        count = scale(base, needed, window_max, const.scale_down_step, const.max_step_up)
        if count < base:
            if now_s - down_at_s < MIN_DOWN_GAP_S:
                count = base  # a catch-up tick right after another: not a new step down
            else:
                count = _hysteresis(const, count, base, now_s, up_at_s, up_from, rate, service_s)
                if count < base:
                    down_at_s = now_s
        elif count > base:
            up_at_s, up_from = now_s, base
    tick.wanted = count
    # the budget's first tier: keeping pace with the whole load (the slack is for the
    # backlog rule, which the second tier serves by lateness)
    pace = math.ceil(rate * service_s) if rate is not None and rate > 0.0 else 0
    tick.keep_up = max(steady, pace, 1)
    tick.memory = _make_memory(
        SloMemory,
        (now_s, queued, rate, service_s, window, cell, down_at_s, measured, up_at_s, up_from),
    )
    tick.reason = (
        _reason,
        (const, base, oldest, waiting, rate, service_s, steady, backlog, needed, count, window_max),
    )


def _hysteresis(  # noqa: PLR0917 - hot path, positional
    const: PolicyConstants,
    count: int,
    base: int,
    now_s: float,
    up_at_s: float,
    up_from: int,
    rate: float | None,
    service_s: float,
) -> int:
    """A scale-down from `base` to `count`, raised so the pool does not flap: not back to
    the count before the last scale-up within reversal_hold_s of it, and not below the
    count that keeps down_percentile of jobs within the SLO at the current load."""
    if const.reversal_hold_s > 0.0 and now_s - up_at_s < const.reversal_hold_s:
        count = max(count, up_from + 1)
    if const.down_percentile > 0.0 and rate is not None and rate > 0.0 and count < base:
        sustained = erlang_c_servers(rate, service_s, const.slo_wait_s, const.down_percentile)
        count = max(count, min(sustained, base))
    return count


def _reason(  # noqa: PLR0917 - called with a lazy reason's stored arguments
    const: PolicyConstants,
    base: int,
    oldest: float | None,
    waiting: int,
    arrival_rate: float | None,
    service_s: float,
    steady: int,
    backlog: float,
    needed: int,
    count: int,
    window_max: int,
) -> str:
    """`oldest wait 48s > SLO 30s; λ=3.1/s × S=2.4s, backlog 40 needs 9; +5 (max step 8)`"""
    slo_wait = const.slo_wait_s
    if waiting == 0:
        head = "queue empty"
    elif oldest is None:
        head = f"{waiting} waiting, age unknown"
    elif oldest > slo_wait:
        head = f"oldest wait {oldest:.0f}s > SLO {slo_wait:.0f}s"
    else:
        head = f"oldest wait {oldest:.0f}s <= SLO {slo_wait:.0f}s"
    load = f"λ={arrival_rate or 0.0:.3g}/s × S={service_s:.3g}s"
    if backlog > steady:
        load += f", backlog {waiting}"
    if count > base:
        verdict = f"+{count - base}"
        if count < needed:
            verdict += f" (max step {const.max_step_up})"
    elif count < base:
        verdict = f"-{base - count}"
    elif needed < base:
        window_s = const.scale_down_window_s
        verdict = f"hold {base} (needed {window_max} within {window_s:.0f}s)"
    else:
        verdict = f"hold {base}"
    return f"{head}; {load} needs {needed}; {verdict}"
