"""One Observation per tick for every pool: Redis, the workers' logs, Supervisor, memory.

The Observer is what the daemon calls every tick (and `status`, `record`). It holds the state
that only makes sense between ticks (log offsets, the lists' FIFO accounting of job ages, the
previous queued totals for the flow balance) and decides nothing. Every source can fail on
its own: Redis down gives pools without queues and `redis_error`; Supervisor down gives pools
without workers and `supervisor_error`; unreadable logs make a pool's work come from Redis
alone.
The first tick has no interval yet, so it carries no work samples.

An unreachable Redis or supervisord is tried again on a backoff (1 s doubling to 30 s), not
at every tick: a host that drops packets costs a connect timeout per try, and a dependency
coming back is not met by every daemon at once. Between tries the last error is reported.
"""

from __future__ import annotations

import math
import socket
import time
import xmlrpc.client
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import redis

from autoscaler.backoff import Backoff
from autoscaler.laravel.queue_sample import QueueSample
from autoscaler.laravel.sampler import QueueSampler, RedisSample, connect_redis
from autoscaler.observe.estimators import arrivals as flow_arrivals
from autoscaler.observe.estimators import run_time_stats
from autoscaler.observe.logtail import DEFAULT_MAX_BYTES, LogTail, SlotLog, SlotWork
from autoscaler.observe.meminfo import MEMINFO, memory_available_mb
from autoscaler.observe.observation import (
    Observation,
    PoolMemory,
    PoolObservation,
    WorkSample,
    WorkSource,
)
from autoscaler.observe.process_memory import MemoryHistory, ProcessMeter, SlotUsage
from autoscaler.observe.throughput import (
    QueueTally,
    attribute_to_queues,
    little_completions,
    queued,
    work_from_logs,
)
from autoscaler.policy.model import Policy
from autoscaler.settings import Settings
from autoscaler.supervisord.exits import TAIL_BYTES as EXIT_TAIL_BYTES
from autoscaler.supervisord.exits import ExitReader, WorkerExit, crashes_by_pool
from autoscaler.supervisord.include_file import default_state_dir
from autoscaler.supervisord.paused import PausedFileError, read_paused
from autoscaler.supervisord.rpc import ProcessInfo, SupervisorClient, SupervisorUnavailable
from autoscaler.supervisord.slots import (
    parse_slot,
    pool_of_programs,
    slot_logfile,
    slot_name,
    unmanaged_workers,
    worker_counts,
)

# Slots that hold (or are about to hold) jobs: their logs must be readable for log counts.
LIVE_STATES = frozenset({"RUNNING", "STARTING", "STOPPING"})
# Retrying an unreachable Redis or supervisord: the first retry after this, then doubling.
RETRY_INITIAL_S = 1.0
RETRY_MAX_S = 30.0  # the longest a recovery goes unnoticed


@dataclass(slots=True, kw_only=True)
class QueueFlow:
    """One queue between two balance points: what arrived and what ran (for `record`)."""

    queue: str
    pool: str
    interval_s: float  # since the previous balance point (longer after a Redis outage)
    arrivals: float | None  # None: no balance yet (first tick, Redis unavailable)
    completions: float
    failures: float
    run_times_s: list[float]
    source: WorkSource

    @property
    def run_time_mean_s(self) -> float | None:
        return run_time_stats(np.asarray(self.run_times_s, dtype=np.float64))[0]

    @property
    def run_time_p95_s(self) -> float | None:
        return run_time_stats(np.asarray(self.run_times_s, dtype=np.float64))[1]


@dataclass(slots=True)
class _Balance:
    queued: int | None = None  # pending + reserved + due delayed at the last balance point
    at_s: float | None = None
    completions: float = 0.0  # completions counted since then, while Redis was unreadable


