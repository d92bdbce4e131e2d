"""`autoscaler tune`: a setting no worse than the current one, lines that paste cleanly."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from autoscaler.cli.main import main
from autoscaler.policy.loader import load_policies
from autoscaler.simulate.tuning import Setting, bound_candidates, searched_knobs
from tests.sim_helpers import policy_set, write_pool


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    policies = tmp_path / "policies"
    policy_set(
        policies,
        {
            "mail": {
                "min_processes": 2,
                "static_processes": 3,
                "max_processes": 6,
                "slo": {"wait_s": 20.0, "percentile": 90.0},
            },
            "other": {"min_processes": 1, "static_processes": 1},
        },
    )
    rows = ["arrival_s,queue,service_s"]
    for second in range(0, 900, 2):
        rows.append(f"{second},mail,{1 + (second % 7) / 2}")
    trace = tmp_path / "mail.csv"
    trace.write_text("\n".join(rows) + "\n")
    return trace, policies


def test_tune_prints_lines_that_paste_into_the_policy(
    setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    trace, policies = setup
    code = main(
        [
            "tune",
            str(trace),
            "--pool",
            "mail",
            "--policies",
            str(policies),
            "--format",
            "json",
            "--jobs",
            "2",
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == (0 if report["best"]["meets_slo"] else 1)
    current, best = report["current"], report["best"]
    assert report["evaluated"] > 1
    if current["meets_slo"]:
        assert best["meets_slo"] and best["worker_seconds"] <= current["worker_seconds"]
    pasted = tomllib.loads("\n".join(report["policy_lines"]))
    assert set(report["knobs_searched"]) >= {"min_processes", "max_processes"}
    # The lines merge into a valid policy.
    merged = tmp_path / "merged"
    knobs = pasted.pop("strategy", {}).get("slo", {})
    write_pool(merged, "mail", ["mail"], **{**pasted, "strategy": {"name": "slo", "slo": knobs}})
    tuned = load_policies(merged)["mail"]
    assert tuned.min_processes == best["min_processes"]
    assert tuned.max_processes == best["max_processes"]


def test_tune_errors(setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    trace, policies = setup
    assert main(["tune", str(trace), "--pool", "nope", "--policies", str(policies)]) == 2
    assert "no pool 'nope'" in capsys.readouterr().err


def test_settings_stay_valid_policies(setup: tuple[Path, Path]) -> None:
    _, policies = setup
    policy = load_policies(policies)["mail"]
    mins, maxes = bound_candidates(policy, ceiling=10)
    assert 0 in mins and policy.max_processes in maxes
    for knob in searched_knobs():
        setting = Setting(0, 4).with_knob(knob, getattr(policy.strategy.slo, knob))
        tuned = setting.apply(policy)
        type(tuned).model_validate(tuned.model_dump())  # min <= static <= max and all
        assert tuned.strategy.name == "slo"
