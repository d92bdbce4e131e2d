"""The verdict rule and the changed-field listing of `autoscaler diff`, as scenario tables."""

from __future__ import annotations

import pytest

from autoscaler.policy.fields import changed_fields
from autoscaler.policy.model import Policy
from autoscaler.review.diff import trace_labels
from autoscaler.review.verdict import (
    PoolMetrics,
    Yardstick,
    compare_cost,
    compare_slo,
    judge_added,
    judge_changed,
    judge_removed,
    percent,
    verdict_of,
    with_lost_jobs,
)
from tests.policy_helpers import BASE

SLO = Yardstick(wait_s=30.0, percentile=95.0)


def metrics(miss: float, worker_s: float = 3600.0, peak_mb: float = 256.0) -> PoolMetrics:
    return PoolMetrics(
        jobs=1000,
        wait_p95_s=10.0,
        miss_fraction=miss,
        missed_jobs=round(miss * 1000),
        slo_met=miss <= SLO.allowed_fraction + 1e-12,
        worker_seconds=worker_s,
        peak_memory_mb=peak_mb,
        unserved=0,
    )


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (0.0, 0.04, "same"),  # both meet: the waits do not matter
        (0.04, 0.06, "worse"),  # stops meeting it
        (0.06, 0.04, "better"),
        (0.10, 0.1009, "same"),  # both miss; under 0.1 point apart is noise
        (0.10, 0.12, "worse"),
        (0.12, 0.10, "better"),
    ],
)
def test_slo_per_trace(before: float, after: float, expected: str) -> None:
    assert compare_slo(metrics(before), metrics(after)) == expected


@pytest.mark.parametrize(
    ("worker_s", "peak", "expected"),
    [
        ((1000.0, 1005.0), (256.0, 256.0), "same"),  # under 1 %
        ((1000.0, 1200.0), (256.0, 256.0), "higher"),
        ((1000.0, 800.0), (256.0, 256.0), "lower"),
        ((1000.0, 1000.0), (256.0, 512.0), "higher"),
        ((1000.0, 800.0), (256.0, 512.0), "mixed"),
        ((0.0, 0.0), (0.0, 0.0), "same"),
        ((0.0, 10.0), (0.0, 0.0), "higher"),
    ],
)
def test_cost(worker_s: tuple[float, float], peak: tuple[float, float], expected: str) -> None:
    assert compare_cost(worker_s, peak) == expected


@pytest.mark.parametrize(
    ("slo", "cost", "crossed", "expected"),
    [
        ("worse", "lower", True, "worse"),  # breaking the SLO is never a trade-off
        ("worse", "lower", False, "trade-off"),  # missed anyway: more misses, less cost
        ("worse", "higher", False, "worse"),
        ("worse", "same", False, "worse"),
        ("better", "higher", True, "better"),  # meeting the SLO is worth its cost
        ("better", "higher", False, "trade-off"),
        ("better", "mixed", False, "trade-off"),
        ("better", "same", False, "better"),
        ("mixed", "lower", True, "trade-off"),
        ("same", "lower", False, "better"),
        ("same", "higher", False, "worse"),
        ("same", "mixed", False, "trade-off"),
        ("same", "same", False, "same"),
    ],
)
def test_verdict_table(slo: str, cost: str, crossed: bool, expected: str) -> None:
    assert verdict_of(slo, cost, crossed=crossed) == expected  # type: ignore[arg-type]


def test_judge_changed_over_several_traces() -> None:
    # Worse on one trace, better on another: mixed, a trade-off, and still worse on the SLO.
    verdict = judge_changed(
        [("a.csv", metrics(0.0), metrics(0.2)), ("b.csv", metrics(0.3), metrics(0.0))], SLO
    )
    assert (verdict.verdict, verdict.slo, verdict.slo_worse) == ("trade-off", "mixed", True)
    assert "misses its SLO now on a.csv (0 % → 20 %" in verdict.line
    assert "meets its SLO now on b.csv (30 % → 0 %" in verdict.line
    # One trace: no trace names; the cost summed over traces.
    verdict = judge_changed([("a.csv", metrics(0.0, 3600.0), metrics(0.01, 2700.0))], SLO)
    assert (verdict.verdict, verdict.slo_worse) == ("better", False)
    assert verdict.line == "meets its SLO as before; 25 % fewer worker-hours"
    verdict = judge_changed([("a.csv", metrics(0.2), metrics(0.2, peak_mb=512.0))], SLO)
    assert verdict.verdict == "worse" and not verdict.slo_worse
    assert verdict.line == "misses its SLO as before; peak memory 256 → 512 MB"


