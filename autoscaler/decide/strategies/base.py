"""What every strategy receives and returns, once per tick.

decide builds one PoolTick per pool, hands the ticks of each strategy to that strategy's
runner, and reads back `wanted`, `reason` and `memory`; the memory budget then fills in
`granted`. A runner sees all its pools at once because some peers decide for a group
(Horizon balances the pools of one supervisor against each other).

Speed matters here: the simulator calls decide ~10^5 times per run. So PoolTick is a plain
slotted class with a positional constructor, and the numbers a strategy reads every tick
are copied once per policy into PolicyConstants (reading a pydantic model's attribute is
several times slower than a slot).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from autoscaler.decide.plan import LazyReason
from autoscaler.decide.queueing import staffing_rule
from autoscaler.laravel.queue_sample import QueueSample
from autoscaler.observe.observation import WorkSample
from autoscaler.policy.loader import PolicySet
from autoscaler.policy.model import Policy

_CACHE_LIMIT = 4096
K = TypeVar("K")
V = TypeVar("V")


class PolicyConstants:
    """Per-policy numbers, read from the (immutable) policy once."""

    __slots__ = (
        "arrival_half_life_s",
        "down_percentile",
        "expected_run_time_s",
        "max_processes",
        "max_step_up",
        "measured_cap_mb",
        "measured_min_samples",
        "measured_size",
        "memory_mb",
        "min_processes",
        "percentile",
        "priority",
        "reaction_share",
        "reversal_hold_s",
        "scale_down_step",
        "scale_down_window_jobs",
        "scale_down_window_s",
        "sizing",
        "slo_wait_s",
        "sqrt_model",
        "startup_s",
        "static_processes",
        "steady_load_slack",
        "steady_percentile",
        "strategy",
        "weights",
    )

    def __init__(self, policy: Policy) -> None:
        knobs = policy.strategy.slo
        self.strategy: str = policy.strategy.name
        self.min_processes = policy.min_processes
        self.max_processes = policy.max_processes
        self.static_processes = policy.static_processes
        self.memory_mb = policy.memory_per_worker_mb  # declared
        sizing = policy.memory
        self.measured_size = sizing.size == "measured"
        self.measured_min_samples = sizing.min_samples
        self.measured_cap_mb = policy.worker_memory_limit_mb + sizing.margin_mb
        self.priority = policy.priority
        self.expected_run_time_s = policy.expected_run_time_s
        self.slo_wait_s = policy.slo.wait_s
        self.percentile = policy.slo.percentile
        self.sqrt_model = knobs.model == "sqrt"
        self.steady_percentile = knobs.steady_percentile
        self.steady_load_slack = knobs.steady_load_slack
        self.reaction_share = knobs.reaction_share
        self.startup_s = knobs.startup_s
        self.arrival_half_life_s = knobs.arrival_half_life_s
        self.scale_down_window_s = knobs.scale_down_window_s
        self.scale_down_window_jobs = knobs.scale_down_window_jobs
        self.scale_down_step = knobs.scale_down_step
        self.max_step_up = knobs.max_step_up
        self.down_percentile = knobs.down_percentile
        self.reversal_hold_s = knobs.reversal_hold_s
        # the slo strategy's steady-state model, as f(load, T/S) -> workers
        self.sizing: Callable[[float, float], int] = staffing_rule(
            knobs.model, knobs.steady_percentile
        )
        self.weights: dict[float, float] = {}  # EWMA weight of λ per sample span


def by_identity(cache: dict[int, tuple[K, V]], key: K, make: Callable[[K], V]) -> V:
    """`make(key)`, computed once per object and kept in `cache`.

    Keyed by identity (policies are immutable but not hashable); the entry keeps `key` alive
    so its id cannot be reused by another object while cached.
    """
    entry = cache.get(id(key))
    if entry is not None and entry[0] is key:
        return entry[1]
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    made = make(key)
    cache[id(key)] = (key, made)
    return made


_constants: dict[int, tuple[Policy, PolicyConstants]] = {}


def constants(policy: Policy) -> PolicyConstants:
    """The policy's constants, computed once per policy object."""
    return by_identity(_constants, policy, PolicyConstants)


