"""The daemon's recycling of leaking or old workers, once per tick (docs/lifecycle.md, "Worker
lifecycle").

Per pool with `[lifecycle]` limits: pick a worker past them (decide/recycle.py) and ask the
actuator's Replacer to replace it surge-first, only when the pool has no replacement or restart
in progress and one more worker fits the memory budget this tick. A failed replacement (the new
worker did not start) holds the pool's recycling back for FAILURE_HOLD_S. A pool recycling more
than `alert_recycles_per_hour` workers in an hour raises a `recycling` alert: a leak to fix.

The same budget gates the other surge-first replacements: the next step of a rolling restart
(`autoscaler restart`) and the replacement of workers that run an older configuration (a
policy edit, act/outdated.py). Each tick the Replacer may start one per pool only while one
more worker fits what is left after the recycles (`may_surge`); otherwise it waits, and says
so once. A new configuration that does not start raises `config_change_failed`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping

from loguru import logger

from autoscaler.act.retire import Replacer
from autoscaler.act.surge_room import SurgeGate
from autoscaler.daemon.alerts import Alert, Alerter, AlertKind
from autoscaler.daemon.metrics import Metrics
from autoscaler.decide.core import worker_mb
from autoscaler.decide.plan import Plan
from autoscaler.decide.recycle import recycle_candidate
from autoscaler.decide.strategies.base import constants
from autoscaler.observe.observation import Observation
from autoscaler.policy.model import Policy

FAILURE_HOLD_S = 600.0
HOUR_S = 3600.0


class Recycler:
    def __init__(
        self,
        *,
        replacer: Replacer,
        alerter: Alerter,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.replacer = replacer
        self.alerter = alerter
        self.metrics = metrics
        self._clock = clock
        self._recycled: dict[str, deque[float]] = {}  # pool -> when each recycle was asked
        self._held_until: dict[str, float] = {}  # pool -> no recycling before (a failure)
        self._no_room: set[str] = set()  # pools told "no room" (logged once)
        self._no_room_surge: set[str] = set()  # likewise, for restarts and configuration changes
        # pool -> the replacement waiting for memory room this tick, and why (for status)
        self.waiting_for_room: dict[str, str] = {}

    def tick(self, observation: Observation, plan: Plan, policies: Mapping[str, Policy]) -> None:
        """Ask for at most one replacement per pool, and say how many configuration surges
        fit; call before the tick's apply."""
        room_mb = plan.memory_limit_mb - plan.memory_peak_mb
        self.waiting_for_room = {}
        if observation.supervisor_error is None and observation.slots:
            room_mb = self._recycle(observation, policies, room_mb)
        self.replacer.may_surge = self._surge_room(observation, policies, room_mb)

    def _recycle(
        self, observation: Observation, policies: Mapping[str, Policy], room_mb: float
    ) -> float:
        """Ask for the recycles that fit; returns the room left."""
        now = self._clock()
        busy = self.replacer.busy_pools()
        for pool, policy in policies.items():
            limits = policy.lifecycle
            if limits.max_rss_mb is None and limits.max_age_s is None:
                continue
            if pool in busy or self._held_until.get(pool, 0.0) > now:
                continue
            choice = recycle_candidate(observation.slots, pool, limits)
            if choice is None:
                continue
            obs = observation.pools.get(pool)
            size_mb = worker_mb(constants(policy), obs.memory if obs is not None else None)
            if size_mb > room_mb + 1e-9:
                self.waiting_for_room[pool] = (
                    f"recycling {choice.slot} ({choice.reason}): one more worker "
                    f"({size_mb:.0f} MB) does not fit the memory budget "
                    f"({max(0.0, room_mb):.0f} MB free)"
                )
                if pool not in self._no_room:
                    logger.warning(
                        "{}: {} should be recycled ({}) but one more worker ({:.0f} MB) does "
                        "not fit the memory budget ({:.0f} MB free): waiting",
                        pool, choice.slot, choice.reason, size_mb, max(0.0, room_mb),
                    )  # fmt: skip
                    self._no_room.add(pool)
                continue
            self._no_room.discard(pool)
            room_mb -= size_mb
            self.replacer.request(pool=pool, slot=choice.slot, pid=choice.pid, reason=choice.reason)
            self._count(pool, policy, now, choice.reason)
        return room_mb

    def _surge_room(
        self, observation: Observation, policies: Mapping[str, Policy], room_mb: float
    ) -> SurgeGate:
        """may_surge for this tick's apply: each yes takes one worker's memory off the room."""
        left_mb = room_mb

        def fits(pool: str, what: str) -> bool:
            nonlocal left_mb
            policy = policies.get(pool)
            if policy is None:
                return False
            obs = observation.pools.get(pool)
            size_mb = worker_mb(constants(policy), obs.memory if obs is not None else None)
            if size_mb > left_mb + 1e-9:
                self.waiting_for_room.setdefault(
                    pool,
                    f"{what}: one more worker ({size_mb:.0f} MB) does not fit the memory "
                    f"budget ({max(0.0, left_mb):.0f} MB free)",
                )
                if pool not in self._no_room_surge:
                    logger.warning(
                        "{}: {}: replacing a worker surge-first needs one more worker ({:.0f} MB) "
                        "and the memory budget has {:.0f} MB free: waiting (the old worker "
                        "keeps running meanwhile)",
                        pool, what, size_mb, max(0.0, left_mb),
                    )  # fmt: skip
                    self._no_room_surge.add(pool)
                return False
            self._no_room_surge.discard(pool)
            left_mb -= size_mb
            return True

        return fits

    def after_apply(self) -> None:
        """Hold back the pools whose replacement failed in this apply."""
        now = self._clock()
        for pool, why in self.replacer.failures.items():
            self._held_until[pool] = now + FAILURE_HOLD_S
            config = pool in self.replacer.config_failures
            kind: AlertKind = "config_change_failed" if config else "workers_fatal"
            self.alerter.raise_(Alert(kind=kind, subject=pool, message=why, at_s=now))

    def _count(self, pool: str, policy: Policy, now_s: float, reason: str) -> None:
        times = self._recycled.setdefault(pool, deque())
        times.append(now_s)
        while times and times[0] < now_s - HOUR_S:
            times.popleft()
        if self.metrics is not None:
            kind = "memory" if reason.startswith("RSS") else "age"
            self.metrics.recycles.labels(pool, kind).inc()
        limit = policy.lifecycle.alert_recycles_per_hour
        if len(times) > limit:
            self.alerter.raise_(
                Alert(
                    kind="recycling",
                    subject=pool,
                    message=f"{len(times)} workers recycled in the last hour (more than "
                    f"{limit}); the last: {reason}. A worker that keeps leaking is a bug to fix "
                    "in the job code",
                    at_s=now_s,
                )
            )
