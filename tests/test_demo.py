"""`autoscaler demo` runs the real daemon on a real stack and cleans up everything it started."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import require_binary


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


def test_demo_scales_a_burst_and_cleans_up() -> None:
    require_binary("redis-server")
    require_binary("supervisord")
    result = subprocess.run(
        [sys.executable, "-m", "autoscaler", "demo", "--jobs", "40", "--max-seconds", "60"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    root = re.search(r"in (/\S+autoscaler-demo-\S+) \.\.\.", out)
    assert root is not None
    assert "45 jobs finished, each exactly once: True" in out
    assert re.search(r"gift_card_exchange 1 -> [2-8]:", result.stderr), "no scale-up logged"
    assert "stopped everything the demo started" in out
    assert not Path(root.group(1)).exists()
    assert processes_mentioning(root.group(1)) == []
