"""Real throwaway git repositories with policies and traces, for the policy review tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.sim_helpers import write_pool

# Committers and config of the test repositories only: never the user's global git config.
GIT_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}

# Three pools, each run by the `static` strategy (the one every version of decide knows), so
# the tests depend on the world model and the counts, not on which strategies exist.
BASE_POOLS: dict[str, dict[str, Any]] = {
    "web": {"min_processes": 1, "static_processes": 3, "max_processes": 4, "priority": 10},
    "mail": {"min_processes": 1, "static_processes": 1, "max_processes": 2, "priority": 20},
    "batch": {
        "min_processes": 1,
        "static_processes": 2,
        "max_processes": 4,
        "priority": 30,
        "slo": {"wait_s": 300.0, "percentile": 95.0},
    },
}


def day_trace() -> str:
    """web: a job a second for 300 s, 2 s each (3 workers keep up, 1 does not); mail: a
    1 s job every 10 s; batch: 20 jobs of 10 s at once (the 20th starts after 90 s with 2
    workers, 190 s with 1)."""
    rows = ["arrival_s,queue,service_s"]
    rows += [f"{t},web,2" for t in range(300)]
    rows += [f"{t},mail,1" for t in range(0, 300, 10)]
    rows += ["0,batch,10"] * 20
    return "\n".join(rows) + "\n"


def reports_trace() -> str:
    """The day's mail and a report every 10 s: a queue only a pool added later consumes."""
    rows = ["arrival_s,queue,service_s"]
    rows += [f"{t},mail,1" for t in range(0, 300, 10)]
    rows += [f"{t + 5},reports,1" for t in range(0, 300, 10)]
    return "\n".join(rows) + "\n"


def write_pools(directory: Path, pools: dict[str, dict[str, Any]]) -> None:
    for name, overrides in pools.items():
        options = {"strategy": {"name": "static"}, **overrides}
        queues = options.pop("queues", [name])
        write_pool(directory, name, queues, **options)


class GitRepo:
    """A git repository in a temporary directory, driven by the real git binary."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str, cwd: Path | None = None) -> str:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd or self.root,
            env={**os.environ, **GIT_ENV},
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
        return done.stdout.strip()

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--no-verify", "-m", message)
        return self.git("rev-parse", "HEAD")

    @property
    def policies(self) -> Path:
        return self.root / "policies"


def require_git() -> None:
    if shutil.which("git") is None:
        pytest.fail("git is not installed; the policy review tests need it")
