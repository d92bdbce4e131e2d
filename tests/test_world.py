"""The world model: FIFO waits by hand, an independent multi-server computation, every job
served once, start-up delay, draining, priority order, and what the controller observes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pytest

from autoscaler.observe.observation import Observation
from autoscaler.policy.loader import PolicySet
from autoscaler.simulate.engine import (
    Controller,
    DecideController,
    SimulationResult,
    World,
    WorldSettings,
    simulate,
)
from autoscaler.traces.loader import Trace, parse_trace
from tests.sim_helpers import policy_set


class Scripted:
    """A controller whose counts are a function of the tick time; it records what it saw."""

    def __init__(self, counts: Callable[[float], Mapping[str, int]]) -> None:
        self.counts = counts
        self.seen: list[Observation] = []

    def choose(self, observation: Observation, world: World) -> Mapping[str, int]:
        self.seen.append(observation)
        return self.counts(observation.at_s)


def job_trace(rows: list[tuple[float, str, float]], policies: PolicySet) -> Trace:
    text = "arrival_s,queue,service_s\n" + "".join(f"{a!r},{q},{s!r}\n" for a, q, s in rows)
    return parse_trace(text, policies, name="t")


def run(
    trace: Trace,
    policies: PolicySet,
    controller: Controller | None = None,
    *,
    interval_s: float = 1.0,
    startup_s: float = 0.0,
    budget_mb: float = 100_000.0,
) -> SimulationResult:
    settings = WorldSettings(interval_s=interval_s, startup_s=startup_s, memory_budget_mb=budget_mb)
    chosen = controller or DecideController(policies.with_strategy("static"), settings.budget)
    return simulate(trace, policies, chosen, strategy="test", settings=settings)


def waits(result: SimulationResult, pool: str) -> list[float]:
    return [round(w, 9) for w in result.pools[pool].waits_s.tolist()]


@pytest.fixture
def one_pool(tmp_path: Path) -> Callable[..., PolicySet]:
    def make(workers: int, **overrides: object) -> PolicySet:
        return policy_set(
            tmp_path / f"p{workers}",
            {
                "mail": {
                    "min_processes": workers,
                    "static_processes": workers,
                    "max_processes": max(workers, 4),
                    **overrides,
                }
            },
        )

    return make


def test_fifo_waits_by_hand_one_worker(one_pool: Callable[..., PolicySet]) -> None:
    policies = one_pool(1)
    trace = job_trace([(0, "mail", 10), (1, "mail", 10), (2, "mail", 10)], policies)
    result = run(trace, policies)
    assert waits(result, "mail") == [0.0, 9.0, 18.0]
    assert result.end_s == 30.0
    assert result.pools["mail"].worker_seconds == 30.0
    assert result.pools["mail"].max_backlog == 2  # at t=2: jobs 2 and 3 wait


def test_fifo_waits_by_hand_two_workers(one_pool: Callable[..., PolicySet]) -> None:
    policies = one_pool(2)
    rows = [(0, "mail", 4), (0, "mail", 6), (0, "mail", 1), (3, "mail", 2), (4.5, "mail", 1)]
    result = run(job_trace(rows, policies), policies)
    # t=0: jobs 1 and 2 start; job 3 waits for the worker free at 4; job 4 (t=3) for the one
    # free at 5 (job 3 ends then); job 5 (t=4.5) for the one free at 6.
    assert waits(result, "mail") == [0.0, 0.0, 4.0, 2.0, 1.5]


def test_priority_queues_are_taken_in_order(tmp_path: Path) -> None:
    policies = policy_set(
        tmp_path,
        {"web": {"queues": ["high", "default"], "min_processes": 1, "static_processes": 1}},
    )
    rows = [(0, "default", 5), (1, "default", 1), (2, "high", 1)]
    result = run(job_trace(rows, policies), policies)
    # The worker frees at 5 and takes `high` (waited 3) before the older `default` job.
    assert sorted(waits(result, "web")) == [0.0, 3.0, 5.0]


def reference_fifo_waits(arrival: np.ndarray, service: np.ndarray, servers: int) -> np.ndarray:
    """An independent multi-server FIFO: each job, in arrival order, goes to the server that
    frees first (a plain list scan, no heap), starting when both it and the server are there."""
    free = [0.0] * servers
    out = np.empty(arrival.shape[0])
    for index, (a, s) in enumerate(zip(arrival.tolist(), service.tolist(), strict=True)):
        server = min(range(servers), key=free.__getitem__)
        start = max(a, free[server])
        free[server] = start + s
        out[index] = start - a
    return out


@pytest.mark.parametrize("servers", [1, 3, 7])
def test_fixed_count_matches_an_independent_fifo(
    one_pool: Callable[..., PolicySet], servers: int
) -> None:
    policies = one_pool(servers)
    rng = np.random.default_rng(servers)
    arrival = np.sort(rng.uniform(0, 600, 1500)).round(3)
    service = rng.exponential(0.9 * servers * 600 / 1500, 1500).round(3)
    trace = job_trace(
        [(a, "mail", s) for a, s in zip(arrival.tolist(), service.tolist(), strict=True)],
        policies,
    )
    result = run(trace, policies, interval_s=5.0)
    expected = reference_fifo_waits(arrival, service, servers)
    assert np.allclose(result.pools["mail"].waits_s, expected, atol=1e-9)
    assert result.pools["mail"].unserved == 0


def test_every_job_is_served_exactly_once_while_counts_change(tmp_path: Path) -> None:
    policies = policy_set(
        tmp_path,
        {
            "mail": {"min_processes": 0, "static_processes": 1, "max_processes": 5},
            "web": {"queues": ["high", "default"], "max_processes": 5},
        },
    )
    rng = np.random.default_rng(7)
    rows = [
        (float(a), str(q), float(s))
        for a, q, s in zip(
            rng.uniform(0, 300, 900).round(2),
            rng.choice(["mail", "high", "default"], 900),
            rng.exponential(2.0, 900).round(2),
            strict=True,
        )
    ]
    trace = job_trace(rows, policies)
    # Counts jump around every tick, down to zero workers at times; never below 1 at the end.
    script = rng.integers(0, 6, size=(1000, 2))
    controller = Scripted(
        lambda t: {
            "mail": int(script[int(t) % 1000][0]) if t < 300 else 3,
            "web": int(script[int(t) % 1000][1]) if t < 300 else 3,
        }
    )
    result = run(trace, policies, controller, interval_s=1.0, startup_s=0.5)
    total = sum(p.jobs for p in result.pools.values())
    assert total == 900
    assert all(p.unserved == 0 for p in result.pools.values())
    assert all(np.all(p.waits_s >= 0) for p in result.pools.values())
    works = [o.pools[name].work for o in controller.seen for name in o.pools]
    assert works[0] is None and works[1] is None  # the first tick has no interval yet
    assert controller.seen[0].interval_s == 0.0 and controller.seen[1].interval_s == 1.0
    assert sum(w.completions for w in works if w is not None) == total  # each finished once
    # Arrivals by flow balance from the second tick on: all but those at t <= 0.
    assert sum(w.arrivals or 0.0 for w in works if w is not None) == total
    last = controller.seen[-1]
    for seen in last.pools.values():
        assert seen.pending == 0 and seen.reserved == 0


def test_a_new_worker_serves_after_the_startup_delay(one_pool: Callable[..., PolicySet]) -> None:
    policies = one_pool(1)
    trace = job_trace([(0, "mail", 10), (0, "mail", 10)], policies)
    controller = Scripted(lambda t: {"mail": 2})
    result = run(trace, policies, controller, interval_s=1.0, startup_s=3.0)
    assert waits(result, "mail") == [0.0, 3.0]  # the second worker, added at 0, serves at 3
    counts = [(o.at_s, o.pools["mail"].workers) for o in controller.seen[:5]]
    # startsecs is 1 and the start-up 3 s: Supervisor shows STARTING until 3 s.
    assert [(t, w.running, w.starting) for t, w in counts if w is not None] == [
        (0.0, 1, 0),
        (1.0, 1, 1),
        (2.0, 1, 1),
        (3.0, 2, 0),
        (4.0, 2, 0),
    ]


def test_a_stopped_busy_worker_drains_and_holds_memory(
    one_pool: Callable[..., PolicySet],
) -> None:
    policies = one_pool(1, static_processes=2, memory_per_worker_mb=100)
    rows = [(0, "mail", 100), (0, "mail", 50), (6, "mail", 1)]
    controller = Scripted(lambda t: {"mail": 2 if t < 5 else 1})
    result = run(job_trace(rows, policies), policies, controller, interval_s=5.0)
    # At 5 the newest slot (running the 50 s job) is stopped: it finishes at 50 and exits;
    # the job arriving at 6 waits for the remaining worker (busy until 100).
    assert waits(result, "mail") == [0.0, 0.0, 94.0]
    at_10 = next(o for o in controller.seen if o.at_s == 10.0).pools["mail"].workers
    assert at_10 is not None and (at_10.running, at_10.draining) == (1, 1)
    at_50 = next(o for o in controller.seen if o.at_s == 50.0).pools["mail"].workers
    assert at_50 is not None and at_50.draining == 0
    assert result.peak_memory_mb == 200.0  # the draining worker counted until it left
    # Worker 1: 0-101 (its last job ends at 101); worker 2: 0-50 (drained).
    assert result.pools["mail"].worker_seconds == pytest.approx(101.0 + 50.0)
    assert result.pools["mail"].scale_events == 1


def test_an_idle_worker_stops_at_once(one_pool: Callable[..., PolicySet]) -> None:
    policies = one_pool(1, static_processes=3)
    controller = Scripted(lambda t: {"mail": 1})
    result = run(job_trace([(20, "mail", 1)], policies), policies, controller, interval_s=5.0)
    # Two idle workers leave at 0; the third runs until the job ends at 21.
    assert result.pools["mail"].worker_seconds == pytest.approx(21.0)


def test_the_observation_is_what_the_sampler_would_show(tmp_path: Path) -> None:
    policies = policy_set(
        tmp_path,
        {"web": {"queues": ["high", "default"], "min_processes": 1, "static_processes": 1}},
    )
    rows = [(0, "default", 4), (1, "default", 2), (1.5, "high", 1), (2, "high", 1)]
    controller = Scripted(lambda t: {"web": 1})
    run(job_trace(rows, policies), policies, controller, interval_s=3.0)
    at_3 = controller.seen[1]
    assert at_3.at_s == 3.0 and at_3.interval_s == 3.0
    web = at_3.pools["web"]
    assert web.queues is not None
    high, default = web.queues
    assert (high.queue, high.pending, high.reserved, high.oldest_wait_s) == ("high", 2, 0, 1.5)
    assert high.oldest_wait_source == "createdAt"
    assert (default.queue, default.pending, default.reserved) == ("default", 1, 1)
    assert web.work is not None and web.work.completions == 0 and web.work.busy_workers == 1
    at_6 = controller.seen[2].pools["web"]
    # By 6: the 4 s job (0-4) and the high job at 1.5 (4-5) are done; high at 2 runs 5-6.
    assert at_6.work is not None and at_6.work.completions == 3
    assert at_6.work.run_time_mean_s == pytest.approx(2.0)
    assert at_6.work.source == "logs"
    assert at_6.queues is not None and at_6.queues[0].oldest_wait_source == "empty"


def test_scale_down_stops_idle_workers_first(one_pool: Callable[..., PolicySet]) -> None:
    policies = one_pool(1, static_processes=2)
    rows = [(0, "mail", 1), (0, "mail", 100), (6, "mail", 1)]
    controller = Scripted(lambda t: {"mail": 2 if t < 5 else 1})
    result = run(job_trace(rows, policies), policies, controller, interval_s=5.0)
    # At 5 slot 0 is idle and slot 1 (the higher index) busy: the idle one stops, as the
    # actuator does, so the job at 6 waits for slot 1.
    assert waits(result, "mail") == [0.0, 0.0, 94.0]
    assert result.pools["mail"].worker_seconds == pytest.approx(5.0 + 101.0)
    at_10 = next(o for o in controller.seen if o.at_s == 10.0).pools["mail"].workers
    assert at_10 is not None and (at_10.running, at_10.draining) == (1, 0)


def test_the_fast_builders_make_what_the_constructors_make() -> None:
    from autoscaler.laravel.queue_sample import QueueSample
    from autoscaler.observe.observation import Observation, PoolObservation, WorkSample
    from autoscaler.simulate import obs_builders
    from autoscaler.supervisord.slots import WorkerCounts

    assert obs_builders.FAST, (
        "observation.py changed: teach autoscaler/simulate/obs_builders.py the new fields "
        "(until then the simulator falls back to the slower constructors)"
    )
    sample = obs_builders.queue_sample("q", 2, 1, 3.5, "createdAt")
    assert sample == QueueSample(
        queue="q",
        pending=2,
        reserved=1,
        delayed=0,
        delayed_due=0,
        oldest_wait_s=3.5,
        oldest_wait_source="createdAt",
    )
    work = obs_builders.work_sample(4, 1.5, 2.5, 3.0, 6.0)
    assert work == WorkSample(
        completions=4,
        failures=0,
        run_time_mean_s=1.5,
        run_time_p95_s=2.5,
        busy_workers=3.0,
        source="logs",
        arrivals=6.0,
    )
    counts = WorkerCounts(running=1, starting=0, draining=0)
    pool = obs_builders.pool_observation("p", (sample,), work, counts)
    assert pool == PoolObservation(pool="p", queues=(sample,), work=work, workers=counts)
    assert obs_builders.observation(5.0, 5.0, {"p": pool}) == Observation(
        at_s=5.0, interval_s=5.0, pools={"p": pool}
    )
