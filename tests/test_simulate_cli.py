"""`autoscaler simulate`: the report contract, determinism, the memory budget, bad input."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

import autoscaler.simulate.engine
from autoscaler.cli.main import main
from autoscaler.simulate.comparison import SIMULATED_STRATEGIES
from tests.sim_helpers import policy_set

POOL_KEYS = {
    "jobs": int,
    "wait_p50_s": float,
    "wait_p95_s": float,
    "wait_p99_s": float,
    "slo_wait_s": float,
    "slo_miss_fraction": float,
    "worker_seconds": float,
    "max_backlog": int,
    "scale_events": int,
}
TOTAL_KEYS = {
    "jobs": int,
    "slo_miss_fraction": float,
    "worker_seconds": float,
    "peak_memory_mb": float,
    "memory_budget_mb": float,
    "scale_events": int,
}


def simulate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["simulate", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def small(tmp_path: Path) -> tuple[Path, Path]:
    """Two pools under a budget of 6 workers, and a burst that wants more."""
    policies = tmp_path / "policies"
    policy_set(
        policies,
        {
            "mail": {"min_processes": 1, "static_processes": 1, "max_processes": 6},
            "web": {
                "queues": ["high", "default"],
                "min_processes": 1,
                "static_processes": 2,
                "max_processes": 6,
                "priority": 50,
                "slo": {"wait_s": 5.0, "percentile": 90.0},
            },
        },
    )
    rows = ["arrival_s,queue,service_s"]
    for second in range(0, 600):
        rows.append(f"{second},mail,{1 + second % 3}")
        if 200 <= second < 320:
            rows += [f"{second},high,4", f"{second + 0.5},default,3"]
    trace = tmp_path / "burst.csv"
    trace.write_text("\n".join(rows) + "\n")
    return trace, policies


def check_contract(report: dict[str, Any]) -> None:
    assert isinstance(report["trace"], str)
    assert isinstance(report["duration_s"], float)
    for data in report["strategies"].values():
        for pool in data["pools"].values():
            for key, kind in POOL_KEYS.items():
                assert isinstance(pool[key], kind), key
                assert not isinstance(pool[key], bool)
        for key, kind in TOTAL_KEYS.items():
            assert isinstance(data["total"][key], kind), key


def test_json_report_matches_the_contract(
    capsys: pytest.CaptureFixture[str], small: tuple[Path, Path]
) -> None:
    trace, policies = small
    code, out, _ = simulate(
        capsys, str(trace), "--policies", str(policies), "--format", "json", "--jobs", "1"
    )
    assert code == 0
    report = json.loads(out)
    assert report["trace"] == str(trace)
    assert report["duration_s"] == 599.0  # a job trace lasts until its last arrival
    assert list(report["strategies"]) == list(SIMULATED_STRATEGIES)
    check_contract(report)
    for data in report["strategies"].values():
        assert set(data["pools"]) == {"mail", "web"}
        assert data["total"]["jobs"] == 600 + 240
        assert data["pools"]["web"]["slo_wait_s"] == 5.0


def test_same_trace_same_bytes(
    capsys: pytest.CaptureFixture[str], small: tuple[Path, Path]
) -> None:
    trace, policies = small
    args = [str(trace), "--policies", str(policies), "--format", "json"]
    _, first, _ = simulate(capsys, *args, "--jobs", "1")
    _, second, _ = simulate(capsys, *args, "--jobs", "2")  # in parallel: the same bytes
    assert first == second


def test_no_strategy_exceeds_the_memory_budget(
    capsys: pytest.CaptureFixture[str], small: tuple[Path, Path]
) -> None:
    trace, policies = small
    for budget in ("1024", "1536"):  # 8 and 12 workers of 128 MB
        code, out, _ = simulate(
            capsys,
            str(trace),
            "--policies",
            str(policies),
            "--memory-budget-mb",
            budget,
            "--format",
            "json",
            "--jobs",
            "1",
        )
        assert code == 0
        for name, data in json.loads(out)["strategies"].items():
            total = data["total"]
            assert total["memory_budget_mb"] == float(budget)
            assert total["peak_memory_mb"] <= total["memory_budget_mb"], name


def test_every_strategy_but_the_oracle_goes_through_decide(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], small: tuple[Path, Path]
) -> None:
    trace, policies = small
    seen: list[str] = []
    real = autoscaler.simulate.engine.decide

    def spy(observation: Any, policies: Any, state: Any, **kwargs: Any) -> Any:
        seen.append(next(iter(policies.values())).strategy.name)
        return real(observation, policies, state, **kwargs)

    monkeypatch.setattr(autoscaler.simulate.engine, "decide", spy)
    code, _, _ = simulate(capsys, str(trace), "--policies", str(policies), "--jobs", "1")
    assert code == 0
    assert set(seen) == {"slo", "static", "horizon", "hpa", "step", "celery"}
    # Every tick of every strategy's run (each runs until its last job is done).
    assert all(seen.count(strategy) >= 600 / 5 for strategy in set(seen))


def test_the_default_run_needs_no_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = simulate(capsys, "--strategy", "static", "--jobs", "1")
    assert code == 0
    assert "bundled:flash_burst.csv.gz" in out
    assert "gift_card_exchange" in out and "static" in out


def test_markdown_and_table_views(
    capsys: pytest.CaptureFixture[str], small: tuple[Path, Path]
) -> None:
    trace, policies = small
    base = [str(trace), "--policies", str(policies), "--strategy", "static", "--jobs", "1"]
    _, markdown, _ = simulate(capsys, *base, "--strategy", "oracle", "--format", "markdown")
    assert "| strategy |" in markdown and "| oracle |" in markdown
    assert "| web |" in markdown
    _, table, _ = simulate(capsys, *base)
    assert table.splitlines()[0].startswith(f"trace {trace}")
    assert "vs oracle" in table


def two_static_pools(tmp_path: Path, b_arrives_s: float) -> tuple[Path, Path]:
    """One warm worker per pool: pool a's three 10 s jobs at 0 wait 0, 10 and 20 s; pool
    b's two 10 s jobs at `b_arrives_s` wait 0 and 10 s."""
    policies = tmp_path / "policies"
    one = {"min_processes": 1, "static_processes": 1, "max_processes": 2}
    slo = {"wait_s": 15.0, "percentile": 95.0}
    policy_set(
        policies,
        {
            "a": {**one, "memory_per_worker_mb": 256, "slo": slo},
            "b": {**one, "memory_per_worker_mb": 128, "slo": slo},
        },
    )
    trace = tmp_path / "two.csv"
    rows = ["arrival_s,queue,service_s", *["0,a,10"] * 3, *[f"{b_arrives_s},b,10"] * 2]
    trace.write_text("\n".join(rows) + "\n")
    return trace, policies


