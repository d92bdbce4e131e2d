"""The package layout is the architecture (docs/design.md): imports flow one way.

`lint-imports` (tests/run.sh) checks the contracts in pyproject.toml on every run; these tests
show that it really fails on an import against the flow, and keep the top level small.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "autoscaler"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def copy_of_package(tmp_path: Path) -> Path:
    shutil.copytree(PACKAGE, tmp_path / "autoscaler", ignore=shutil.ignore_patterns("data"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_contracts_hold_on_the_package_as_it_is(copy_of_package: Path) -> None:
    result = _lint_imports(copy_of_package)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "bad_import", "message"),
    [
        (
            "decide/core.py",
            "from autoscaler.act.actuator import Actuator",
            "autoscaler.decide is not allowed to import autoscaler.act",
        ),
        (
            "observe/observer.py",
            "from autoscaler.decide.plan import Plan",
            "autoscaler.observe is not allowed to import autoscaler.decide",
        ),
        (
            "act/reconcile.py",
            "from autoscaler.observe.observation import Observation",
            "autoscaler.act is not allowed to import autoscaler.observe",
        ),
        (
            "laravel/sampler.py",
            "from autoscaler.supervisord.rpc import ProcessInfo",
            "autoscaler.laravel is not allowed to import autoscaler.supervisord",
        ),
        (
            "policy/model.py",
            "from autoscaler.cli.common import build_settings",
            "autoscaler.policy is not allowed to import autoscaler.cli",
        ),
    ],
)
def test_an_import_against_the_flow_breaks_a_contract(
    copy_of_package: Path, module: str, bad_import: str, message: str
) -> None:
    path = copy_of_package / "autoscaler" / module
    path.write_text(path.read_text() + f"\n{bad_import}  # noqa: E402\n")
    result = _lint_imports(copy_of_package)
    assert result.returncode != 0
    assert message in result.stdout, result.stdout


def test_the_top_level_keeps_at_most_eight_modules() -> None:
    modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(modules) <= 8, modules


def test_every_package_says_what_it_is_for() -> None:
    for init in sorted(PACKAGE.rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc, f"{init.relative_to(REPO)} has no docstring saying what the package is for"
