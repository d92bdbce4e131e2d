"""Synthetic traces for named situations on the seed's seven pools, from a fixed seed.

Each scenario is a job trace: Poisson arrivals at piecewise-constant rates per queue, run
times drawn from a lognormal around the queue's typical run time (the seed policies'
`expected_run_time_s`) and kept below the worker's `--timeout`, as Laravel would kill a
longer job. The same name and seed always give the same rows.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from autoscaler.traces.writer import JobRows, job_rows

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class QueueProfile:
    """A queue of the seed: its usual afternoon rate and its jobs' run times."""

    rate_per_s: float
    mean_run_s: float
    cv: float  # run-time spread: standard deviation / mean
    timeout_s: float  # the worker's --timeout: no job runs longer


# The seed's queues (policies/*.toml): typical run times and timeouts from the policies; the
# afternoon rates keep every pool busy but within its hand-picked static count.
SEED_QUEUES: dict[str, QueueProfile] = {
    "gift_card_exchange": QueueProfile(0.25, 8.0, 0.5, 300),
    "card_query": QueueProfile(0.4, 2.0, 0.5, 60),
    "wechat-message": QueueProfile(1.0, 0.5, 0.4, 60),
    "forecast_crawler": QueueProfile(1 / 60, 45.0, 0.5, 180),
    "bill_processing": QueueProfile(1 / 60, 20.0, 0.6, 120),
    "mail": QueueProfile(0.1, 2.0, 0.5, 60),
    "high": QueueProfile(0.05, 1.0, 0.5, 90),
    "default": QueueProfile(0.3, 1.0, 0.6, 90),
}
QUEUES = list(SEED_QUEUES)
TIMEOUT_SHARE = 0.95  # run times stay below this share of the worker's --timeout


@dataclass(frozen=True, slots=True)
class Phase:
    """From `start_s` to `end_s`, `queue` gets `factor` times its afternoon rate."""

    queue: str
    start_s: float
    end_s: float
    factor: float


@dataclass(frozen=True, slots=True)
class Batch:
    """At `at_s`, a scheduler enqueues `jobs` jobs on `queue` within `spread_s` seconds."""

    queue: str
    at_s: float
    jobs: int
    spread_s: float = 1.0


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    duration_s: float
    base_factor: float  # every queue's afternoon rate is multiplied by this...
    phases: tuple[Phase, ...] = ()  # ...and, within a phase, by its factor instead
    batches: tuple[Batch, ...] = ()


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            name="flash_burst",
            description="2 h of an ordinary afternoon; at 30 min a promotion sends 5x the "
            "usual gift-card exchanges for 10 minutes (about 750 jobs, 10 workers' worth).",
            duration_s=7200,
            base_factor=1.0,
            phases=(Phase("gift_card_exchange", 1800, 2400, 5.0),),
        ),
        Scenario(
            name="quiet_night",
            description="6 h of night: every queue at 5 % of its afternoon rate.",
            duration_s=6 * 3600,
            base_factor=0.05,
        ),
        Scenario(
            name="crawler_backlog",
            description="4 h of an ordinary afternoon; a minute past every hour a scheduler "
            "enqueues 30 forecast crawls at once (22.5 worker-minutes at 45 s a crawl: 2 "
            "workers need 11 minutes, 6 about 4).",
            duration_s=4 * 3600,
            base_factor=1.0,
            batches=tuple(Batch("forecast_crawler", h * 3600.0 + 60.0, 30) for h in range(4)),
        ),
        Scenario(
            name="all_busy",
            description="1 h; from 10 to 40 min every pool is busy at once (3-5x its afternoon "
            "rate): together they keep about 16 workers busy and need some 22 to meet their "
            "SLOs, more than the 4608 MB budget holds (18 at 256 MB), so the budget decides "
            "by priority.",
            duration_s=3600,
            base_factor=1.0,
            phases=tuple(
                Phase(queue, 600, 2400, factor)
                for queue, factor in (
                    ("gift_card_exchange", 3.0),
                    ("card_query", 3.0),
                    ("wechat-message", 4.0),
                    ("forecast_crawler", 3.0),
                    ("bill_processing", 3.0),
                    ("mail", 4.0),
                    ("high", 4.0),
                    ("default", 5.0),
                )
            ),
        ),
    )
}

DEFAULT_SEED = 20240601


def lognormal_run_times(
    rng: np.random.Generator, count: int, *, mean_s: float, cv: float, max_s: float
) -> FloatArray:
    """Lognormal run times with mean `mean_s` and spread `cv` (standard deviation / mean),
    none above `max_s`."""
    sigma2 = float(np.log1p(cv**2))
    mu = float(np.log(mean_s)) - sigma2 / 2
    return np.minimum(rng.lognormal(mu, np.sqrt(sigma2), count), max_s)


def poisson_arrivals(
    rng: np.random.Generator, rate_per_s: float, start_s: float, end_s: float
) -> FloatArray:
    """Poisson arrivals at a constant rate over [start_s, end_s): a Poisson count of jobs,
    each at a uniform time, sorted."""
    if rate_per_s <= 0 or end_s <= start_s:
        return np.zeros(0)
    count = int(rng.poisson(rate_per_s * (end_s - start_s)))
    return np.sort(rng.uniform(start_s, end_s, count))


def _rate_pieces(scenario: Scenario, queue: str) -> list[tuple[float, float, float]]:
    """(start, end, factor) covering the scenario for one queue."""
    cuts = {0.0, scenario.duration_s}
    phases = [p for p in scenario.phases if p.queue == queue]
    for phase in phases:
        cuts.update((phase.start_s, phase.end_s))
    edges = sorted(c for c in cuts if 0.0 <= c <= scenario.duration_s)
    pieces = []
    for start, end in itertools.pairwise(edges):
        factor = scenario.base_factor
        for phase in phases:
            if phase.start_s <= start and end <= phase.end_s:
                factor = phase.factor
        pieces.append((start, end, factor))
    return pieces


def generate(name: str, *, seed: int = DEFAULT_SEED) -> JobRows:
    """The named scenario's jobs; KeyError for an unknown name."""
    scenario = SCENARIOS[name]
    rng = np.random.default_rng(seed)
    parts = []
    for queue in QUEUES:
        profile = SEED_QUEUES[queue]
        pieces = [
            poisson_arrivals(rng, profile.rate_per_s * factor, start, end)
            for start, end, factor in _rate_pieces(scenario, queue)
        ]
        for batch in scenario.batches:
            if batch.queue == queue:
                pieces.append(
                    np.sort(rng.uniform(batch.at_s, batch.at_s + batch.spread_s, batch.jobs))
                )
        times = np.sort(np.concatenate(pieces)) if pieces else np.zeros(0)
        run_s = lognormal_run_times(
            rng,
            times.shape[0],
            mean_s=profile.mean_run_s,
            cv=profile.cv,
            max_s=TIMEOUT_SHARE * profile.timeout_s,
        )
        parts.append((queue, times, run_s))
    comments = [
        f"Synthetic scenario `{name}` (autoscaler trace generate {name} --seed {seed}).",
        scenario.description,
        "Poisson arrivals at piecewise-constant rates; lognormal run times around each "
        "queue's typical run time, kept below its --timeout.",
        "Afternoon rates per s: "
        + ", ".join(f"{q} {p.rate_per_s:.3g}" for q, p in SEED_QUEUES.items())
        + ".",
    ]
    return job_rows(comments, parts)
