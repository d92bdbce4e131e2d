"""One host's part in the fleet, every tick: beat, lead if it holds the lease, apply its share.

The controller hands the member its local observation instead of calling decide itself
(`plan`). The member:
1. writes this host's heartbeat (and, as leader, reads every live host's);
2. as leader (it held the lease at its last renewal): decides fleet-wide with decide, splits
   each pool's count over the live hosts (split.py) and appends the assignment, with its epoch,
   to the stream; then renews the lease (a follower tries to take a free one instead, and
   leads at once when it does);
3. reads the new assignment entries, keeps the newest admitted by the fence, and returns a plan
   of this host's counts from it. Without a fresh assignment (no leader, Redis down, this host
   not in it yet), every pool holds the count it has: nothing is scaled on missing data.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, cast

import redis
from loguru import logger

from autoscaler.decide.core import STALE_INTERVALS, STALE_MIN_S, decide
from autoscaler.decide.plan import ControllerState, MemoryBudget, Plan, PoolDecision
from autoscaler.fleet.assignment import Assignment, AssignmentReader, Fence, publish
from autoscaler.fleet.combine import fleet_budget, fleet_observation
from autoscaler.fleet.heartbeat import Heartbeat, heartbeat_of
from autoscaler.fleet.keys import TTL_TICKS, FleetKeys
from autoscaler.fleet.lease import Lease, LeaseView
from autoscaler.fleet.split import HostRoom, PoolNeed, split
from autoscaler.laravel.sampler import connect_redis
from autoscaler.observe.observation import Observation
from autoscaler.policy.model import Policy
from autoscaler.settings import Settings


class FleetMember:
    def __init__(
        self,
        *,
        client: redis.Redis,
        fleet: str,
        host: str,
        interval_s: float,
        may_lead: bool = True,
    ) -> None:
        self.client = client
        self.keys = FleetKeys(fleet)
        self.fleet = fleet
        self.host = host
        self.interval_s = interval_s
        self.may_lead = may_lead  # False for a dry run: it would drive the other hosts
        self.ttl_ms = max(1, round(TTL_TICKS * interval_s * 1000))
        self.lease = Lease(client=client, keys=self.keys, host=host, ttl_ms=self.ttl_ms)
        self.fence = Fence()
        self.reader = AssignmentReader(client=client, keys=self.keys, fence=self.fence)
        self.leading_epoch: int | None = None  # the epoch of the lease held at the last renewal
        self.leader: str | None = None
        self._fleet_state = ControllerState()  # decide's memory, fleet-wide, while leading
        self._last_split: dict[str, dict[str, int]] = {}
        self._redis_error: str | None = None
        self.ops = 0  # Redis commands sent (the benchmark counts them)

    @classmethod
    def from_settings(cls, settings: Settings) -> FleetMember:
        assert settings.fleet is not None and settings.host_id is not None  # see Settings
        return cls(
            client=connect_redis(settings.redis_url, timeout_s=settings.redis_timeout_s),
            fleet=settings.fleet,
            host=settings.host_id,
            interval_s=settings.interval_s,
            may_lead=not settings.dry_run,
        )

    # -- the seam: the controller calls this instead of decide ---------------------------
    def plan(
        self,
        observation: Observation,
        policies: Mapping[str, Policy],
        state: ControllerState,
        *,
        budget: MemoryBudget,
    ) -> tuple[Plan, ControllerState]:
        try:
            self._step(observation, policies, budget)
            if self._redis_error is not None:
                logger.info("fleet {}: Redis is back", self.fleet)
                self._redis_error = None
        except redis.RedisError as exc:
            self.leading_epoch = None  # cannot renew: act as a follower until it can
            if self._redis_error is None:
                logger.error("fleet {}: Redis unavailable, holding every count: {}", self.fleet,
                             exc)  # fmt: skip
            self._redis_error = str(exc) or type(exc).__name__
        return self._local_plan(observation, policies, state, budget)

    def host_policies(self, policies: Mapping[str, Policy]) -> Mapping[str, Policy]:
        """min and static describe the fleet: one host may run none of a pool."""
        return {
            pool: policy.model_copy(update={"min_processes": 0, "static_processes": 0})
            for pool, policy in policies.items()
        }

    def close(self) -> None:
        """Stopping: give the lease up so that another host leads at its next tick."""
        if self.leading_epoch is None:
            return
        with contextlib.suppress(redis.RedisError):  # else it expires within the TTL
            self.lease.release()

    # -- one tick ------------------------------------------------------------------------
    def _step(
        self, observation: Observation, policies: Mapping[str, Policy], budget: MemoryBudget
    ) -> None:
        mine = self._mine(observation)
        beat = heartbeat_of(
            observation, host=self.host, budget=budget, epoch_seen=self.fence.epoch_seen,
            assigned=mine,
        )  # fmt: skip
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(self.keys.hosts, self.host, beat.to_json())
        pipe.set(self.keys.alive(self.host), self.fence.epoch_seen, px=self.ttl_ms)
        if self.leading_epoch is not None:
            pipe.hgetall(self.keys.hosts)
            self.ops += 3
            _, _, beats = pipe.execute()
            self._lead(observation, policies, beats, renew=True)
            return
        if self.may_lead:
            self.lease.queue_keep(pipe, epoch_floor=self.fence.epoch_seen)
        else:
            pipe.get(self.keys.lease)
        self.reader.queue_read(pipe)
        self.ops += 4
        _, _, reply, entries = pipe.execute()
        view = LeaseView.of(reply) if self.may_lead else LeaseView.observed(reply)
        self._follow(view)
        self._admit(entries)
        if view.acquired:
            logger.warning("fleet {}: {} leads now (epoch {})", self.fleet, self.host, view.epoch)
            self.leading_epoch = view.epoch
            self._fleet_state = ControllerState(last_desired=self._fleet_totals())
            self._last_split = dict(self.reader.current.hosts) if self.reader.current else {}
            beats = cast(dict[bytes, bytes], self.client.hgetall(self.keys.hosts))
            self.ops += 1
            self._lead(observation, policies, beats, renew=False)

    def _lead(
        self,
        observation: Observation,
        policies: Mapping[str, Policy],
        beats: dict[bytes, bytes],
        *,
        renew: bool,
    ) -> None:
        assert self.leading_epoch is not None
        hosts = self._live(beats)
        assignment = self._assign(observation, policies, hosts)
        pipe = self.client.pipeline(transaction=False)
        publish(pipe, self.keys, assignment)
        if renew:
            self.lease.queue_keep(pipe, epoch_floor=self.fence.epoch_seen)
        self.reader.queue_read(pipe)
        self.ops += 3 if renew else 2
        results = pipe.execute()
        if renew:
            view = LeaseView.of(results[1])
            if not view.held:
                logger.warning("fleet {}: lost the lease to {} (epoch {})", self.fleet,
                               view.leader, view.epoch)  # fmt: skip
                self.leading_epoch = None
            self._follow(view)
        self._admit(results[-1])
        newest = max((h.epoch_seen for h in hosts), default=0)
        if self.leading_epoch is not None and newest > self.leading_epoch:
            # Only after a Redis that lost its data: a host saw a later leader than the
            # epoch this lease got. Its fence ignores us; a new lease gets a higher epoch.
            logger.warning("fleet {}: a host has seen epoch {} > ours ({}): stepping down",
                           self.fleet, newest, self.leading_epoch)  # fmt: skip
            self.lease.release()
            self.leading_epoch = None

    def _assign(
        self, observation: Observation, policies: Mapping[str, Policy], hosts: list[Heartbeat]
    ) -> Assignment:
        """decide over the fleet's observation, then the split over the live hosts."""
        assert self.leading_epoch is not None
        # A host that cannot read its supervisord can apply nothing: it holds what it runs,
        # and the others are decided and split as the fleet (none of its workers counted).
        hosts = [h for h in hosts if all(r.workers is not None for r in h.pools.values())]
        fleet_obs = fleet_observation(observation, hosts)
        previous = dict(self._fleet_state.last_desired)
        plan, self._fleet_state = decide(
            fleet_obs, policies, self._fleet_state, now_s=fleet_obs.at_s,
            budget=fleet_budget(hosts),
        )  # fmt: skip
        counts = plan.counts()
        for pool, count in counts.items():
            if previous.get(pool) != count:
                logger.bind(pool=pool, fleet_old=previous.get(pool), fleet_new=count).info(
                    "fleet {}: {} {} -> {}: {}", self.fleet, pool, previous.get(pool, "?"),
                    count, plan.decisions[pool].reason,
                )  # fmt: skip
        memory = {pool: p.memory_per_worker_mb for pool, p in policies.items()}
        rooms = [
            HostRoom(
                host=h.host,
                limit_mb=h.limit_mb(memory),
                draining_mb=sum(
                    r.workers.draining * memory.get(pool, 0.0)
                    for pool, r in h.pools.items()
                    if r.workers is not None
                ),
                current=self._last_split.get(h.host)
                or {
                    pool: r.workers.current for pool, r in h.pools.items() if r.workers is not None
                },
            )
            for h in hosts
        ]
        needs = [
            PoolNeed(pool=pool, count=count, memory_mb=memory[pool],
                     priority=policies[pool].priority)
            for pool, count in counts.items()
        ]  # fmt: skip
        result = split(needs, rooms)
        if result.unplaced:
            logger.warning("fleet {}: no host has room for {}", self.fleet, result.unplaced)
        self._last_split = result.hosts
        return Assignment(
            epoch=self.leading_epoch, leader=self.host, at_s=fleet_obs.at_s, hosts=result.hosts
        )

    def _live(self, beats: dict[bytes, bytes]) -> list[Heartbeat]:
        """The heartbeats whose liveness key has not expired (one MGET)."""
        hosts = sorted(beats)
        if not hosts:
            return []
        alive = self.client.mget([self.keys.alive(h.decode()) for h in hosts])
        self.ops += 1
        live = []
        for name, flag in zip(hosts, alive, strict=True):
            if flag is None:
                continue
            try:
                live.append(Heartbeat.from_json(beats[name]))
            except (ValueError, KeyError, TypeError) as exc:
                logger.error("fleet {}: unreadable heartbeat of {}: {}", self.fleet, name, exc)
        return live

    def _follow(self, view: LeaseView) -> None:
        self.fence.see(view.epoch)
        leader = view.leader or None  # a host that may not lead reads no lease as ""
        if leader != self.leader:
            if leader is not None:
                logger.info("fleet {}: leader {} (epoch {})", self.fleet, leader, view.epoch)
            self.leader = leader

    def _admit(self, entries: list[Any]) -> None:
        previous = self.reader.current
        for assignment in self.reader.take(entries):
            if previous is None or (previous.leader, previous.epoch) != (
                assignment.leader, assignment.epoch,
            ):  # fmt: skip
                logger.info("fleet {}: following {} (epoch {})", self.fleet,
                            assignment.leader, assignment.epoch)  # fmt: skip
            previous = assignment
        for stale in self.fence.ignored:
            logger.warning(
                "fleet {}: ignored an assignment of epoch {} from {} (newest seen {})",
                self.fleet, stale.epoch, stale.leader, self.fence.epoch_seen,
            )  # fmt: skip
        self.fence.ignored.clear()

    def _fleet_totals(self) -> dict[str, int]:
        current = self.reader.current
        totals: dict[str, int] = {}
        if current is not None:
            for counts in current.hosts.values():
                for pool, n in counts.items():
                    totals[pool] = totals.get(pool, 0) + n
        return totals

    # -- this host's plan ----------------------------------------------------------------
    def _fresh(self, observation: Observation) -> bool:
        current = self.reader.current
        if current is None or self._redis_error is not None:
            return False
        window_s = max(STALE_INTERVALS * observation.interval_s, STALE_MIN_S)
        return abs(observation.at_s - current.at_s) <= window_s

    def _mine(self, observation: Observation) -> dict[str, int] | None:
        """This host's counts in the newest admitted assignment, if it is fresh."""
        current = self.reader.current
        if current is None or not self._fresh(observation):
            return None
        return current.hosts.get(self.host)

    def _local_plan(
        self,
        observation: Observation,
        policies: Mapping[str, Policy],
        state: ControllerState,
        budget: MemoryBudget,
    ) -> tuple[Plan, ControllerState]:
        current = self.reader.current
        mine = self._mine(observation)
        decisions: dict[str, PoolDecision] = {}
        for pool in policies:
            obs = observation.pools.get(pool)
            workers = obs.workers if obs is not None else None
            now = workers.current if workers is not None else None
            if workers is not None and mine is not None and pool in mine and current is not None:
                count = mine[pool]
                total = sum(h.get(pool, 0) for h in current.hosts.values())
                reason = (f"fleet {self.fleet}: {current.leader} (epoch {current.epoch}) "
                          f"assigns {count} of {total}")  # fmt: skip
                held = False
            else:
                count = state.last_desired.get(pool, now or 0)
                why = "workers unknown" if workers is None else self._why_no_assignment(mine)
                reason = f"fleet {self.fleet}: {why}: hold {count}"
                held = True
            decisions[pool] = PoolDecision(
                pool=pool, strategy="fleet", current=now, desired=count, reason=reason,
                held=held, wanted=count,
            )  # fmt: skip
        memory = {pool: p.memory_per_worker_mb for pool, p in policies.items()}
        draining_mb = in_use_mb = 0.0
        for pool, obs in observation.pools.items():
            if obs.workers is not None:
                in_use_mb += (obs.workers.current + obs.workers.draining) * memory.get(pool, 0.0)
                draining_mb += obs.workers.draining * memory.get(pool, 0.0)
        planned_mb = sum(d.desired * memory[p] for p, d in decisions.items()) + draining_mb
        plan = Plan(
            at_s=observation.at_s,
            decisions=decisions,
            memory_limit_mb=budget.limit_mb(
                available_mb=observation.memory_available_mb, managed_in_use_mb=in_use_mb
            ),
            memory_planned_mb=planned_mb,
            memory_peak_mb=planned_mb,
        )
        return plan, ControllerState(last_desired=plan.counts())

    def _why_no_assignment(self, mine: dict[str, int] | None) -> str:
        if self._redis_error is not None:
            return "Redis unavailable"
        if self.reader.current is None:
            return "no assignment yet"
        if mine is None and self.host in self.reader.current.hosts:
            return "the last assignment is stale (no leader)"
        return "not in the assignment yet"