Roster = list[tuple[str, Policy, PolicyConstants]]
_rosters: dict[int, tuple[PolicySet, Roster]] = {}


def roster(policies: Mapping[str, Policy]) -> Roster:
    """(pool, policy, constants) in the policies' order. A PolicySet is immutable, so its
    roster is made once; any other mapping is read afresh."""
    if not isinstance(policies, PolicySet):
        return _roster(policies)
    return by_identity(_rosters, policies, _roster)


def _roster(policies: Mapping[str, Policy]) -> Roster:
    return [(name, policy, constants(policy)) for name, policy in policies.items()]


class PoolTick:
    """One pool at one tick: its numbers (summed over its queues), the strategy's verdict and
    the memory budget's answer. A pool whose data is missing gets a `fixed` tick that no
    strategy sees."""

    __slots__ = (
        "cap",
        "const",
        "crash_note",
        "crashing",
        "current",
        "delayed_due",
        "draining",
        "fixed",
        "granted",
        "keep_up",
        "memory",
        "memory_mb",
        "oldest_wait_s",
        "pending",
        "policy",
        "pool",
        "previous",
        "queues",
        "reason",
        "reserved",
        "running",
        "starting",
        "urgency",
        "wanted",
        "work",
        "workers_known",
    )

    granted: int  # set by budget.allocate
    cap: str  # set by budget.allocate

    def __init__(  # noqa: PLR0917 - positional: one per pool per tick, keywords cost
        self,
        pool: str,
        policy: Policy,
        const: PolicyConstants,
        queues: tuple[QueueSample, ...],
        pending: int,
        reserved: int,
        delayed_due: int,
        oldest_wait_s: float | None,
        running: int,
        starting: int,
        draining: int,
        work: WorkSample | None,
        previous: int,
        memory: Any,
    ) -> None:
        self.pool = pool
        self.policy = policy
        self.const = const
        self.queues = queues  # the samples per queue
        self.pending = pending  # LLEN summed over the pool's queues
        self.reserved = reserved  # jobs in flight
        self.delayed_due = delayed_due  # delayed jobs already due (the next pop takes them)
        self.oldest_wait_s = oldest_wait_s  # largest head-job age; None when unknown or empty
        self.running = running
        self.starting = starting
        self.current = running + starting
        self.workers_known = True  # False: Supervisor could not say (current is then 0)
        self.crashing = 0  # slots in BACKOFF/FATAL: crashed at start, hold no memory
        self.crash_note = ""  # set by decide when crashes hold the pool back
        self.draining = draining
        self.work = work
        self.previous = previous  # the count decided last tick (or observed, on the first)
        self.memory = memory  # this pool's strategy memory from the last tick (None at first)
        self.memory_mb = const.memory_mb  # one worker's size for the budget (core.worker_mb)
        self.wanted = previous  # set by the strategy
        self.reason: str | LazyReason = ""  # set by the strategy
        # for the memory budget (budget.Claim); allocate sets granted and cap
        self.fixed = False
        self.urgency = 0.0
        self.keep_up = 0  # set by a strategy that tells keeping up from catching up

    @property
    def idle(self) -> int:
        """Workers without a job (starting ones included): stopped, they exit at once."""
        return max(0, self.current - self.reserved)

    @property
    def waiting(self) -> int:
        """Jobs a free worker could take now: pending plus due delayed."""
        return self.pending + self.delayed_due


# A runner gets the ticks of its pools, the time, the interval the work counts cover, and the
# shared memory of the last tick (read-only); it sets wanted/reason/memory on every tick and
# returns the shared entries it wants kept (replacing its own previous ones).
Runner = Callable[[list[PoolTick], float, float, Mapping[str, Any]], dict[str, Any]]
