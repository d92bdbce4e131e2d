"""The simulation report: the JSON object of docs/design.md and its table/markdown views.

Numbers are rounded once, here, so the same trace always prints the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from autoscaler.simulate.comparison import ORACLE
from autoscaler.simulate.engine import FloatArray, PoolResult, SimulationResult
from autoscaler.table import render_table

_NO_WAITS: FloatArray = np.zeros(0, dtype=np.float64)


def _wait(value: float) -> float:
    return round(float(value), 3)


def _percentiles(waits: FloatArray) -> tuple[float, float, float]:
    if not waits.shape[0]:
        return 0.0, 0.0, 0.0
    p50, p95, p99 = np.percentile(waits, [50.0, 95.0, 99.0])
    return _wait(p50), _wait(p95), _wait(p99)


def pool_report(result: PoolResult) -> dict[str, Any]:
    waits = result.waits_s
    p50, p95, p99 = _percentiles(waits)
    missed = int(np.count_nonzero(waits > result.slo_wait_s))
    miss_fraction = missed / waits.shape[0] if waits.shape[0] else 0.0
    allowed = 1.0 - result.slo_percentile / 100.0
    return {
        "jobs": result.jobs,
        "wait_p50_s": p50,
        "wait_p95_s": p95,
        "wait_p99_s": p99,
        "slo_wait_s": float(result.slo_wait_s),
        "slo_miss_fraction": round(miss_fraction, 6),
        "worker_seconds": round(result.worker_seconds, 1),
        "max_backlog": result.max_backlog,
        "scale_events": result.scale_events,
        # Beyond the contract (added fields only):
        "slo_percentile": float(result.slo_percentile),
        "slo_met": miss_fraction <= allowed + 1e-12,
        "missed_jobs": missed,
        "unserved": result.unserved,
        "peak_memory_mb": round(result.peak_memory_mb, 1),
        "reversals": result.reversals,
    }


def strategy_report(result: SimulationResult) -> dict[str, Any]:
    pools = {name: pool_report(pool) for name, pool in result.pools.items()}
    jobs = sum(p["jobs"] for p in pools.values())
    missed = sum(p["missed_jobs"] for p in pools.values())
    every_wait = [pool.waits_s for pool in result.pools.values()]
    p50, p95, p99 = _percentiles(np.concatenate(every_wait) if every_wait else _NO_WAITS)
    return {
        "pools": pools,
        "total": {
            "jobs": jobs,
            "slo_miss_fraction": round(missed / jobs, 6) if jobs else 0.0,
            "worker_seconds": round(sum(p.worker_seconds for p in result.pools.values()), 1),
            "peak_memory_mb": round(result.peak_memory_mb, 1),
            "memory_budget_mb": round(result.memory_budget_mb, 1),
            "scale_events": sum(p["scale_events"] for p in pools.values()),
            "reversals": sum(p["reversals"] for p in pools.values()),
            "pools_meeting_slo": sum(1 for p in pools.values() if p["slo_met"]),
            "unserved": sum(p["unserved"] for p in pools.values()),
            "end_s": round(result.end_s, 3),
            # Over every job of every pool, and the most jobs waiting at once in all pools.
            "wait_p50_s": p50,
            "wait_p95_s": p95,
            "wait_p99_s": p99,
            "max_backlog": result.max_backlog,
        },
    }


def build_report(
    results: Sequence[SimulationResult], *, interval_s: float, startup_s: float
) -> dict[str, Any]:
    """The report object for one trace and several strategies (same trace for all)."""
    first = results[0]
    return {
        "trace": first.trace,
        "duration_s": round(first.duration_s, 3),
        "strategies": {r.strategy: strategy_report(r) for r in results},
        "interval_s": interval_s,
        "startup_s": startup_s,
    }


# -- views ---------------------------------------------------------------------------------


def _hours(seconds: float) -> float:
    return round(seconds / 3600.0, 2)


def _percent(fraction: float) -> float:
    return round(fraction * 100.0, 2)


def _seconds(value: float) -> float:
    return round(value, 1)


def _missed(data: dict[str, Any]) -> str:
    """The share of jobs over the SLO wait, in %; `!` when more than the SLO allows."""
    return f"{_percent(data['slo_miss_fraction']):g}{'' if data['slo_met'] else ' !'}"


def summary_rows(report: dict[str, Any]) -> tuple[list[str], list[list[object]]]:
    """One row per strategy, all pools together: p95 wait, misses, pools meeting their SLO,
    cost, memory against the budget, max backlog, scale events."""
    strategies: dict[str, Any] = report["strategies"]
    oracle = strategies.get(ORACLE)
    oracle_ws = oracle["total"]["worker_seconds"] if oracle else None
    headers = [
        "strategy",
        "jobs",
        "p95 wait s",
        "missed %",
        "pools meeting SLO",
        "worker-h",
        "vs oracle",
        "peak MB",
        "budget MB",
        "max backlog",
        "scale events",
    ]
    rows: list[list[object]] = []
    for name, data in strategies.items():
        total = data["total"]
        ratio = round(total["worker_seconds"] / oracle_ws, 2) if oracle_ws else None
        rows.append(
            [
                name,
                total["jobs"],
                _seconds(total["wait_p95_s"]),
                _percent(total["slo_miss_fraction"]),
                f"{total['pools_meeting_slo']}/{len(data['pools'])}",
                _hours(total["worker_seconds"]),
                ratio,
                total["peak_memory_mb"],
                total["memory_budget_mb"],
                total["max_backlog"],
                total["scale_events"],
            ]
        )
    return headers, rows


def pool_rows(report: dict[str, Any]) -> tuple[list[str], list[list[object]]]:
    """One row per pool and strategy, grouped by pool (its name, jobs and SLO on the group's
    first row): wait p50/p95/p99, misses, worker-hours, peak memory, max backlog, scale
    events."""
    strategies: dict[str, Any] = report["strategies"]
    names = list(strategies)
    pools = list(next(iter(strategies.values()))["pools"]) if strategies else []
    headers = [
        "pool",
        "jobs",
        "SLO",
        "strategy",
        "p50 s",
        "p95 s",
        "p99 s",
        "missed %",
        "worker-h",
        "peak MB",
        "max backlog",
        "scale events",
    ]
    rows: list[list[object]] = []
    for pool in pools:
        first = strategies[names[0]]["pools"][pool]
        group: list[object] = [
            pool,
            str(first["jobs"]),
            f"p{first['slo_percentile']:g} <= {first['slo_wait_s']:g}s",
        ]
        for name in names:
            data = strategies[name]["pools"][pool]
            rows.append(
                [
                    *group,
                    name,
                    _seconds(data["wait_p50_s"]),
                    _seconds(data["wait_p95_s"]),
                    _seconds(data["wait_p99_s"]),
                    _missed(data),
                    _hours(data["worker_seconds"]),
                    data["peak_memory_mb"],
                    data["max_backlog"],
                    data["scale_events"],
                ]
            )
            group = ["", "", ""]
    return headers, rows


_POOL_NOTE = (
    "waits in seconds; missed % = jobs waiting longer than the SLO wait ({mark} = more than "
    "the SLO allows); worker-hours include idle, starting and draining time"
)


def render_text(report: dict[str, Any]) -> str:
    headers, rows = summary_rows(report)
    pool_headers, prows = pool_rows(report)
    return (
        f"trace {report['trace']}: {report['duration_s'] / 3600:.2f} h, tick "
        f"{report['interval_s']:g} s, worker start-up {report['startup_s']:g} s\n\n"
        f"{render_table(headers, rows)}\n\n"
        f"per pool: {_POOL_NOTE.format(mark='!')}\n"
        f"{render_table(pool_headers, prows)}"
    )


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; a `|` in a cell is escaped (it would end the cell, also inside a
    code span in GitHub's tables)."""

    def cell(value: object) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:g}"
        return str(value).replace("|", "\\|")

    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(report: dict[str, Any]) -> str:
    headers, rows = summary_rows(report)
    pool_headers, prows = pool_rows(report)
    return (
        f"Trace `{report['trace']}`: {report['duration_s'] / 3600:.2f} h, tick "
        f"{report['interval_s']:g} s, worker start-up {report['startup_s']:g} s.\n\n"
        f"{markdown_table(headers, rows)}\n\n"
        f"Per pool: {_POOL_NOTE.format(mark='`!`')}.\n\n"
        f"{markdown_table(pool_headers, prows)}\n"
    )
