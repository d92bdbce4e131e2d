"""`autoscaler diff` on real git repositories: verdicts, changed fields, exit codes, invalid
sides, directories and revisions. Every run goes through the real simulator (no mocks)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from autoscaler.cli.main import main
from tests.review_helpers import (
    BASE_POOLS,
    GIT_ENV,
    GitRepo,
    day_trace,
    reports_trace,
    require_git,
    write_pools,
)
from tests.sim_helpers import write_pool

REPO = Path(__file__).resolve().parent.parent
# Explicit world settings: the machine's AUTOSCALER_* environment must not change results.
WORLD = ["--interval-s", "5", "--startup-s", "0.5", "--memory-budget-mb", "4096", "--jobs", "1"]


class Scenario:
    """A repository with a base commit on main and branches that change its policies."""

    def __init__(self, root: Path) -> None:
        self.repo = GitRepo(root / "app")
        self.traces = root / "traces"
        self.traces.mkdir()
        (self.traces / "day.csv").write_text(day_trace())
        (self.traces / "reports.csv").write_text(reports_trace())
        repo = self.repo
        write_pools(repo.policies, BASE_POOLS)
        (repo.root / "README.md").write_text("app\n")
        self.base = repo.commit("policies")
        # change: web gets too few workers, mail a looser SLO, batch fewer workers, a new pool.
        repo.git("checkout", "-q", "-b", "change")
        write_pools(
            repo.policies,
            {
                "web": {**BASE_POOLS["web"], "static_processes": 1, "max_processes": 1},
                "mail": {**BASE_POOLS["mail"], "slo": {"wait_s": 60.0, "percentile": 95.0}},
                "batch": {**BASE_POOLS["batch"], "static_processes": 1},
                "reports": {"min_processes": 1, "static_processes": 1, "max_processes": 2},
            },
        )
        self.change = repo.commit("change policies")
        # good: only changes that make nothing worse on its SLO.
        repo.git("checkout", "-q", "-b", "good", "main")
        write_pools(repo.policies, {"batch": {**BASE_POOLS["batch"], "static_processes": 1}})
        repo.commit("fewer batch workers")
        # broken: two invalid files.
        repo.git("checkout", "-q", "-b", "broken", "main")
        write_pools(repo.policies, {"mail": {**BASE_POOLS["mail"], "min_processes": 5}})
        write_pools(repo.policies, {"batch": {**BASE_POOLS["batch"], "typo": 1}})
        repo.commit("broken policies")
        repo.git("checkout", "-q", "main")

    def trace_args(self, *names: str) -> list[str]:
        args: list[str] = []
        for name in names or ("day.csv",):
            args += ["--trace", str(self.traces / name)]
        return args


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    require_git()
    return Scenario(tmp_path_factory.mktemp("review"))


def diff(capsys: pytest.CaptureFixture[str], *args: str, fmt: str = "json") -> tuple[int, Any, str]:
    code = main(["diff", *args, *WORLD, "--format", fmt])
    captured = capsys.readouterr()
    out: Any = json.loads(captured.out) if fmt == "json" and captured.out else captured.out
    return code, out, captured.err


def pools_by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {pool["pool"]: pool for pool in report["pools"]}


def test_change_verdicts_fields_and_exit_code(
    scenario: Scenario, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(scenario.repo.root)
    code, report, _ = diff(capsys, "main", "change", *scenario.trace_args("day.csv", "reports.csv"))
    assert code == 1 and report["exit_code"] == 1
    assert report["base"]["commit"] == scenario.base and report["head"]["commit"] == scenario.change
    assert report["base"]["path"] == "policies" and report["head"]["kind"] == "revision"
    pools = pools_by_name(report)
    assert report["worse_on_slo"] == ["web"]

    web = pools["web"]
    assert (web["verdict"], web["slo_change"], web["cost_change"]) == ("worse", "worse", "lower")
    assert {(c["field"], c["before"], c["after"]) for c in web["changes"]} == {
        ("static_processes", "3", "1"),
        ("max_processes", "4", "1"),
    }
    day = web["traces"][0]
    assert day["trace"].endswith("day.csv")
    assert day["before"]["slo_met"] and not day["after"]["slo_met"]
    assert day["after"]["wait_p95_s"] > 30.0 > day["before"]["wait_p95_s"]
    assert day["before"]["peak_memory_mb"] == 3 * 128 and day["after"]["peak_memory_mb"] == 128
    assert "misses its SLO now" in web["line"]

    batch = pools["batch"]  # still meets 300 s with one worker, and costs less
    assert (batch["verdict"], batch["slo_worse"]) == ("better", False)
    assert "meets its SLO as before" in batch["line"] and "fewer worker-hours" in batch["line"]

    mail = pools["mail"]  # a looser SLO alone changes nothing it does
    assert (mail["status"], mail["verdict"]) == ("changed", "same")
    assert mail["changes"] == [{"field": "slo.wait_s", "before": "30.0", "after": "60.0"}]
    assert mail["slo"] == {"wait_s": 60.0, "percentile": 95.0}  # judged against HEAD's SLO

    reports = pools["reports"]
    assert (reports["status"], reports["verdict"], reports["slo_worse"]) == (
        "added",
        "added",
        False,
    )
    assert reports["files"] == {"base": None, "head": "policies/reports.toml"}
    assert [t["before"] for t in reports["traces"]] == [None, None]
    assert reports["traces"][1]["after"]["jobs"] == 30
    assert any("no pool consumed queue `reports`" in note for note in report["notes"])
    # Pools sorted for the reader: worse on the SLO first.
    assert [p["pool"] for p in report["pools"]] == ["web", "reports", "batch", "mail"]


def test_markdown_report(
    scenario: Scenario, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(scenario.repo.root)
    code, text, _ = diff(capsys, "main", "change", *scenario.trace_args(), fmt="markdown")
    assert code == 1
    short = scenario.base[:7]
    assert text.startswith(f"### Policy review: `main` ({short}) → `change` (")
    assert "❌ **1 pool worse on its SLO**: `web`." in text
    assert "| `web` | ❌ worse | misses its SLO now" in text
    assert "| `batch` | ✅ better |" in text
    assert "| `reports` | 🆕 added |" in text
    assert "  - `static_processes`: `3` → `1`" in text
    assert "  - `slo.wait_s`: `30.0` → `60.0`" in text
    assert "- `reports`: new file `policies/reports.toml`" in text
    assert "| `web` | p95 ≤ 30 s |" in text and "| all pools |" in text
    assert "<details><summary>How this was computed</summary>" in text
    assert text.endswith("</details>\n")


def test_same_inputs_same_bytes(
    scenario: Scenario, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(scenario.repo.root)
    args = ["main", "change", *scenario.trace_args("day.csv", "reports.csv")]
    for fmt in ("markdown", "json"):
        first = diff(capsys, *args, fmt=fmt)[1]
        again = diff(capsys, *args, fmt=fmt)[1]
        assert first == again
    # The parallel path gives the same report as the sequential one.
    assert main(["diff", *args, *WORLD[:-2], "--jobs", "2", "--format", "json"]) == 1
    assert json.loads(capsys.readouterr().out) == diff(capsys, *args)[1]


def test_good_change_exits_zero_and_the_reverse_change(
    scenario: Scenario, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(scenario.repo.root)
    code, report, _ = diff(capsys, "main", "good", *scenario.trace_args())
    assert code == 0 and report["worse_on_slo"] == []
    pools = pools_by_name(report)
    assert pools["batch"]["verdict"] == "better"
    assert pools["web"]["status"] == "unchanged" and pools["web"]["verdict"] == "same"
    # Backwards: web meets its SLO again at a higher cost, and the removed reports pool
    # leaves its queue's jobs with no pool at all.
    code, report, _ = diff(capsys, "change", "main", *scenario.trace_args("day.csv", "reports.csv"))
    assert code == 1
    pools = pools_by_name(report)
    assert (pools["web"]["verdict"], pools["web"]["slo_change"]) == ("better", "better")
    assert (
        "meets its SLO now" in pools["web"]["line"] and "more worker-hours" in pools["web"]["line"]
    )
    removed = pools["reports"]
    assert (removed["verdict"], removed["slo_worse"]) == ("removed", True)
    assert "no pool consumes 30 jobs of queue `reports` in reports now" in removed["line"]
    assert [t["label"] for t in report["traces"]] == ["day", "reports"]
    assert report["worse_on_slo"] == ["reports"]
    assert pools["batch"]["verdict"] == "worse" and not pools["batch"]["slo_worse"]


def test_invalid_head_lists_every_error_with_repo_paths(
    scenario: Scenario, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(scenario.repo.root)
    code, report, err = diff(capsys, "main", "broken", *scenario.trace_args())
    assert code == 2 and report["exit_code"] == 2
    assert report["head"]["valid"] is False and report["pools"] == []
    text = scenario.repo.git("show", "broken:policies/mail.toml")
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith("min_processes"))
    errors = {(e["file"], e["field"]): e for e in report["head"]["errors"]}
    assert set(errors) == {
        ("policies/mail.toml", "min_processes"),
        ("policies/batch.toml", "typo"),
    }
    assert errors[("policies/mail.toml", "min_processes")]["line"] == line
    assert f"HEAD: policies/mail.toml:{line}: min_processes: min_processes (5)" in err
    code, text, _ = diff(capsys, "main", "broken", *scenario.trace_args(), fmt="markdown")
    assert code == 2
    assert "❌ **The policies at HEAD are invalid** (2 problems)" in text
    assert f"| `policies/mail.toml` | {line} | `min_processes` |" in text


def test_invalid_base_reports_head_pools_as_added(
    scenario: Scenario, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(scenario.repo.root)
    code, report, _ = diff(capsys, "broken", "main", *scenario.trace_args())
    assert code == 0
    assert not report["base"]["valid"] and len(report["base"]["errors"]) == 2
    assert {p["verdict"] for p in report["pools"]} == {"added"}
    assert report["base"]["note"] == "policies at broken has 2 problems"
    assert report["notes"] == []  # the warning says it, with the problems
    code, text, _ = diff(capsys, "broken", "main", *scenario.trace_args(), fmt="markdown")
    assert "⚠️ BASE is invalid (policies at broken has 2 problems): every pool at HEAD" in text
    assert "<details><summary>2 problem(s) at BASE</summary>" in text


def test_directories_and_revision_forms(
    scenario: Scenario,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    root = scenario.repo.root
    monkeypatch.chdir(root)
    expected = diff(capsys, "main", "change", *scenario.trace_args())[1]["pools"]
    # HEAD as a directory (a copy of change's policies), BASE as REV:PATH.
    head_dir = tmp_path / "head-policies"
    head_dir.mkdir()
    for name in ("web", "mail", "batch", "reports"):
        text = scenario.repo.git("show", f"change:policies/{name}.toml")
        (head_dir / f"{name}.toml").write_text(text + "\n")
    code, report, _ = diff(capsys, "main:policies", str(head_dir), *scenario.trace_args())
    assert code == 1 and report["head"]["kind"] == "directory"
    assert report["base"]["path"] == "policies"
    assert [p["verdict"] for p in report["pools"]] == [p["verdict"] for p in expected]
    files = pools_by_name(report)["web"]["files"]
    assert files == {"base": "policies/web.toml", "head": f"{head_dir}/web.toml"}
    # From a subdirectory: `./` paths are relative to it, plain REV:PATH to the root.
    sub = root / "sub"
    sub.mkdir(exist_ok=True)
    monkeypatch.chdir(sub)
    code, report, _ = diff(capsys, "main:./../policies", "change:policies", *scenario.trace_args())
    assert code == 1 and report["base"]["path"] == report["head"]["path"] == "policies"
    # An existing directory wins over a revision of the same name.
    monkeypatch.chdir(root)
    shadow = root / "change"
    shutil.copytree(root / "policies", shadow)
    try:
        code, report, _ = diff(capsys, "main", "change", *scenario.trace_args())
        assert code == 0 and report["head"]["kind"] == "directory"
        assert all(p["verdict"] == "same" for p in report["pools"])
    finally:
        shutil.rmtree(shadow)


def test_usage_errors(
    scenario: Scenario,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(scenario.repo.root)
    day = scenario.trace_args()
    cases = {
        ("nosuchrev", "main"): "BASE: 'nosuchrev' is neither a directory nor a revision",
        ("main", "main:README.md"): "README.md is a blob at main, not a directory",
        ("main", ":policies"): "name a revision before ':'",
        ("main:nope", "change:nope"): "no policies on either side",
        ("main", "main:../outside"): "lies outside the git repository",
    }
    for (base, head), message in cases.items():
        code, out, err = diff(capsys, base, head, *day)
        assert (code, out) == (2, ""), (base, head)
        assert message in err, err
    # A trace queue no pool consumes on either side; a missing trace.
    code, _, err = diff(capsys, "main", "main", *scenario.trace_args("reports.csv"))
    assert code == 2 and "queue 'reports' is consumed by no pool" in err
    code, _, err = diff(capsys, "main", "main", "--trace", str(tmp_path / "none.csv"))
    assert code == 2 and "none.csv: cannot read" in err
    # A revision outside any git repository.
    monkeypatch.chdir(tmp_path)
    code, _, err = diff(capsys, "main", "HEAD", *day)
    assert code == 2 and "is not inside a git repository" in err


def test_first_policies_are_all_added_and_the_work_tree_is_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    require_git()
    repo = GitRepo(tmp_path / "app")
    (repo.root / "README.md").write_text("app\n")
    repo.commit("no policies yet")
    write_pools(repo.policies, BASE_POOLS)
    repo.commit("first policies")
    trace = tmp_path / "day.csv"
    trace.write_text(day_trace())
    # Uncommitted edits, staged and not, must survive the diff byte for byte.
    write_pool(repo.policies, "mail", ["mail"], min_processes=0)
    (repo.root / "staged.txt").write_text("staged\n")
    repo.git("add", "staged.txt")
    status = repo.git("status", "--porcelain")
    mail = (repo.policies / "mail.toml").read_bytes()
    monkeypatch.chdir(repo.root)
    code, report, _ = diff(capsys, "HEAD~1", "HEAD", "--trace", str(trace))
    assert code == 0
    assert report["base"]["note"] == "policies at HEAD~1 does not exist"
    assert sorted(p["pool"] for p in report["pools"]) == ["batch", "mail", "web"]
    assert {p["verdict"] for p in report["pools"]} == {"added"}
    assert repo.git("status", "--porcelain") == status
    assert (repo.policies / "mail.toml").read_bytes() == mail
    assert not list(repo.root.glob("**/autoscaler-diff-*"))


def test_symlinked_policy_is_followed_and_a_dangling_one_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    require_git()
    repo = GitRepo(tmp_path / "app")
    write_pools(repo.root / "shared", {"mail": BASE_POOLS["mail"]})
    write_pools(repo.policies, {"web": BASE_POOLS["web"], "batch": BASE_POOLS["batch"]})
    (repo.policies / "mail.toml").symlink_to("../shared/mail.toml")
    (repo.root / "live").symlink_to("policies")  # a link to the whole directory
    repo.commit("policies, one shared through a link")
    (repo.policies / "gone.toml").symlink_to("../shared/gone.toml")
    repo.commit("a dangling link")
    trace = tmp_path / "day.csv"
    trace.write_text(day_trace())
    monkeypatch.chdir(repo.root)
    code, report, _ = diff(capsys, "HEAD~1", "HEAD~1:live", "--trace", str(trace))
    assert code == 0 and sorted(pools_by_name(report)) == ["batch", "mail", "web"]
    assert {p["status"] for p in report["pools"]} == {"unchanged"}
    code, report, _ = diff(capsys, "HEAD~1", "HEAD", "--trace", str(trace))
    assert code == 2
    assert report["head"]["errors"] == [
        {
            "file": "policies/gone.toml",
            "line": None,
            "field": "(file)",
            "problem": "a symbolic link to a file that does not exist",
        }
    ]


def test_lost_queue_makes_a_changed_pool_worse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Plain directories on both sides; a pool that stops consuming a queue leaves its jobs
    with nobody, however good its own numbers look."""
    base, head = tmp_path / "base", tmp_path / "head"
    write_pools(base, {"web": {**BASE_POOLS["web"], "queues": ["web", "mail"]}})
    write_pools(head, {"web": BASE_POOLS["web"]})
    trace = tmp_path / "day.csv"
    trace.write_text("\n".join(day_trace().splitlines()[:331]) + "\n")  # web and mail only
    code, report, _ = diff(capsys, str(base), str(head), "--trace", str(trace))
    assert code == 1
    (web,) = report["pools"]
    assert (web["verdict"], web["slo_worse"]) == ("worse", True)
    assert web["line"].startswith("no pool consumes 30 jobs of queue `mail`")


def test_subprocess_run_with_default_parallelism(scenario: Scenario) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOSCALER_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "autoscaler",
            "diff",
            "main",
            "change",
            *scenario.trace_args("day.csv", "reports.csv"),
        ],
        cwd=scenario.repo.root,
        env={**env, **GIT_ENV},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "❌ **1 pool worse on its SLO**: `web`." in done.stdout
    assert "**`" in done.stdout and "reports.csv" in done.stdout
