"""The memory budget's split when it binds, over several draws of the same scenario: how many
pools miss their SLO with and without deferring a batch pool's keep-up share while its
oldest job has slack (decide/budget.py, DEFER_SLACK_S), side by side on the same jobs.

`all_busy` (every pool 3-5x busy at once, more wanted than the budget holds) is drawn with
each seed by the same generator as the bundled trace (`autoscaler trace generate all_busy
--seed N`); each draw runs `slo` with the shipped policies at each start-up delay, with the
rule off (DEFER_SLACK_S = inf, the rule before issue 13's second round) and at each slack.

    python3 tests/benchmarks/bench_budget_seeds.py [--seeds 1 2 3 4 5 6] [--startups 0.26 1.0]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from autoscaler.decide import budget
from autoscaler.policy.loader import load_policies
from autoscaler.simulate.engine import DecideController, SimulationResult, WorldSettings, simulate
from autoscaler.simulate.report import pool_report
from autoscaler.traces.loader import parse_trace
from autoscaler.traces.scenarios import generate


def missing(result: SimulationResult) -> list[str]:
    """Pools whose share of late jobs is past what their SLO allows (the results' verdict)."""
    return [
        name
        for name, pool in result.pools.items()
        if pool.jobs and not pool_report(pool)["slo_met"]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6])
    parser.add_argument("--startups", type=float, nargs="+", default=[0.26, 1.0])
    parser.add_argument("--slacks", type=float, nargs="+", default=[math.inf, 30.0, 60.0, 120.0])
    parser.add_argument("--policies", type=Path, default=Path("policies"))
    args = parser.parse_args()
    policies = load_policies(args.policies)
    shipped = budget.DEFER_SLACK_S
    totals: dict[tuple[float, float], list[int]] = {}
    print("| seed | start-up s | DEFER_SLACK_S | pools missing | worker-h |")
    print("|---|---|---|---|---|")
    for seed in args.seeds:
        text = generate("all_busy", seed=seed).text()
        trace = parse_trace(text, policies, name=f"all_busy seed {seed}")
        for startup in args.startups:
            settings = WorldSettings(startup_s=startup)
            for slack in args.slacks:
                budget.DEFER_SLACK_S = slack
                result = simulate(
                    trace,
                    policies,
                    DecideController(policies, settings.budget),
                    strategy="slo",
                    settings=settings,
                    keep_series=False,
                )
                late = missing(result)
                hours = sum(p.worker_seconds for p in result.pools.values()) / 3600
                totals.setdefault((startup, slack), []).append(len(late))
                print(
                    f"| {seed} | {startup:g} | {slack:g} | {', '.join(late) or '-'} | "
                    f"{hours:.2f} |",
                    flush=True,
                )
    budget.DEFER_SLACK_S = shipped
    print("\npools missing their SLO, summed over the seeds:")
    for (startup, slack), counts in totals.items():
        print(f"  start-up {startup:g} s, DEFER_SLACK_S {slack:g}: {sum(counts)}")


if __name__ == "__main__":
    main()
