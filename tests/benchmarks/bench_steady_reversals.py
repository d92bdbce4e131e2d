"""Reversals under steady load: does a pool alternate between two counts, and what would
holding one cost? (issue 13's third target: "in steady load a pool does not alternate between
two counts more often than once per 10 minutes").

One pool of the shipped policies is fed a steady Poisson stream (exponential run times at the
policy's expected_run_time_s) at each load a = λ·S for two hours; slo as shipped, slo with each
hysteresis knob, horizon and the oracle run over the same jobs. Printed per run: the share of
jobs past the SLO wait, worker-hours, scale events and reversals (a change back to the count
before the previous change within 10 minutes) per 10 minutes.

    python3 tests/benchmarks/bench_steady_reversals.py [--pool card_query] [--loads 0.5 0.8 1.5 3]
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from autoscaler.policy.loader import load_policies
from autoscaler.policy.model import Policy
from autoscaler.simulate.engine import DecideController, SimulationResult, WorldSettings, simulate
from autoscaler.simulate.oracle_search import run_oracle
from autoscaler.simulate.report import pool_report
from autoscaler.traces.loader import Trace, parse_trace

HOURS = 2.0
KNOBS: dict[str, dict[str, Any]] = {
    "slo": {},
    "slo down_percentile=70": {"down_percentile": 70.0},
    "slo down_percentile=95": {"down_percentile": 95.0},
    "slo reversal_hold_s=600": {"reversal_hold_s": 600.0},
}


def steady_trace(policies: Mapping[str, Policy], pool: str, load: float, seed: int) -> Trace:
    policy = policies[pool]
    service_s = policy.expected_run_time_s
    rng = np.random.default_rng(seed)
    count = int(rng.poisson(load / service_s * HOURS * 3600))
    arrivals = np.sort(rng.uniform(0.0, HOURS * 3600, count))
    services = rng.exponential(service_s, count)
    queue = policy.queues[0]
    rows = "".join(f"{a:.3f},{queue},{s:.3f}\n" for a, s in zip(arrivals, services, strict=True))
    return parse_trace("arrival_s,queue,service_s\n" + rows, policies, name="steady")


def with_strategy(
    policies: Mapping[str, Policy], name: str, knobs: Mapping[str, Any]
) -> dict[str, Policy]:
    out = {}
    for pool, policy in policies.items():
        strategy = policy.strategy.model_copy(update={"name": name})
        if knobs:
            strategy = strategy.model_copy(update={"slo": strategy.slo.model_copy(update=knobs)})
        out[pool] = policy.model_copy(update={"strategy": strategy})
    return out


def row(label: str, load: float, result: SimulationResult, pool: str) -> str:
    seen = result.pools[pool]
    late = 100.0 * pool_report(seen)["slo_miss_fraction"]
    per_10_min = seen.reversals / (HOURS * 6)
    return (
        f"| {load:g} | {label} | {late:.2f} | {seen.worker_seconds / 3600:.2f} | "
        f"{seen.scale_events} | {per_10_min:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", default="card_query")
    parser.add_argument("--loads", type=float, nargs="+", default=[0.5, 0.8, 1.5, 3.0])
    parser.add_argument("--policies", type=Path, default=Path("policies"))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    policies = load_policies(args.policies)
    settings = WorldSettings()
    print(f"pool {args.pool}, {HOURS:g} h of steady Poisson load per row, seed {args.seed}\n")
    print("| load | strategy | late % | worker-h | scale events | reversals per 10 min |")
    print("|---|---|---|---|---|---|")
    for load in args.loads:
        trace = steady_trace(policies, args.pool, load, args.seed)
        runs = [(label, "slo", knobs) for label, knobs in KNOBS.items()]
        runs.append(("horizon", "horizon", {}))
        for label, name, knobs in runs:
            chosen = with_strategy(policies, name, knobs)
            result = simulate(
                trace,
                chosen,
                DecideController(chosen, settings.budget),
                strategy=label,
                settings=settings,
                keep_series=False,
            )
            print(row(label, load, result, args.pool), flush=True)
        oracle = run_oracle(trace, policies, settings=settings, keep_series=False)
        print(row("oracle", load, oracle, args.pool), flush=True)


if __name__ == "__main__":
    main()
