"""The fleet's observation, from the leader's own sample of the (shared) queues and the live
hosts' heartbeats (pure).

- queues: the leader's own sample; every host reads the same Redis lists.
- workers: summed over the hosts given (the leader leaves out those that cannot read their
  supervisord: they hold); unknown if one of them lacks a pool (decide then holds it).
- work: from the workers' logs, completions, failures and busy workers add up over hosts, and
  the leader's flow balance is corrected by the others' completions. A host that counted from
  Redis (its logs unreadable) saw the whole fleet's reserved jobs: its sample is used alone.
- memory: the budget is the sum of the hosts' budgets, MemAvailable the sum of theirs.
"""

from __future__ import annotations

from collections.abc import Sequence

from autoscaler.decide.plan import MemoryBudget
from autoscaler.fleet.heartbeat import Heartbeat
from autoscaler.observe.observation import Observation, PoolObservation, WorkSample
from autoscaler.supervisord.slots import WorkerCounts


def fleet_budget(hosts: Sequence[Heartbeat]) -> MemoryBudget:
    return MemoryBudget(
        budget_mb=sum(h.memory_budget_mb for h in hosts),
        reserve_mb=sum(h.memory_reserve_mb for h in hosts),
    )


def fleet_observation(own: Observation, hosts: Sequence[Heartbeat]) -> Observation:
    pools: dict[str, PoolObservation] = {}
    for pool, obs in own.pools.items():
        reports = [h.pools.get(pool) for h in hosts]
        counts = [r.workers if r is not None else None for r in reports]
        works = [r.work if r is not None else None for r in reports]
        pools[pool] = PoolObservation(
            pool=pool,
            queues=obs.queues,
            work=_work(obs.work, works),
            workers=_workers(counts),
        )
    available = [h.memory_available_mb for h in hosts if h.memory_available_mb is not None]
    unseen = any(p.workers is None for p in pools.values())
    return Observation(
        at_s=own.at_s,
        interval_s=own.interval_s,
        pools=pools,
        redis_error=own.redis_error,
        supervisor_error="a live host's supervisord is unavailable" if unseen else None,
        memory_available_mb=sum(available) if len(available) == len(hosts) else None,
    )


def _workers(counts: Sequence[WorkerCounts | None]) -> WorkerCounts | None:
    if not counts or any(c is None for c in counts):
        return None
    total = WorkerCounts(running=0, starting=0, draining=0, failed=0)
    for c in counts:
        assert c is not None
        total.running += c.running
        total.starting += c.starting
        total.draining += c.draining
        total.failed += c.failed
        total.crashing += c.crashing  # decide holds a pool whose new slots crash, fleet-wide too
    return total


def _work(own: WorkSample | None, works: Sequence[WorkSample | None]) -> WorkSample | None:
    if own is None:
        return None
    if own.source == "redis":
        return own  # counted from Redis: already the fleet's
    if any(w is None or w.source != "logs" for w in works):
        redis_side = [w for w in works if w is not None and w.source == "redis"]
        return redis_side[0] if redis_side else None
    logs = [w for w in works if w is not None]
    completions = sum(w.completions for w in logs)
    timed = [(w.run_time_mean_s, w.completions) for w in logs if w.run_time_mean_s is not None]
    done = sum(n for _, n in timed)
    mean = sum(m * n for m, n in timed) / done if done else None
    p95s = [w.run_time_p95_s for w in logs if w.run_time_p95_s is not None]
    busy = [w.busy_workers for w in logs if w.busy_workers is not None]
    return WorkSample(
        completions=completions,
        failures=sum(w.failures for w in logs),
        run_time_mean_s=mean,
        run_time_p95_s=max(p95s) if p95s else None,
        busy_workers=sum(busy) if len(busy) == len(logs) else None,
        source="logs",
        # own.arrivals = own completions + the change in the queues; the others' completions
        # also left the queues.
        arrivals=None if own.arrivals is None else own.arrivals - own.completions + completions,
    )