@dataclass(slots=True)
class _PoolLogs:
    works: dict[str, SlotWork] = field(default_factory=dict)  # path -> this tick's work
    live: set[str] = field(default_factory=set)  # paths of slots Supervisor says are live
    supervisor_known: bool = False  # False: which slots are live is unknown
    problem: str | None = None  # why the logs cannot give this tick's counts

    @property
    def usable(self) -> bool:
        return self.problem is None


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
        self.sampler = QueueSampler(
            client, prefix=prefix, queues=[q for p in policies.values() for q in p.queues]
        )
        self._clock = clock
        self._meminfo = meminfo
        self._log_max_bytes = log_max_bytes
        self._last_at: float | None = None
        self._logs: dict[str, dict[str, SlotLog]] = {pool: {} for pool in policies}
        self._slot_paths = {pool: policy_log_paths(p) for pool, p in policies.items()}
        self._run_mean_s: dict[str, float] = {}
        self._carry: dict[str, float] = {}
        self._reserved: dict[str, int] = {}
        self._balances: dict[str, _Balance] = {}
        self._in_flight: dict[str, bool | None] = {}
        # Retry schedules read the clock of the tick in progress (one reading per tick).
        self._now_s = 0.0
        self._redis_retry = _retry_backoff(lambda: self._now_s)
        self._supervisor_retry = _retry_backoff(lambda: self._now_s)
        self._redis_failure = ""
        self._supervisor_failure = ""
        self.meter = ProcessMeter()
        self._memory_history = MemoryHistory()
        self.flows: dict[str, QueueFlow] = {}  # the last tick's, per queue
        self._commands: dict[tuple[str, str], str] = {}  # (group, name) -> command
        self._exit_reader = ExitReader()
        self._logged_exits: list[WorkerExit] = []
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

    def set_policies(self, policies: Mapping[str, Policy]) -> None:
        """Follow reloaded policies; log offsets and head-job memory of kept pools stay."""
        self.policies = policies
        self.sampler = QueueSampler(
            self.client,
            prefix=self.sampler.prefix,
            queues=[q for p in policies.values() for q in p.queues],
            ages=self.sampler.ages,
        )
        self._logs = {pool: self._logs.get(pool, {}) for pool in policies}
        self._slot_paths = {pool: policy_log_paths(p) for pool, p in policies.items()}
        self._memory_history.forget_except(policies)

    def close(self) -> None:
        self.client.close()
        if self.supervisor is not None:
            self.supervisor.close()

    def in_flight(self, slot: str) -> bool | None:
        """Whether the slot's log showed a job in hand at the last tick (None: unknown)."""
        return self._in_flight.get(slot)

    def busy_slots(self) -> set[str] | None:
        """Slots whose log showed a job in hand at the last tick, for the actuator's
        `busy_slots` (stop idle workers first); None before the first tick."""
        if self._last_at is None:
            return None
        return {slot for slot, busy in self._in_flight.items() if busy}

    def observe(self) -> Observation:
        now = self._now_s = self._clock()
        sample = self._sample_redis(now)
        self.head_problems = sample.head_problems
        processes, supervisor_error = self._processes()
        first = self._last_at is None
        interval = 0.0 if self._last_at is None else max(0.0, now - self._last_at)
        counts = worker_counts(processes, self.policies) if processes is not None else None
        self.crashes = {}
        if processes is not None and counts is not None:
            self.crashes = crashes_by_pool(self._logged_exits, self.policies)
            self._logged_exits = []
            self.unmanaged = unmanaged_workers(processes, self._commands, self.policies)
            for pool, others in self.unmanaged.items():
                counts[pool].unmanaged = len(others)
        flows: dict[str, QueueFlow] = {}
        pools: dict[str, PoolObservation] = {}
        self.log_problems = {}
        completions: dict[str, float] = {}  # per queue, this tick's (logs or Little's law)
        for pool, policy in self.policies.items():
            queues = _pool_queues(policy, sample)
            logs = self._read_logs(pool, policy, processes)
            if logs.problem is not None:
                self.log_problems[pool] = logs.problem
            work: WorkSample | None = None
            tallies: dict[str, QueueTally] | None = None
            if not first:
                work, tallies = self._work(pool, policy, queues, logs, interval)
            arrivals = self._balance(
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
            self.sampler.settle_ages(sample, self._pops(sample, completions))
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
            redis_error=_redis_error(sample),
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

    def _sample_redis(self, now_s: float) -> RedisSample:
        """Redis's queues, or the last failure while its retry is not due yet."""
        wait_s = self._redis_retry.remaining_s()
        if wait_s > 0:
            return RedisSample(at_s=now_s, error=_waiting(self._redis_failure, wait_s))
        sample = self.sampler.sample(now_s, settle=False)  # ages: once the work is known
        if sample.error is None:
            self._redis_retry.succeeded()
        else:  # queue_errors (a key of another type) are no outage: no backoff for them
            self._redis_failure = sample.error
            self._redis_retry.failed()
        return sample

    def _pops(self, sample: RedisSample, completions: Mapping[str, float]) -> dict[str, float]:
        """Jobs the workers took from each list since the last tick, for the FIFO ages: the
        ones that finished plus the change in those in hand (where both are known)."""
        pops = {}
        for name, queue in sample.queues.items():
            done, before = completions.get(name), self._reserved.get(name)
            if done is not None and before is not None:
                pops[name] = max(0.0, done + queue.reserved - before)
        return pops

    def _processes(self) -> tuple[list[ProcessInfo] | None, str | None]:
        """supervisord's processes, or why not (the last failure while backing off)."""
        if self.supervisor is None:
            return None, "no supervisord configured"
        wait_s = self._supervisor_retry.remaining_s()
        if wait_s > 0:
            return None, _waiting(self._supervisor_failure, wait_s)
        try:
            # One round trip: the processes, and every program's command (to find other
            # programs' workers on our queues).
            raw, configs, log_tail = self.supervisor.multicall(
                [
                    ("getAllProcessInfo", ()),
                    ("getAllConfigInfo", ()),
                    ("readLog", (-EXIT_TAIL_BYTES, 0)),  # its exits (supervisord/exits.py)
                ]
            )
            if isinstance(raw, xmlrpc.client.Fault):
                raise raw
        except SupervisorUnavailable as exc:
            failure = str(exc)
        except xmlrpc.client.Fault as exc:
            failure = f"supervisord at {self.supervisor.url}: {exc.faultString}"
        else:
            self._supervisor_retry.succeeded()
            self._logged_exits = (
                self._exit_reader.new_exits(log_tail) if isinstance(log_tail, str) else []
            )
            if not isinstance(configs, xmlrpc.client.Fault):
                self._commands = {
                    (str(c.get("group")), str(c.get("name"))): str(c.get("command", ""))
                    for c in configs
                }
            return [ProcessInfo.from_rpc(entry) for entry in raw], None
        self._supervisor_failure = failure
        self._supervisor_retry.failed()
        return None, failure

    def _read_logs(
        self,
        pool: str,
        policy: Policy,
        processes: list[ProcessInfo] | None,
    ) -> _PoolLogs:
        """Read every log file of the pool's slots: those Supervisor reports, and the paths
        the policy gives slots 0..max-1 (tracked even while stopped, so a slot that starts
        later is read from where its file stood, not from its old content)."""
        paths = dict(self._slot_paths[pool])  # path -> slot name
        logs = _PoolLogs(supervisor_known=processes is not None)
        live_without_log: list[str] = []
        # Other programs' workers on this pool's queues (a migration's hand-written ones):
        # their logs count too, or `record` and the run time would see only ours.
        others = {id(p) for p in self.unmanaged.get(pool, ())} if processes is not None else set()
        for process in processes or []:
            slot = parse_slot(process.name)
            unmanaged = id(process) in others
            if not unmanaged and (
                slot is None or slot.program != policy.program or process.group != process.name
            ):
                continue
            path = process.stdout_logfile if _is_log_path(process.stdout_logfile) else None
            if path is not None:
                # `group:name`: an old group's process may be named like one of our slots.
                paths[path] = f"{process.group}:{process.name}" if unmanaged else process.name
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
            self._in_flight[name] = work.in_flight
        logs.problem = _logs_problem(logs, live_without_log)
        return logs

    def _work(
        self,
        pool: str,
        policy: Policy,
        queues: tuple[QueueSample, ...] | None,
        logs: _PoolLogs,
        interval_s: float,
    ) -> tuple[WorkSample | None, dict[str, QueueTally] | None]:
        reserved_now = {q.queue: q.reserved for q in queues} if queues is not None else {}
        if logs.usable:
            considered = (
                [logs.works[p] for p in logs.live]
                if logs.supervisor_known
                else [w for w in logs.works.values() if w.exists]
            )
            busy = float(sum(1 for w in considered if w.in_flight))
            work = work_from_logs(logs.works.values(), busy_workers=busy)
            if work.run_time_mean_s is not None:
                self._run_mean_s[pool] = work.run_time_mean_s
            weights = {q: float(self._reserved.get(q, r) + r) for q, r in reserved_now.items()}
            tallies = attribute_to_queues(
                logs.works.values(), queues=policy.queues, weights=weights
            )
            return work, tallies
        if queues is None:
            return None, None
        run_time_s = self._run_mean_s.get(pool, policy.expected_run_time_s)
        tallies = {}
        for q in queues:
            busy_q = (self._reserved.get(q.queue, q.reserved) + q.reserved) / 2.0
            estimate = little_completions(
                busy_workers=busy_q, interval_s=interval_s, run_time_s=run_time_s
            )
            tallies[q.queue] = QueueTally(completions=estimate)
        carry = self._carry.get(pool, 0.0) + sum(t.completions for t in tallies.values())
        completions = int(carry)
        self._carry[pool] = carry - completions
        work = WorkSample(
            completions=completions,
            failures=0,
            run_time_mean_s=None,
            run_time_p95_s=None,
            busy_workers=float(sum(q.reserved for q in queues)),
            source="redis",
        )
        return work, tallies

    def _balance(
        self,
        pool: str,
        policy: Policy,
        *,
        queues: tuple[QueueSample, ...] | None,
        tallies: dict[str, QueueTally] | None,
        work: WorkSample | None,
        now_s: float,
        flows: dict[str, QueueFlow],
    ) -> float | None:
        """Flow balance per queue; returns the pool's arrivals (None unless every queue's)."""
        by_queue = {q.queue: q for q in queues} if queues is not None else {}
        total: float | None = 0.0
        for name in policy.queues:
            balance = self._balances.setdefault(name, _Balance())
            sample = by_queue.get(name)
            tally = tallies.get(name) if tallies is not None else None
            arrived: float | None = None
            if tally is None:  # the work is unknown: restart the balance from here
                balance.queued = queued(sample) if sample is not None else None
                balance.at_s, balance.completions = now_s, 0.0
            elif sample is None:  # Redis unreadable: keep the completions for later
                balance.completions += tally.completions
            elif balance.queued is None or balance.at_s is None:
                balance.queued, balance.at_s, balance.completions = queued(sample), now_s, 0.0
            else:
                done = balance.completions + tally.completions
                arrived = flow_arrivals(done, balance.queued, queued(sample))
                flows[name] = QueueFlow(
                    queue=name,
                    pool=pool,
                    interval_s=now_s - balance.at_s,
                    arrivals=arrived,
                    completions=done,
                    failures=tally.failures,
                    run_times_s=tally.run_times_s,
                    source=work.source if work is not None else "redis",
                )
                balance.queued, balance.at_s, balance.completions = queued(sample), now_s, 0.0
            total = None if total is None or arrived is None else total + arrived
        return total


def _retry_backoff(clock: Callable[[], float]) -> Backoff:
    return Backoff(initial_s=RETRY_INITIAL_S, max_s=RETRY_MAX_S, clock=clock)


def _waiting(failure: str, wait_s: float) -> str:
    return f"{failure} (next try in {math.ceil(wait_s)}s)"


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


def _pool_queues(policy: Policy, sample: RedisSample) -> tuple[QueueSample, ...] | None:
    if not sample.available or any(q in sample.queue_errors for q in policy.queues):
        return None
    return tuple(sample.queues[q] for q in policy.queues)


def _redis_error(sample: RedisSample) -> str | None:
    if sample.error is not None:
        return sample.error
    if sample.queue_errors:
        return "; ".join(sample.queue_errors.values())
    return None


def _logs_problem(logs: _PoolLogs, live_without_log: list[str]) -> str | None:
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
