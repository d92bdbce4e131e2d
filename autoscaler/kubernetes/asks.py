"""The worker count per pool that the KEDA external scaler serves: the daemon's observe + decide.

Every interval (AUTOSCALER_INTERVAL_S, on the daemon's Ticker) one tick observes every pool
with the daemon's Observer and decides with `decide` and a ControllerState carried from tick
to tick, exactly as the daemon's controller does; there is no act. gRPC requests read the
latest tick and never observe themselves, so KEDA's calls (several per pool per HPA sync)
neither cost Redis round trips nor make the ticks irregular.

What differs from the daemon, because Kubernetes runs the workers and not Supervisor:
- Workers: nothing here reports them. Each pool's workers are taken to be the count decide
  asked for at the previous tick (the HPA follows it within a sync when the ScaledObject
  carries the exported behavior), and before the first tick the policy's static_processes
  (the exported Deployment's initial replicas). docs/kubernetes.md says what that misses.
- Memory: MemAvailable is not read (the scaler's node is not where the workers run); the
  budget is AUTOSCALER_MEMORY_BUDGET_MB less AUTOSCALER_MEMORY_RESERVE_MB.
- Missing data: where the daemon holds a count, the scaler has no count to give. A pool whose
  decision is held (Redis down, a key of another type) or whose tick is stale is answered
  with an error, never a number, so that KEDA's fallback takes over (and no 0 scales it in).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from loguru import logger

from autoscaler.daemon.ticker import Ticker
from autoscaler.decide.core import STALE_INTERVALS, STALE_MIN_S, decide
from autoscaler.decide.plan import ControllerState, MemoryBudget, Plan
from autoscaler.observe.observation import Observation, PoolObservation
from autoscaler.observe.observer import Observer
from autoscaler.policy.model import Policy
from autoscaler.supervisord.slots import WorkerCounts


class UnknownPool(LookupError):
    """A ScaledObject names a pool no policy defines."""


class AskUnavailable(RuntimeError):
    """No trustworthy count for the pool now (the reason says why)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Tick:
    """One tick's result: what was observed and what decide wants."""

    at_s: float
    observation: Observation
    plan: Plan
    counts: dict[str, int]


def with_replicas(observation: Observation, replicas: Mapping[str, int]) -> Observation:
    """The Observer's observation with each pool's workers set to its replica count (all
    running: a pod that is starting or terminating is not seen), and no MemAvailable."""
    pools = {
        name: PoolObservation(
            pool=name,
            queues=obs.queues,
            work=obs.work,
            workers=WorkerCounts(running=replicas[name], starting=0, draining=0),
        )
        for name, obs in observation.pools.items()
        if name in replicas
    }
    return Observation(
        at_s=observation.at_s,
        interval_s=observation.interval_s,
        pools=pools,
        redis_error=observation.redis_error,
        supervisor_error=None,
        memory_available_mb=None,
    )


class Asker:
    """Ticks observe -> decide and answers what each pool asks for; see the module docstring.

    `tick()` runs on one thread (the ticker, or a test); `ask()` and `wait_for_tick()` may be
    called from any thread.
    """

    def __init__(
        self,
        *,
        policies: Mapping[str, Policy],
        observer: Observer,
        budget: MemoryBudget,
        interval_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policies = policies
        self.observer = observer
        self.budget = budget
        self.interval_s = interval_s
        self._clock = clock
        self._state = ControllerState()
        self._latest: Tick | None = None
        self._held: set[str] = set()  # pools without a count at the last tick
        self._ticked = threading.Condition()

    def replicas(self) -> dict[str, int]:
        """What each pool is taken to run now: the last count asked, else static_processes."""
        last = self._state.last_desired
        return {
            pool: last.get(pool, policy.static_processes) for pool, policy in self.policies.items()
        }

    def tick(self) -> Tick:
        observation = with_replicas(self.observer.observe(), self.replicas())
        plan, self._state = decide(
            observation, self.policies, self._state, now_s=observation.at_s, budget=self.budget
        )
        tick = Tick(at_s=observation.at_s, observation=observation, plan=plan, counts=plan.counts())
        held = {pool for pool, decision in plan.decisions.items() if decision.held}
        for pool in sorted(held - self._held):  # once per outage, not every tick
            logger.warning("{}: no count to serve: {}", pool, plan.decisions[pool].reason)
        for pool in sorted(self._held - held):
            logger.info("{}: serving counts again", pool)
        self._held = held
        with self._ticked:
            self._latest = tick
            self._ticked.notify_all()
        return tick

    def check_pool(self, pool: str) -> None:
        """Raise UnknownPool unless a policy defines `pool`."""
        if pool not in self.policies:
            known = ", ".join(sorted(self.policies)) or "none"
            raise UnknownPool(f"no policy defines pool {pool!r} (pools: {known})")

    def ask(self, pool: str) -> int:
        """The count decide wants for `pool` at the latest tick.

        Raises UnknownPool for a pool without a policy, AskUnavailable when there is no fresh
        decided count (no tick yet, the last one too old, or the pool's data missing)."""
        self.check_pool(pool)
        tick = self._latest
        if tick is None:
            raise AskUnavailable("no observation yet")
        age_s = self._clock() - tick.at_s
        if age_s > max(STALE_INTERVALS * self.interval_s, STALE_MIN_S):
            raise AskUnavailable(f"the last observation is {age_s:.0f}s old")
        decision = tick.plan.decisions[pool]
        if decision.held:
            raise AskUnavailable(f"{pool}: {decision.reason}")
        return tick.counts[pool]

    def wait_for_tick(self, after_s: float | None, timeout_s: float) -> Tick | None:
        """The latest tick once it is newer than `after_s` (None: any), or None on timeout."""
        with self._ticked:
            self._ticked.wait_for(
                lambda: (
                    self._latest is not None and (after_s is None or self._latest.at_s > after_s)
                ),
                timeout=timeout_s,
            )
            tick = self._latest
        if tick is None or (after_s is not None and tick.at_s <= after_s):
            return None
        return tick

    def run(self, stop: threading.Event) -> None:
        """Tick every interval from now until `stop` is set (the caller ticks once first, so
        that the first request finds a count); a failing tick is logged, not fatal."""
        ticker = Ticker(interval_s=self.interval_s)
        while not stop.wait(ticker.next_delay_s()):
            try:
                self.tick()
            except Exception:  # a bug must not end the ticks: the answers would go stale
                logger.exception("tick failed")
