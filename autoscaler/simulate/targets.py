"""The simulator's targets for the `slo` strategy (issues 7 and 13), checked on one report.

1. `slo` meets each pool's SLO (miss fraction <= 1 - percentile) wherever the oracle does;
2. per pool, no peer that meets the pool's SLO costs more than 1 % fewer worker-seconds than
   `slo` (the pools nobody feeds are left out: every strategy sits at its minimum there);
3. over all pools, <= 1.15x the oracle's worker-seconds (the stretch goal is 1.05x);
4. `slo` changes counts at most 0.25x as often as `horizon`;
5. the oracle is a reference: no strategy meets a pool's SLO that the oracle misses, or
   meets it for fewer worker-seconds than the oracle (1 % of slack, as in 2).

`pool_rows` gives, per pool, the cheapest strategy that meets the SLO and how `slo` compares
with it and with the oracle: the table simulations/README.md shows per trace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autoscaler.simulate.comparison import ORACLE

COST_RATIO_TARGET = 1.15
COST_RATIO_STRETCH = 1.05
PEER_SLACK = 0.01  # a peer must be more than 1 % cheaper to count as cheaper
EVENTS_RATIO_TARGET = 0.25
SLO = "slo"
HORIZON = "horizon"


@dataclass(frozen=True, slots=True)
class Verdict:
    target: str
    met: bool
    detail: str


@dataclass(frozen=True, slots=True)
class PoolRow:
    """One pool of one trace: who meets its SLO cheapest and how slo compares."""

    pool: str
    jobs: int
    cheapest: str  # the cheapest strategy meeting the SLO ("" if none does)
    cheapest_worker_s: float
    slo_met: bool
    slo_worker_s: float
    oracle_worker_s: float
    slo_events: int
    horizon_events: int
    slo_reversals: int

    @property
    def over_cheapest(self) -> float:
        return self.slo_worker_s / self.cheapest_worker_s if self.cheapest_worker_s else 0.0

    @property
    def over_oracle(self) -> float:
        return self.slo_worker_s / self.oracle_worker_s if self.oracle_worker_s else 0.0


def pool_rows(report: dict[str, Any]) -> list[PoolRow]:
    """A row per pool fed by the trace (jobs > 0); empty without `slo` and `oracle`."""
    strategies: dict[str, Any] = report["strategies"]
    if SLO not in strategies or ORACLE not in strategies:
        return []
    rows = []
    for pool, ours in strategies[SLO]["pools"].items():
        if not ours["jobs"]:
            continue
        meeting = sorted(
            (float(data["pools"][pool]["worker_seconds"]), name)
            for name, data in strategies.items()
            if data["pools"][pool]["slo_met"]
        )
        cheapest_ws, cheapest = meeting[0] if meeting else (0.0, "")
        horizon = strategies.get(HORIZON)
        rows.append(
            PoolRow(
                pool=pool,
                jobs=int(ours["jobs"]),
                cheapest=cheapest,
                cheapest_worker_s=cheapest_ws,
                slo_met=bool(ours["slo_met"]),
                slo_worker_s=float(ours["worker_seconds"]),
                oracle_worker_s=float(strategies[ORACLE]["pools"][pool]["worker_seconds"]),
                slo_events=int(ours["scale_events"]),
                horizon_events=int(horizon["pools"][pool]["scale_events"]) if horizon else 0,
                slo_reversals=int(ours.get("reversals", 0)),
            )
        )
    return rows


def check_targets(report: dict[str, Any]) -> list[Verdict]:
    """The five verdicts; empty when the report lacks `slo` or `oracle`."""
    strategies: dict[str, Any] = report["strategies"]
    if SLO not in strategies or ORACLE not in strategies:
        return []
    slo, oracle = strategies[SLO], strategies[ORACLE]
    fed = [pool for pool, data in slo["pools"].items() if data["jobs"]]
    return [
        _meets_where_oracle_does(slo, oracle),
        _no_cheaper_peer(strategies, fed),
        _cost_ratio(slo, oracle),
        _scale_events(strategies),
        _oracle_is_reference(strategies, fed),
    ]


def _meets_where_oracle_does(slo: dict[str, Any], oracle: dict[str, Any]) -> Verdict:
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
    return Verdict(
        "meets each SLO the oracle meets",
        not short,
        ("; ".join(short) if short else "all met") + where,
    )


def _no_cheaper_peer(strategies: dict[str, Any], fed: list[str]) -> Verdict:
    slo = strategies[SLO]
    cheaper = []
    for pool in fed:
        ours = float(slo["pools"][pool]["worker_seconds"])
        for peer, data in strategies.items():
            if peer in (SLO, ORACLE):
                continue
            theirs = data["pools"][pool]
            if theirs["slo_met"] and float(theirs["worker_seconds"]) < (1 - PEER_SLACK) * ours:
                cheaper.append(f"{pool}: {peer} {float(theirs['worker_seconds']) / ours:.2f}x")
    return Verdict(
        "no peer meets a pool's SLO > 1 % cheaper",
        not cheaper,
        "; ".join(cheaper) if cheaper else "none",
    )


def _cost_ratio(slo: dict[str, Any], oracle: dict[str, Any]) -> Verdict:
    ours_ws = float(slo["total"]["worker_seconds"])
    oracle_ws = float(oracle["total"]["worker_seconds"])
    ratio = ours_ws / oracle_ws if oracle_ws else float("inf")
    stretch = " (stretch met)" if ratio <= COST_RATIO_STRETCH else ""
    return Verdict(
        f"<= {COST_RATIO_TARGET:g}x the oracle's worker-seconds",
        ratio <= COST_RATIO_TARGET,
        f"{ratio:.2f}x{stretch}",
    )


def _scale_events(strategies: dict[str, Any]) -> Verdict:
    ours = int(strategies[SLO]["total"]["scale_events"])
    reversals = int(strategies[SLO]["total"].get("reversals", 0))
    if HORIZON not in strategies:
        return Verdict(f"scale events <= {EVENTS_RATIO_TARGET:g}x horizon's", True, "no horizon")
    theirs = int(strategies[HORIZON]["total"]["scale_events"])
    ratio = ours / theirs if theirs else (0.0 if ours == 0 else float("inf"))
    return Verdict(
        f"scale events <= {EVENTS_RATIO_TARGET:g}x horizon's",
        ratio <= EVENTS_RATIO_TARGET,
        f"{ours} / {theirs} = {ratio:.2f}x; {reversals} reversals within 10 min",
    )


def _oracle_is_reference(strategies: dict[str, Any], fed: list[str]) -> Verdict:
    oracle = strategies[ORACLE]
    beaten = []
    for pool in fed:
        reference = oracle["pools"][pool]
        for name, data in strategies.items():
            if name == ORACLE or not data["pools"][pool]["slo_met"]:
                continue
            theirs = float(data["pools"][pool]["worker_seconds"])
            if not reference["slo_met"]:
                beaten.append(f"{pool}: {name} meets it, the oracle does not")
            elif theirs < (1 - PEER_SLACK) * float(reference["worker_seconds"]):
                ratio = theirs / float(reference["worker_seconds"])
                beaten.append(f"{pool}: {name} {ratio:.2f}x")
    return Verdict(
        "the oracle meets every SLO anyone meets, cheapest",
        not beaten,
        "; ".join(beaten) if beaten else "yes",
    )
