"""The targets check and the per-pool rows on hand-made reports."""

from __future__ import annotations

from typing import Any

from autoscaler.simulate.targets import check_targets, pool_rows

Pool = tuple[float, bool, float]  # (miss fraction, SLO met, worker-seconds)


def strategy(pools: dict[str, Pool], events: int = 10, jobs: int = 100) -> dict[str, Any]:
    return {
        "pools": {
            name: {
                "jobs": jobs,
                "slo_miss_fraction": f,
                "slo_met": met,
                "slo_percentile": 95.0,
                "worker_seconds": ws,
                "scale_events": events,
                "reversals": 1,
            }
            for name, (f, met, ws) in pools.items()
        },
        "total": {
            "worker_seconds": sum(ws for _, _, ws in pools.values()),
            "slo_miss_fraction": sum(f for f, _, _ in pools.values()) / len(pools),
            "jobs": jobs * len(pools),
            "scale_events": events * len(pools),
            "reversals": len(pools),
        },
    }


def test_all_targets_met() -> None:
    report = {
        "strategies": {
            "slo": strategy({"a": (0.01, True, 60.0), "b": (0.5, False, 50.0)}, events=2),
            "oracle": strategy({"a": (0.0, True, 59.9), "b": (0.3, False, 45.0)}),
            "static": strategy({"a": (0.0, True, 100.0), "b": (0.6, False, 100.0)}),
            "hpa": strategy({"a": (0.2, False, 40.0), "b": (0.9, False, 40.0)}),
            "horizon": strategy({"a": (0.0, True, 59.5), "b": (0.4, False, 70.0)}),
        }
    }
    verdicts = check_targets(report)
    assert [v.met for v in verdicts] == [True, True, True, True, True]
    assert "oracle cannot either: b" in verdicts[0].detail
    assert verdicts[2].detail == "1.05x (stretch met)"
    assert verdicts[3].detail.startswith("4 / 20 = 0.20x; 2 reversals")


def test_each_target_can_fail() -> None:
    report = {
        "strategies": {
            "slo": strategy({"a": (0.08, False, 140.0), "b": (0.0, True, 100.0)}, events=30),
            "oracle": strategy({"a": (0.0, True, 100.0), "b": (0.1, False, 50.0)}),
            "step": strategy({"a": (0.02, True, 90.0), "b": (0.0, True, 98.0)}),
            "horizon": strategy({"a": (0.2, False, 99.0), "b": (0.2, False, 99.0)}, events=50),
        }
    }
    verdicts = check_targets(report)
    assert [v.met for v in verdicts] == [False, False, False, False, False]
    assert verdicts[0].detail.startswith("a 8.00 % of jobs late (allowed 5 %)")
    assert verdicts[1].detail == "a: step 0.64x; b: step 0.98x"
    assert verdicts[2].detail == "1.60x"
    assert "a: step 0.90x" in verdicts[4].detail
    assert "b: slo meets it, the oracle does not" in verdicts[4].detail


def test_pool_rows_name_the_cheapest_strategy_meeting_the_slo() -> None:
    report = {
        "strategies": {
            "slo": strategy({"a": (0.01, True, 60.0)}, events=3),
            "oracle": strategy({"a": (0.0, True, 50.0)}),
            "horizon": strategy({"a": (0.0, True, 48.0)}, events=30),
            "hpa": strategy({"a": (0.3, False, 10.0)}),
        }
    }
    (row,) = pool_rows(report)
    assert (row.cheapest, row.cheapest_worker_s) == ("horizon", 48.0)
    assert row.over_cheapest == 60.0 / 48.0
    assert row.over_oracle == 60.0 / 50.0
    assert (row.slo_events, row.horizon_events, row.slo_reversals) == (3, 30, 1)


def test_no_verdicts_without_slo_and_oracle() -> None:
    only = {"strategies": {"static": strategy({"a": (0.0, True, 1.0)})}}
    assert check_targets(only) == []
    assert pool_rows(only) == []
