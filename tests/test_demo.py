"""`autoscaler demo` runs the real daemon on a real stack and cleans up everything it started."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_binary, require_php


def processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in args:
            found.append(args)
    return found


@pytest.mark.parametrize(
    ("worker", "says"),
    [
        ("laravel", "workers: real Laravel 8 (`php artisan queue:work`"),
        ("standin", "workers: the Python stand-in"),
    ],
)
def test_demo_scales_a_burst_and_cleans_up(worker: str, says: str) -> None:
    require_binary("redis-server")
    require_binary("supervisord")
    if worker == "laravel":
        require_php()
    result = subprocess.run(
        [sys.executable, "-m", "autoscaler", "demo", "--jobs", "40", "--max-seconds", "90",
         "--worker", worker],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert says in out
    root = re.search(r"in (/\S+autoscaler-demo-\S+) \.\.\.", out)
    assert root is not None
    assert "45 jobs finished, each exactly once: True" in out
    assert re.search(r"gift_card_exchange 1 -> [2-8]:", result.stderr), "no scale-up logged"
    assert "stopped everything the demo started" in out
    # the daemon's own age of the waiting jobs: FIFO accounting on Laravel 8, createdAt else
    assert re.search(r"gift_card_exchange +\d+ +\d+s +\d+  (fifo|createdAt)", out), out
    assert not Path(root.group(1)).exists()
    assert processes_mentioning(root.group(1)) == []
