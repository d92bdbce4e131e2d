"""`check --format github` annotations and the policy-review workflow template: its shell step
run for real in a git repository shaped like GitHub's pull request merge, its comment script
run by node against a stand-in for GitHub's REST API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoscaler.cli.main import main
from autoscaler.policy.loader import PolicyError
from autoscaler.review.annotations import (
    annotation_path,
    error_annotations,
    escape_data,
    escape_property,
    workflow_command,
)
from tests.policy_helpers import write_policy
from tests.review_helpers import BASE_POOLS, GIT_ENV, GitRepo, day_trace, require_git, write_pools

REPO = Path(__file__).resolve().parent.parent
WORKFLOW = REPO / "deploy" / "github" / "policy-review.yml"


def test_escaping_follows_githubs_rules() -> None:
    assert escape_data("50% done\r\nnext: a,b") == "50%25 done%0D%0Anext: a,b"
    assert escape_property("p:o,l%\n") == "p%3Ao%2Cl%25%0A"
    assert workflow_command("error", "a::b", {"file": "x,y.toml", "line": "3"}) == (
        "::error file=x%2Cy.toml,line=3::a::b"
    )
    assert workflow_command("notice", "hi", {}) == "::notice::hi"


def test_annotation_paths_are_relative_to_the_workspace(tmp_path: Path) -> None:
    inside = tmp_path / "policies" / "a.toml"
    assert annotation_path(inside, workspace=tmp_path) == "policies/a.toml"
    assert annotation_path(Path("policies/a.toml"), workspace=tmp_path, cwd=tmp_path) == (
        "policies/a.toml"
    )
    assert annotation_path(Path("/elsewhere/a.toml"), workspace=tmp_path) == "/elsewhere/a.toml"
    errors = [
        PolicyError(file=inside, field="max_processes", problem="must be > 0", line=7),
        PolicyError(file=tmp_path / "policies", field="min_processes", problem="100% over"),
    ]
    assert error_annotations(errors, workspace=tmp_path) == [
        "::error file=policies/a.toml,line=7,title=policy max_processes::must be > 0",
        f"::error title=policy min_processes::{tmp_path}/policies: 100%25 over",
    ]


def test_check_format_github(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    policies = tmp_path / "p,o:l"
    write_policy(policies, "a", max_processes=0)
    write_policy(policies, "b", typo=1)
    broken = policies / "c.toml"
    broken.write_text('queues = ["c"]\nmin_processes = = 1\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))
    assert main(["check", "--format", "github", "p,o:l"]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    text_a = (policies / "a.toml").read_text().splitlines()
    line_a = next(i for i, t in enumerate(text_a, 1) if t.startswith("max_processes"))
    assert lines[0].startswith(
        f"::error file=p%2Co%3Al/a.toml,line={line_a},title=policy max_processes::"
    )
    assert lines[1].startswith("::error file=p%2Co%3Al/b.toml,")
    assert "title=policy typo::unknown key (typo?)" in lines[1]
    assert lines[2].startswith("::error file=p%2Co%3Al/c.toml,line=2,title=policy (toml)::")
    assert len(lines) == 3 and "3 problem(s)" in captured.err
    # Valid policies: the usual summary; a missing directory: an annotation and exit 2.
    assert main(["check", "--format", "github", str(REPO / "policies")]) == 0
    assert "7 pools valid" in capsys.readouterr().out
    assert main(["check", "--format", "github", "missing"]) == 2
    assert capsys.readouterr().out == ("::error title=autoscaler check::missing: not a directory\n")


def workflow() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return data


def step(name: str) -> dict[str, Any]:
    steps: list[dict[str, Any]] = workflow()["jobs"]["review"]["steps"]
    return next(s for s in steps if s.get("name", "").startswith(name))


def test_workflow_shape() -> None:
    data = workflow()
    trigger = data[True]["pull_request"]  # YAML 1.1 reads the key `on` as true
    assert "policies/**" in trigger["paths"]
    assert data["permissions"] == {"contents": "read", "pull-requests": "write"}
    checkout = step("Check out")
    assert checkout["uses"].startswith("actions/checkout@") and checkout["with"]["fetch-depth"] == 2
    assert "autoscaler check --format github" in step("Check the policies")["run"]
    assert 'autoscaler diff "HEAD^1:$POLICIES_DIR" "HEAD:$POLICIES_DIR"' in step("Simulate")["run"]
    assert step("Post")["uses"].startswith("actions/github-script@")
    assert "exit 1" in step("Fail")["run"]


class Runner:
    """Runs a workflow step's shell the way GitHub's runner does (bash -e -o pipefail), with
    the job's env, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files, and `autoscaler` on PATH."""

    def __init__(self, root: Path, repo: Path) -> None:
        self.repo = repo
        self.output = root / "output"
        self.summary = root / "summary.md"
        self.bin = root / "bin"
        self.bin.mkdir()
        shim = self.bin / "autoscaler"
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m autoscaler "$@"\n')
        shim.chmod(0o755)

    def run(self, script: str, **env: str) -> subprocess.CompletedProcess[str]:
        for path in (self.output, self.summary):
            path.write_text("")
        clean = {k: v for k, v in os.environ.items() if not k.startswith("AUTOSCALER_")}
        full_env = {
            **clean,
            **GIT_ENV,
            **{k: str(v) for k, v in workflow()["env"].items()},
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            "GITHUB_OUTPUT": str(self.output),
            "GITHUB_STEP_SUMMARY": str(self.summary),
            "AUTOSCALER_SIMULATE_STARTUP_S": "0.5",
            **env,
        }
        return subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=self.repo,
            env=full_env,
            capture_output=True,
            text=True,
            check=False,
        )


