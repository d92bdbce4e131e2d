"""The targets check on hand-made reports."""

from __future__ import annotations

from typing import Any

from autoscaler.simulate.targets import check_targets


def strategy(ws: float, pools: dict[str, tuple[float, bool]], jobs: int = 100) -> dict[str, Any]:
    missed = sum(f for f, _ in pools.values()) / len(pools)
    return {
        "pools": {
            name: {"slo_miss_fraction": f, "slo_met": met, "slo_percentile": 95.0}
            for name, (f, met) in pools.items()
        },
        "total": {"worker_seconds": ws, "slo_miss_fraction": missed, "jobs": jobs},
    }


def test_all_targets_met() -> None:
    report = {
        "strategies": {
            "slo": strategy(120.0, {"a": (0.01, True), "b": (0.5, False)}),
            "oracle": strategy(100.0, {"a": (0.0, True), "b": (0.3, False)}),
            "static": strategy(200.0, {"a": (0.0, True), "b": (0.6, False)}),
            "hpa": strategy(90.0, {"a": (0.2, False), "b": (0.9, False)}),
        }
    }
    verdicts = check_targets(report)
    assert [v.met for v in verdicts] == [True, True, True]
    assert "oracle cannot either: b" in verdicts[0].detail
    assert verdicts[1].detail == "1.20x"


def test_each_target_can_fail() -> None:
    report = {
        "strategies": {
            "slo": strategy(140.0, {"a": (0.08, False)}),
            "oracle": strategy(100.0, {"a": (0.0, True)}),
            "step": strategy(120.0, {"a": (0.02, True)}),
        }
    }
    verdicts = check_targets(report)
    assert [v.met for v in verdicts] == [False, False, False]
    assert verdicts[0].detail.startswith("a 8.00 % of jobs late (allowed 5 %)")
    assert verdicts[2].detail == "dominated by step"


def test_no_verdicts_without_slo_and_oracle() -> None:
    assert check_targets({"strategies": {"static": strategy(1.0, {"a": (0.0, True)})}}) == []
