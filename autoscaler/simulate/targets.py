"""The simulator's targets for the `slo` strategy (issue 7), checked on one report.

1. `slo` meets each pool's SLO (miss fraction <= 1 - percentile) wherever the oracle does;
2. at <= 1.3x the oracle's worker-seconds;
3. no peer (static, horizon, hpa, step) has both fewer worker-seconds and fewer missed jobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autoscaler.simulate.comparison import ORACLE

COST_RATIO_TARGET = 1.3
SLO = "slo"
PEERS = ("static", "horizon", "hpa", "step")


@dataclass(frozen=True, slots=True)
class Verdict:
    target: str
    met: bool
    detail: str


def _missed_jobs(total: dict[str, Any]) -> float:
    return float(total["slo_miss_fraction"]) * float(total["jobs"])


def check_targets(report: dict[str, Any]) -> list[Verdict]:
    """The three verdicts; empty when the report lacks `slo` or `oracle`."""
    strategies: dict[str, Any] = report["strategies"]
    if SLO not in strategies or ORACLE not in strategies:
        return []
    slo, oracle = strategies[SLO], strategies[ORACLE]
    verdicts = []

    short = []
    exempt = []
    for pool, data in oracle["pools"].items():
        ours = slo["pools"][pool]
        allowed = 1.0 - ours["slo_percentile"] / 100.0
        if not data["slo_met"]:
            exempt.append(pool)
            continue
        if not ours["slo_met"]:
            short.append(
                f"{pool} {ours['slo_miss_fraction'] * 100:.2f} % of jobs late "
                f"(allowed {allowed * 100:g} %)"
            )
    where = f"; oracle cannot either: {', '.join(exempt)}" if exempt else ""
    verdicts.append(
        Verdict(
            "meets each SLO the oracle meets",
            not short,
            ("; ".join(short) if short else "all met") + where,
        )
    )

    ours_ws = float(slo["total"]["worker_seconds"])
    oracle_ws = float(oracle["total"]["worker_seconds"])
    ratio = ours_ws / oracle_ws if oracle_ws else float("inf")
    verdicts.append(
        Verdict(
            f"<= {COST_RATIO_TARGET:g}x the oracle's worker-seconds",
            ratio <= COST_RATIO_TARGET,
            f"{ratio:.2f}x",
        )
    )

    better = []
    for peer in PEERS:
        if peer not in strategies:
            continue
        theirs = strategies[peer]["total"]
        if float(theirs["worker_seconds"]) < ours_ws and _missed_jobs(theirs) < _missed_jobs(
            slo["total"]
        ):
            better.append(peer)
    verdicts.append(
        Verdict(
            "no peer cheaper and on time more often",
            not better,
            ("dominated by " + ", ".join(better)) if better else "none",
        )
    )
    return verdicts