def test_workflow_diff_step_on_a_pull_request_merge(tmp_path: Path) -> None:
    require_git()
    repo = GitRepo(tmp_path / "app")
    write_pools(repo.policies, BASE_POOLS)
    (repo.root / "traces").mkdir()
    (repo.root / "traces" / "day.csv").write_text(day_trace())
    repo.commit("policies and a trace")
    repo.git("checkout", "-q", "-b", "pr")
    write_pools(repo.policies, {"web": {**BASE_POOLS["web"], "static_processes": 1}})
    repo.commit("fewer web workers")
    # What actions/checkout gives a pull_request run: the merge into the base branch.
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "--no-edit", "pr")
    runner = Runner(tmp_path, repo.root)
    script = step("Simulate")["run"]

    done = runner.run(script, TRACES="traces/day.csv")
    assert done.returncode == 0, done.stderr
    assert runner.output.read_text() == "exit_code=1\n"
    report = (repo.root / "policy-review.md").read_text()
    assert "❌ **1 pool worse on its SLO**: `web`." in report
    assert runner.summary.read_text() == report
    assert "`static_processes`: `3` → `1`" in report

    done = runner.run(script, TRACES="traces/missing.csv")
    assert done.returncode == 0
    assert runner.output.read_text() == "exit_code=2\n"
    report = (repo.root / "policy-review.md").read_text()
    assert "❌ `autoscaler diff` failed (exit 2):" in report and "missing.csv" in report

    fail = step("Fail")["run"]
    assert runner.run(fail, CODE="1").returncode == 1
    assert "::error title=policy review::a pool got worse" in runner.run(fail, CODE="1").stdout


COMMENT_HARNESS = """
const calls = [];
let comments = JSON.parse(process.env.EXISTING);
const github = {
  paginate: async (method, args) => { calls.push(['list', args.issue_number]); return comments; },
  rest: { issues: {
    listComments: 'listComments',
    updateComment: async (args) => { calls.push(['update', args.comment_id, args.body]); },
    createComment: async (args) => { calls.push(['create', args.issue_number, args.body]); },
  } },
};
const context = { repo: { owner: 'o', repo: 'r' }, payload: { pull_request: { number: 42 } } };
(async () => {
SCRIPT
})().then(() => console.log(JSON.stringify(calls)), (e) => { console.error(e); process.exit(1); });
"""


def run_comment_script(tmp_path: Path, report: str, existing: list[dict[str, Any]]) -> Any:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    (tmp_path / "report.md").write_text(report)
    harness = tmp_path / "harness.js"
    script = textwrap.indent(step("Post")["with"]["script"], "  ")
    harness.write_text(COMMENT_HARNESS.replace("SCRIPT", script))
    done = subprocess.run(
        [node, str(harness)],
        env={
            **os.environ,
            "REPORT_FILE": str(tmp_path / "report.md"),
            "EXISTING": json.dumps(existing),
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_workflow_comment_is_created_once_then_updated(tmp_path: Path) -> None:
    marker = "<!-- autoscaler-policy-review -->"
    calls = run_comment_script(tmp_path, "### report\n", [])
    assert calls == [["list", 42], ["create", 42, f"{marker}\n### report\n"]]
    existing = [
        {"id": 1, "user": {"type": "User"}, "body": f"{marker} quoted by a person"},
        {"id": 7, "user": {"type": "Bot"}, "body": f"{marker}\nold report"},
    ]
    calls = run_comment_script(tmp_path, "### new\n", existing)
    assert calls == [["list", 42], ["update", 7, f"{marker}\n### new\n"]]
    calls = run_comment_script(tmp_path, "x" * 70000, [])
    body = calls[1][2]
    assert len(body) < 65536 and body.endswith("the whole report is in the job summary)\n")