@pytest.mark.parametrize(("b_arrives_s", "total_backlog"), [(0.0, 3), (100.0, 2)])
def test_total_waits_and_backlog_cover_every_pool(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, b_arrives_s: float, total_backlog: int
) -> None:
    trace, policies = two_static_pools(tmp_path, b_arrives_s)
    args = [str(trace), "--policies", str(policies), "--strategy", "static", "--jobs", "1"]
    code, out, _ = simulate(capsys, *args, "--format", "json")
    assert code == 0
    data = json.loads(out)["strategies"]["static"]
    pools, total = data["pools"], data["total"]
    assert (pools["a"]["max_backlog"], pools["b"]["max_backlog"]) == (2, 1)
    # The most jobs waiting at once in both pools: 2 + 1 at the same instant, else a's 2.
    assert total["max_backlog"] == total_backlog
    # Percentiles over the waits of all five jobs, 0, 0, 10, 10, 20 (linear, as numpy's).
    assert (total["wait_p50_s"], total["wait_p95_s"], total["wait_p99_s"]) == (10.0, 18.0, 19.6)
    assert (pools["a"]["wait_p95_s"], pools["b"]["wait_p95_s"]) == (19.0, 9.5)
    # Each pool's own peak memory (its one worker), and all of them together.
    assert (pools["a"]["peak_memory_mb"], pools["b"]["peak_memory_mb"]) == (256.0, 128.0)
    assert total["peak_memory_mb"] == 384.0