def test_added_removed_and_lost_queues() -> None:
    added = judge_added([("a.csv", metrics(0.0)), ("b.csv", metrics(0.5))], SLO)
    assert (added.verdict, added.slo_worse) == ("added", True)
    assert "misses its SLO: on b.csv: 50 % of jobs over 30 s, allows 5 %" in added.line
    assert judge_added([("a.csv", metrics(0.0))], SLO).line == (
        "new pool, meets its SLO; 1.00 worker-h"
    )
    moved = judge_removed({}, {"mail": "notifications"})
    assert (moved.verdict, moved.slo_worse) == ("removed", False)
    assert "`mail` by `notifications`" in moved.line
    orphaned = judge_removed({"a.csv": {"mail": 12}}, {})
    assert orphaned.slo_worse and "12 jobs of queue `mail` in a.csv" in orphaned.line
    same = judge_changed([("a.csv", metrics(0.0), metrics(0.0))], SLO)
    assert with_lost_jobs(same, {}) is same
    lost = with_lost_jobs(same, {"a.csv": {"bulk": 7}})
    assert (lost.verdict, lost.slo_worse) == ("worse", True)
    assert lost.line.startswith("no pool consumes 7 jobs of queue `bulk` in a.csv now; ")


def test_trace_labels() -> None:
    assert trace_labels(["traces/day.csv.gz", "/tmp/burst.csv", "x"]) == ["day", "burst", "x"]
    assert trace_labels(["a/day.csv", "b/day.csv.gz"]) == ["a/day.csv", "b/day.csv.gz"]


def test_percent_for_people() -> None:
    assert [percent(f) for f in (0.0, 0.0004, 0.05, 0.12345, 1.0)] == [
        "0 %",
        "<0.1 %",
        "5 %",
        "12.3 %",
        "100 %",
    ]


def policy(**overrides: object) -> Policy:
    return Policy.model_validate({**BASE, **overrides})


def test_changed_fields_effective_values_in_field_order() -> None:
    before = policy()
    # Writing out a default, or 30 for 30.0, is no change.
    assert changed_fields(before, policy(slo={"wait_s": 30, "percentile": 95.0})) == []
    assert changed_fields(before, policy(strategy={"name": "slo"})) == []
    after = policy(
        max_processes=6,
        min_processes=0,
        slo={"wait_s": 15.0},
        strategy={"name": "static", "slo": {"max_step_up": 2}},
        supervisor={"environment": {"APP_ENV": "prod"}, "user": "www"},
    )
    changes = [(c.field, c.before, c.after) for c in changed_fields(before, after)]
    assert changes == [
        ("min_processes", "1", "0"),
        ("max_processes", "4", "6"),
        ("slo.wait_s", "30.0", "15.0"),
        ("strategy.name", '"slo"', '"static"'),
        ("strategy.slo.max_step_up", "(unset)", "2"),
        ("supervisor.user", "(unset)", '"www"'),
        ("supervisor.environment.APP_ENV", "(unset)", '"prod"'),
    ]
    back = [(c.field, c.before, c.after) for c in changed_fields(after, before)]
    assert ("supervisor.environment.APP_ENV", '"prod"', "(unset)") in back
    queues = changed_fields(
        policy(queues=["a", "b"], command="php artisan queue:work --queue=a,b"),
        policy(queues=["b", "a"], command="php artisan queue:work --queue=b,a"),
    )
    assert [(c.field, c.before, c.after) for c in queues] == [
        ("queues", '["a", "b"]', '["b", "a"]'),
        ("command", '"php artisan queue:work --queue=a,b"', '"php artisan queue:work --queue=b,a"'),
    ]
