"""One Observation per tick for every pool: Redis, the workers' logs, Supervisor, memory.

The Observer is what the daemon calls every tick (and `status`, `record`). It holds the state
that only makes sense between ticks (log offsets, the lists' FIFO accounting of job ages, the
previous queued totals for the flow balance) and decides nothing. Every source can fail on
its own: Redis down gives pools without queues and `redis_error`; Supervisor down gives pools
without workers and `supervisor_error`; unreadable logs make a pool's work come from Redis
alone.
The first tick has no interval yet, so it carries no work samples.

The sources are read by `redis_reader`, `supervisor_reader` and `slot_logs`; a pool's work is
`pool_work`'s, its arrivals `flow_balance`'s; this module puts one tick together.
An unreachable Redis or supervisord is tried again on a backoff (1 s doubling to 30 s, see
`retry`), not at every tick. Between tries the last error is reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

import redis

from autoscaler.laravel.sampler import QueueSampler, connect_redis
from autoscaler.observe.flow_balance import FlowBalance, QueueFlow
from autoscaler.observe.logtail import DEFAULT_MAX_BYTES
from autoscaler.observe.meminfo import MEMINFO, memory_available_mb
from autoscaler.observe.observation import (
    Observation,
    PoolMemory,
    PoolObservation,
    WorkSample,
)
from autoscaler.observe.pool_work import WorkEstimator
from autoscaler.observe.process_memory import MemoryHistory, ProcessMeter, SlotUsage
from autoscaler.observe.redis_reader import RedisReader, pool_queues, redis_error
from autoscaler.observe.slot_logs import SlotLogReader
from autoscaler.observe.supervisor_reader import SupervisorReader
from autoscaler.observe.throughput import QueueTally
from autoscaler.policy.model import Policy
from autoscaler.settings import Settings
from autoscaler.supervisord.exits import WorkerExit, crashes_by_pool
from autoscaler.supervisord.include_file import default_state_dir
from autoscaler.supervisord.paused import PausedFileError, read_paused
from autoscaler.supervisord.rpc import ProcessInfo, SupervisorClient
from autoscaler.supervisord.slots import pool_of_programs, unmanaged_workers, worker_counts


class Observer:
    """Builds one Observation per call to `observe()`; see the module docstring."""

    def __init__(
        self,
        *,
        policies: Mapping[str, Policy],
        client: redis.Redis,
        prefix: str,
        supervisor: SupervisorClient | None,
        clock: Callable[[], float] = time.time,
        meminfo: Path = MEMINFO,
        log_max_bytes: int = DEFAULT_MAX_BYTES,
        state_dir: Path | None = None,
    ) -> None:
        self.policies = policies
        self.state_dir = state_dir  # where `autoscaler pause` keeps the paused pools
        self.paused: frozenset[str] = frozenset()
        self.paused_problem: str | None = None
        self.client = client
        self.supervisor = supervisor
        self._clock = clock
        self._meminfo = meminfo
        self._last_at: float | None = None
        # Retry schedules read the clock of the tick in progress (one reading per tick).
        self._now_s = 0.0
        self._redis = RedisReader(
            client=client, prefix=prefix, policies=policies, clock=lambda: self._now_s
        )
        self._supervisord = SupervisorReader(supervisor=supervisor, clock=lambda: self._now_s)
        self._logs = SlotLogReader(policies=policies, log_max_bytes=log_max_bytes)
        self._work = WorkEstimator()
        self._balance = FlowBalance()
        self._reserved: dict[str, int] = {}  # per queue, jobs in flight at the last tick
        self.meter = ProcessMeter()
        self._memory_history = MemoryHistory()
        self.flows: dict[str, QueueFlow] = {}  # the last tick's, per queue
        # Per pool, its slots' exits that supervisord did not expect, since the last tick.
        self.crashes: dict[str, list[WorkerExit]] = {}
        # Per pool, the live processes of other programs consuming its queues (last tick).
        self.unmanaged: dict[str, list[ProcessInfo]] = {}
        self.log_problems: dict[str, str] = {}  # the last tick's, per pool
        self.head_problems: dict[str, str] = {}  # the last tick's, per queue

    @classmethod
    def from_settings(cls, settings: Settings, policies: Mapping[str, Policy]) -> Observer:
        return cls(
            policies=policies,
            client=connect_redis(settings.redis_url, timeout_s=settings.redis_timeout_s),
            prefix=settings.redis_prefix,
            supervisor=SupervisorClient.from_settings(settings),
            log_max_bytes=settings.log_max_bytes_per_tick,
            state_dir=settings.state_dir or default_state_dir(settings.include_file),
        )

    @property
    def sampler(self) -> QueueSampler:
        """The queues' sampler (its job ages are saved across a daemon restart)."""
        return self._redis.sampler

    def set_policies(self, policies: Mapping[str, Policy]) -> None:
        """Follow reloaded policies; log offsets and head-job memory of kept pools stay."""
        self.policies = policies
        self._redis.follow(policies)
        self._logs.follow(policies)
        self._memory_history.forget_except(policies)

    def close(self) -> None:
        self.client.close()
        if self.supervisor is not None:
            self.supervisor.close()

    def in_flight(self, slot: str) -> bool | None:
        """Whether the slot's log showed a job in hand at the last tick (None: unknown)."""
        return self._logs.in_flight.get(slot)

    def busy_slots(self) -> set[str] | None:
        """Slots whose log showed a job in hand at the last tick, for the actuator's
        `busy_slots` (stop idle workers first); None before the first tick."""
        if self._last_at is None:
            return None
        return {slot for slot, busy in self._logs.in_flight.items() if busy}

    def observe(self) -> Observation:
        now = self._now_s = self._clock()
        processes, supervisor_error = self._supervisord.processes()
        first = self._last_at is None
        interval = 0.0 if self._last_at is None else max(0.0, now - self._last_at)
        counts = worker_counts(processes, self.policies) if processes is not None else None
        self.crashes = {}
        if processes is not None and counts is not None:
            self.crashes = crashes_by_pool(self._supervisord.take_exits(), self.policies)
            self.unmanaged = unmanaged_workers(processes, self._supervisord.commands, self.policies)
            for pool, others in self.unmanaged.items():
                counts[pool].unmanaged = len(others)
        # The workers' logs before Redis: a job that ends in between is then in neither (the
        # flow balance counts it with the next tick's completions), never in both (the queue
        # still holding it while its completion is counted made one arrival too many).
        read_logs = {
            pool: self._logs.read(pool, policy, processes, self.unmanaged.get(pool, ()))
            for pool, policy in self.policies.items()
        }
        sample = self._redis.sample(now)
        self.head_problems = sample.head_problems
        flows: dict[str, QueueFlow] = {}
        pools: dict[str, PoolObservation] = {}
        self.log_problems = {}
        completions: dict[str, float] = {}  # per queue, this tick's (logs or Little's law)
        for pool, policy in self.policies.items():
            queues = pool_queues(policy, sample)
            logs = read_logs[pool]
            if logs.problem is not None:
                self.log_problems[pool] = logs.problem
            work: WorkSample | None = None
            tallies: dict[str, QueueTally] | None = None
            if not first:
                work, tallies = self._work.work(
                    pool, policy, queues, logs, interval_s=interval, reserved_before=self._reserved
                )
            arrivals = self._balance.balance(
                pool, policy, queues=queues, tallies=tallies, work=work, now_s=now, flows=flows
            )
            if work is not None:
                work.arrivals = arrivals
            for name, tally in (tallies or {}).items():
                completions[name] = tally.completions
            pools[pool] = PoolObservation(
                pool=pool,
                queues=queues,
                work=work,
                workers=counts[pool] if counts is not None else None,
            )
        if sample.available:
            self._redis.settle(sample, completions, self._reserved)
        slots: tuple[SlotUsage, ...] = ()
        if processes is not None:
            slots = self._measure(processes, pools, now)
        for name, queue_sample in sample.queues.items():
            self._reserved[name] = queue_sample.reserved
        self._last_at = now
        self.flows = flows
        self._read_paused()
        return Observation(
            at_s=now,
            interval_s=interval,
            pools=pools,
            redis_error=redis_error(sample),
            supervisor_error=supervisor_error,
            memory_available_mb=memory_available_mb(self._meminfo),
            slots=slots,
            paused=self.paused,
        )

    def _read_paused(self) -> None:
        """The paused pools; an unreadable file keeps the last set read (and says why)."""
        if self.state_dir is None:
            return
        try:
            self.paused = frozenset(read_paused(self.state_dir))
            self.paused_problem = None
        except PausedFileError as exc:
            self.paused_problem = f"{exc}; keeping the paused pools read before"

    def _measure(
        self, processes: list[ProcessInfo], pools: dict[str, PoolObservation], now_s: float
    ) -> tuple[SlotUsage, ...]:
        """Every live slot's RSS and CPU (psutil), and each pool's memory from them."""
        usages = self.meter.measure(processes, pool_of_programs(self.policies), self.in_flight)
        for pool, policy in self.policies.items():
            mine = [u for u in usages if u.pool == pool and u.rss_mb is not None]
            running = [u.rss_mb for u in mine if u.state == "RUNNING" and u.rss_mb is not None]
            largest = max(running) if running else None
            self._memory_history.add(pool, now_s, largest, policy.memory.window_s)
            high, samples = self._memory_history.high_water(pool)
            pools[pool].memory = PoolMemory(
                total_mb=sum(running),
                max_mb=largest or 0.0,
                live_mb=sum(u.rss_mb for u in mine if u.rss_mb is not None),
                measured=len(running),
                high_water_mb=high,
                samples=samples,
            )
        return tuple(usages)
