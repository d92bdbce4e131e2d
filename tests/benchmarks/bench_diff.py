"""`autoscaler diff` end to end, as the policy-review workflow runs it.

A throwaway git repository holds the seed's 7 policies on main and a branch changing three
of them (one pool's static count down, another's up, an SLO); the CLI compares the two
revisions on each bundled trace and on all of them at once, with one simulation at a time
and with one per CPU. Prints the median wall time of 3 fresh processes per case.

    python3 tests/benchmarks/bench_diff.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TRACES = REPO / "simulations" / "traces"
GIT_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}
EDITS = {
    "gift_card_exchange.toml": ("static_processes = 4", "static_processes = 3"),
    "card_query.toml": ("static_processes = 2", "static_processes = 3"),
    "mail.toml": ("wait_s = 120.0", "wait_s = 100.0"),
}


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, env={**os.environ, **GIT_ENV}, check=True)


def make_repo(root: Path) -> None:
    git(root, "init", "-q", "-b", "main")
    shutil.copytree(REPO / "policies", root / "policies")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "seed policies")
    git(root, "checkout", "-q", "-b", "change")
    for name, (old, new) in EDITS.items():
        path = root / "policies" / name
        text = path.read_text()
        assert old in text, (name, old)
        path.write_text(text.replace(old, new, 1))
    git(root, "commit", "-q", "-am", "three pools changed")


def median_s(root: Path, traces: list[Path], jobs: int, runs: int) -> float:
    args = [sys.executable, "-m", "autoscaler", "diff", "main", "change", "--jobs", str(jobs)]
    for trace in traces:
        args += ["--trace", str(trace)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOSCALER_")}
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(args, cwd=root, env=env, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
        assert done.returncode in (0, 1), done.stderr.decode()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    traces = sorted(TRACES.glob("*.csv.gz"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_repo(root)
        cases = [([t], t.name) for t in traces] + [(traces, f"all {len(traces)} traces")]
        print(f"{'traces':28} {'--jobs 1':>10} {f'--jobs {cpus}':>10}")
        for chosen, name in cases:
            one = median_s(root, chosen, 1, args.runs)
            many = median_s(root, chosen, cpus, args.runs)
            print(f"{name:28} {one:9.2f}s {many:9.2f}s")


if __name__ == "__main__":
    main()
