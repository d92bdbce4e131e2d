"""docs/generate.py --check fails when a generated page or picture is stale: a page edited by
hand, a field added to the policy or settings models, a layer moved in pyproject.toml, a
change to what the plot draws. Each test works on a copy of the repository's parts the
generator reads, so the real files are never touched."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow  # each run simulates the bundled trace for the plot (~3 s)


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    for name in ("autoscaler", "docs", "policies"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def generate(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH first: the copy's autoscaler, not the installed one, is documented.
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [sys.executable, str(root / "docs" / "generate.py"), *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} not once in {path}"
    path.write_text(text.replace(old, new))


def test_the_committed_pages_are_current_and_an_edited_one_is_stale(copy: Path) -> None:
    assert generate(copy, "--check").returncode == 0

    page = copy / "docs" / "reference" / "settings.md"
    page.write_text(page.read_text().replace("Seconds between two ticks", "Seconds between ticks"))
    stale = generate(copy, "--check")
    assert stale.returncode == 1
    assert "docs/reference/settings.md" in stale.stderr
    assert "Seconds between ticks" in page.read_text()  # --check writes nothing

    assert generate(copy).returncode == 0
    assert "Seconds between two ticks" in page.read_text()
    assert generate(copy, "--check").returncode == 0


def test_a_field_added_to_the_models_makes_its_reference_stale(copy: Path) -> None:
    replace_once(
        copy / "autoscaler" / "policy" / "lifecycle.py",
        "    max_rss_mb: float | None = Field(\n",
        '    max_jobs: int = Field(default=0, ge=0, description="Recycle after this many jobs.")\n'
        "    max_rss_mb: float | None = Field(\n",
    )
    replace_once(
        copy / "autoscaler" / "settings.py",
        "    fleet: str | None = Field(\n",
        "    drain_timeout_s: float = Field(\n"
        '        default=9.0, gt=0, description="Drain for this long."\n'
        "    )\n"
        "    fleet: str | None = Field(\n",
    )
    stale = generate(copy, "--check")
    assert stale.returncode == 1
    assert "docs/reference/policy.md" in stale.stderr
    assert "docs/reference/settings.md" in stale.stderr
    assert "commands.md" not in stale.stderr

    assert generate(copy).returncode == 0
    policy_page = (copy / "docs" / "reference" / "policy.md").read_text()
    assert "| `lifecycle.max_jobs` | integer | `0` | ≥ 0 | Recycle after this many jobs. |" in (
        policy_page
    )
    settings_page = (copy / "docs" / "reference" / "settings.md").read_text()
    assert "| `AUTOSCALER_DRAIN_TIMEOUT_S` | `drain_timeout_s` | number | `9.0` | > 0 |" in (
        settings_page.replace("&gt;", ">")
    )


def test_a_generated_block_edited_in_its_page_is_stale(copy: Path) -> None:
    page = copy / "docs" / "observe.md"
    text = page.read_text()
    page.write_text(text.replace("gift_card_exchange  gift_card_exchange       96", "x", 1))
    stale = generate(copy, "--check")
    assert stale.returncode == 1
    assert "docs/observe.md" in stale.stderr
    assert generate(copy).returncode == 0
    assert page.read_text() == text


def test_a_field_without_a_description_is_refused(copy: Path) -> None:
    replace_once(
        copy / "autoscaler" / "policy" / "model.py",
        '    name: StrategyName = Field(\n        default="slo", description="The strategy the '
        'daemon runs for this pool."\n    )\n',
        '    name: StrategyName = "slo"\n',
    )
    refused = generate(copy)
    assert refused.returncode == 2
    assert "StrategySpec.name: no description" in refused.stderr


def test_a_new_verb_option_a_moved_layer_and_new_plot_data_are_stale(copy: Path) -> None:
    replace_once(
        copy / "autoscaler" / "cli" / "logs_cmd.py",
        "    parser.set_defaults(",
        '    parser.add_argument("--since", help="only lines newer than this")\n'
        "    parser.set_defaults(",
    )
    replace_once(copy / "pyproject.toml", '    "observe",\n', '    "observe | review",\n')
    replace_once(copy / "pyproject.toml", '    "daemon | review",\n', '    "daemon",\n')
    replace_once(
        copy / "autoscaler" / "data" / "policies" / "gift_card_exchange.toml",
        "wait_s = 15.0",
        "wait_s = 40.0",
    )
    stale = generate(copy, "--check")
    assert stale.returncode == 1
    for name in ("commands.md", "docs/concepts.md", "simulate-flash-burst.png"):
        assert name in stale.stderr
    assert "policy.md" not in stale.stderr

    assert generate(copy).returncode == 0
    assert "`--since SINCE`" in (copy / "docs" / "reference" / "commands.md").read_text()
    assert '["observe/ · review/"]' in (copy / "docs" / "concepts.md").read_text()
    assert generate(copy, "--check").returncode == 0
