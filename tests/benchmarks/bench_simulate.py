"""Simulator speed: 7 pools x 7 days of a rate trace at 1 s resolution, a 5 s tick.

Target (issue 7): `autoscaler simulate TRACE --strategy slo`, loading included, in <= 20 s on
the project's 2-core machine. The trace has a row for every queue every second (4.8 million
rows, zero-arrival rows included: the worst case for loading; --sparse leaves those out, as
`trace import` and `record` do), Poisson arrivals around a daily cycle on the seed's 8
queues, about 1.3 million jobs. It is generated once (seeded) into a cache directory.

    .venv/bin/python tests/benchmarks/bench_simulate.py [--strategy slo] [--sparse] [--profile]

Prints the end-to-end time of the CLI (a fresh process, as an operator runs it), then the
same run in-process split into loading, the world model and decide, and with --profile the
functions that take the time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from autoscaler.bundled import seed_policies_dir
from autoscaler.observe.observation import Observation
from autoscaler.policy.loader import load_policies
from autoscaler.policy.model import STRATEGY_NAMES
from autoscaler.simulate.engine import DecideController, World, WorldSettings, simulate
from autoscaler.traces.loader import load_trace
from autoscaler.traces.scenarios import SEED_QUEUES

DAYS = 7
SEED = 7


def generate(path: Path, *, sparse: bool = False) -> None:
    """A rate trace at 1 s, rates following a daily cycle: a row for every queue every second
    (dense), or only rows with arrivals under a `# bucket_s: 1` declaration (sparse)."""
    rng = np.random.default_rng(SEED)
    seconds = np.arange(DAYS * 86400, dtype=np.int64)
    cycle = 1.0 + 0.6 * np.sin(2 * np.pi * (seconds / 86400.0 - 0.25))  # peak at noon
    names = list(SEED_QUEUES)
    columns = []
    for index, queue in enumerate(names):
        profile = SEED_QUEUES[queue]
        counts = rng.poisson(profile.rate_per_s * cycle)
        service = np.round(profile.mean_run_s * rng.lognormal(-0.1, 0.45, seconds.shape[0]), 2)
        columns.append((np.full(seconds.shape[0], index), counts, service))
    with path.open("w", encoding="utf-8") as out:
        out.write(f"# bench_simulate.py: {DAYS} days at 1 s, seed {SEED}\n# bucket_s: 1\n")
        out.write("time_s,queue,arrivals,service_s\n")
        chunk = 86400
        for start in range(0, seconds.shape[0], chunk):
            stop = start + chunk
            parts = []
            for second in range(start, stop):
                for queue_index, (_, counts, service) in enumerate(columns):
                    if sparse and not counts[second]:
                        continue
                    parts.append(
                        f"{second},{names[queue_index]},{counts[second]},{service[second]}\n"
                    )
            out.write("".join(parts))


class Timed:
    """Wraps a controller to add up the time spent in decide."""

    def __init__(self, inner: DecideController) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.ticks = 0

    def choose(self, observation: Observation, world: World) -> Mapping[str, int]:
        start = time.perf_counter()
        counts = self.inner.choose(observation, world)
        self.seconds += time.perf_counter() - start
        self.ticks += 1
        return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", default="slo", choices=STRATEGY_NAMES)
    parser.add_argument("--profile", action="store_true", help="print the top functions")
    parser.add_argument(
        "--sparse", action="store_true", help="leave out rows with no arrivals (1.1 M rows)"
    )
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "autoscaler-bench"
    )
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    shape = "sparse" if args.sparse else "dense"
    trace_path = args.cache / f"rate-{DAYS}d-1s-seed{SEED}-{shape}.csv"
    if not trace_path.exists():
        started = time.perf_counter()
        partial = trace_path.with_suffix(".tmp")
        generate(partial, sparse=args.sparse)
        partial.rename(trace_path)
        print(f"generated {trace_path} in {time.perf_counter() - started:.1f} s")
    size_mb = trace_path.stat().st_size / 1e6

    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "autoscaler",
            "simulate",
            str(trace_path),
            "--strategy",
            args.strategy,
            "--policies",
            str(seed_policies_dir()),
            "--interval-s",
            "5",
            "--format",
            "json",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    cli_s = time.perf_counter() - started
    print(
        f"autoscaler simulate ({size_mb:.0f} MB {shape}, 7 pools x {DAYS} days at 1 s, tick 5 s, "
        f"strategy {args.strategy}): {cli_s:.1f} s end to end (target <= 20 s)"
    )

    policies = load_policies(seed_policies_dir()).with_strategy(args.strategy)
    settings = WorldSettings(interval_s=5.0)
    profiler = cProfile.Profile() if args.profile else None
    started = time.perf_counter()
    trace = load_trace(trace_path, policies)
    loaded = time.perf_counter()
    controller = Timed(DecideController(policies, settings.budget))
    if profiler is not None:
        profiler.enable()
    simulate(
        trace, policies, controller, strategy=args.strategy, settings=settings, keep_series=False
    )
    if profiler is not None:
        profiler.disable()
    done = time.perf_counter()
    load_s, run_s = loaded - started, done - loaded
    world_s = run_s - controller.seconds
    ticks = max(1, controller.ticks)
    print(
        f"in process: load {load_s:.1f} s ({trace.jobs} jobs), world {world_s:.1f} s "
        f"({world_s / ticks * 1e6:.0f} us per tick), decide {controller.seconds:.1f} s "
        f"({controller.seconds / ticks * 1e6:.0f} us per tick), {ticks} ticks"
    )
    bound = max(
        ("loading", load_s),
        ("the world model", world_s),
        ("decide", controller.seconds),
        key=lambda item: item[1],
    )
    print(
        f"bounded by {bound[0]} ({bound[1] / (load_s + run_s) * 100:.0f} % of the in-process time)"
    )
    if profiler is not None:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(15)
        print(text.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