def cells(view: str, first: str) -> list[list[str]]:
    """The cells of every Markdown row starting with `first` and the rows under it (same
    pool) until the next pool's row."""
    rows = [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in view.splitlines()
        if line.startswith("| ")
    ]
    start = next(i for i, row in enumerate(rows) if row[0] == first and len(row) > 4)
    return [rows[start], *itertools.takewhile(lambda row: row[0] == "", rows[start + 1 :])]


def test_the_views_show_waits_misses_cost_memory_backlog_and_scale_events_per_pool(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    trace, policies = two_static_pools(tmp_path, 0.0)
    args = [str(trace), "--policies", str(policies), "--strategy", "static", "--jobs", "1"]
    _, markdown, _ = simulate(capsys, *args, "--strategy", "oracle", "--format", "markdown")
    headers = next(line for line in markdown.splitlines() if line.startswith("| pool |"))
    assert [c.strip() for c in headers.strip("|").split("|")] == [
        "pool",
        "jobs",
        "SLO",
        "strategy",
        "p50 s",
        "p95 s",
        "p99 s",
        "missed %",
        "worker-h",
        "peak MB",
        "max backlog",
        "scale events",
    ]
    a_static, a_oracle = cells(markdown, "a")[:2]
    # Pool a under static: waits 0, 10, 20; one of three over the 15 s SLO wait (5 % allowed).
    assert a_static[:8] == ["a", "3", "p95 <= 15s", "static", "10", "19", "19.8", "33.33 !"]
    assert a_static[9:] == ["256", "2", "0"]
    assert a_oracle[3] == "oracle"
    summary = next(line for line in markdown.splitlines() if line.startswith("| strategy |"))
    assert "p95 wait s" in summary and "max backlog" in summary
    _, table, _ = simulate(capsys, *args)
    for column in ("p95 s", "p99 s", "peak MB", "max backlog", "scale events", "p95 wait s"):
        assert column in table


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("arrival_s,queue,service_s\n0,mail,1\n-3,mail,1\n", "bad.csv:3: arrival_s must not be"),
        ("arrival_s,queue,service_s\n0,nowhere,1\n", "bad.csv:2: queue 'nowhere'"),
        ("", "bad.csv: is empty"),
        ("arrival_s,queue,service_s\n0,mail,1\n1e12,mail,1\n", "bad.csv:3: arrival_s 1e12 is"),
    ],
)
def test_a_bad_trace_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
    small: tuple[Path, Path],
    tmp_path: Path,
    text: str,
    message: str,
) -> None:
    _, policies = small
    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    code, out, err = simulate(capsys, str(bad), "--policies", str(policies))
    assert code == 2 and out == ""
    assert message in err and "Traceback" not in err


def test_bad_options_are_usage_errors(
    capsys: pytest.CaptureFixture[str], small: tuple[Path, Path]
) -> None:
    trace, policies = small
    code, _, err = simulate(capsys, str(trace), "--policies", str(policies), "--interval-s", "0")
    assert code == 2 and "--interval-s must be positive" in err
    code, _, err = simulate(capsys, str(trace), "--policies", str(trace.parent / "missing"))
    assert code == 2 and "not a directory" in err
    with pytest.raises(SystemExit) as exited:
        main(["simulate", str(trace), "--strategy", "nope"])
    assert exited.value.code == 2


def test_plot_draws_a_png(
    capsys: pytest.CaptureFixture[str], small: tuple[Path, Path], tmp_path: Path
) -> None:
    pytest.importorskip("matplotlib")
    trace, policies = small
    picture = tmp_path / "out.png"
    code, _, err = simulate(
        capsys,
        str(trace),
        "--policies",
        str(policies),
        "--strategy",
        "static",
        "--strategy",
        "oracle",
        "--plot",
        str(picture),
        "--jobs",
        "1",
    )
    assert code == 0 and "plot written" in err
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_world_defaults_are_the_settings_defaults() -> None:
    from autoscaler.settings import Settings
    from autoscaler.simulate.engine import WorldSettings

    fields = Settings.model_fields
    world = WorldSettings()
    assert world.interval_s == fields["interval_s"].default
    assert world.startup_s == fields["simulate_startup_s"].default
    assert world.memory_budget_mb == fields["memory_budget_mb"].default
    assert world.memory_reserve_mb == fields["memory_reserve_mb"].default
