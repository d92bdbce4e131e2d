"""The README stays a five-minute read that leads into docs/ (issue 20): small, its two
commands for a fresh machine as CI runs them, and every relative link pointing at a file."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
MAX_README_BYTES = 15_000


def test_readme_is_small() -> None:
    size = len(README.read_bytes())
    assert size <= MAX_README_BYTES, f"README.md is {size} bytes: move detail into docs/"


def test_readme_has_the_fresh_machine_commands() -> None:
    text = README.read_text()
    assert "python3 -m pip install . && autoscaler simulate\n" in text
    assert "\n./tests/run.sh\n" in text
    assert "exec ./tests/run.sh" in (REPO / ".ci" / "run").read_text()


def test_readme_links_point_at_files() -> None:
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text())
    relative = [t for t in targets if "://" not in t]
    assert relative, "no relative links found: the pattern is wrong"
    missing = [t for t in relative if not (REPO / t).exists()]
    assert not missing, f"README.md links to missing files: {missing}"
