"""The verdict on one pool of a policy diff: better, worse, same, trade-off, added or removed.

The rule (docs/policy-review.md, "The verdict rule"):

- Both sides are measured against the pool's SLO at HEAD (the target the change will be held
  to). On each trace the SLO is *met* when the share of jobs waiting longer than its `wait_s`
  is at most `1 - percentile / 100`.
- SLO, per trace: **worse** when it was met before and is not after, or both miss it and the
  share of jobs over the SLO wait grew by more than 0.1 percentage points; **better** the
  other way round; otherwise **same** (meeting the SLO on both sides is the same, whatever
  the waits). Over all traces: worse if worse on some trace and better on none, better the
  other way round, *mixed* if both, else same.
- Cost: worker-seconds summed over the traces and the pool's peak memory (the largest over
  the traces); each is *up* or *down* when it moved by more than 1 % of its value before.
  Cost is higher when something went up and nothing down, lower the other way round, mixed
  when one went up and the other down, else the same.
- Verdict: crossing the SLO's line decides. SLO worse -> **worse** when the pool stops
  meeting its SLO on some trace, whatever the cost; when it missed it before too, **worse**
  unless the cost is lower (then a **trade-off**). SLO better -> **better** when the pool
  starts meeting its SLO on some trace; when it still misses it, **better** unless the cost
  is higher or mixed (then a **trade-off**). SLO mixed -> **trade-off**. SLO same -> by the
  cost: lower **better**, higher **worse**, mixed **trade-off**, same **same**.
- A pool is *worse on its SLO* (what the exit code reports) when its SLO is worse on any
  trace; an added pool when it misses its SLO on any trace. A pool that stops consuming a
  queue (or is removed) while no other pool takes the queue over leaves the queue's jobs in
  the traces unserved: that pool is worse on its SLO (and a changed one's verdict is worse).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["worse", "trade-off", "better", "same", "added", "removed"]
SloChange = Literal["worse", "better", "same", "mixed"]
CostChange = Literal["higher", "lower", "same", "mixed"]

MISS_TOLERANCE = 0.001  # a change in the share of jobs over the SLO wait below this is noise
COST_TOLERANCE = 0.01  # relative: worker-seconds or peak memory moving less than 1 % is same


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolMetrics:
    """One pool on one trace on one side, judged against the yardstick SLO."""

    jobs: int
    wait_p95_s: float
    miss_fraction: float  # share of jobs that waited longer than the SLO wait
    missed_jobs: int
    slo_met: bool
    worker_seconds: float
    peak_memory_mb: float
    unserved: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Yardstick:
    wait_s: float
    percentile: float

    @property
    def allowed_fraction(self) -> float:
        return 1.0 - self.percentile / 100.0


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolVerdict:
    verdict: Verdict
    slo_worse: bool  # counts towards exit code 1
    slo: SloChange | None  # None for added and removed pools
    cost: CostChange | None
    line: str  # the one-line explanation


def compare_slo(before: PoolMetrics, after: PoolMetrics) -> SloChange:
    if before.slo_met and after.slo_met:
        return "same"
    if before.slo_met != after.slo_met:
        return "better" if after.slo_met else "worse"
    delta = after.miss_fraction - before.miss_fraction
    if delta > MISS_TOLERANCE:
        return "worse"
    if delta < -MISS_TOLERANCE:
        return "better"
    return "same"


def _moved(before: float, after: float) -> int:
    """1 up, -1 down, 0 within the tolerance."""
    if abs(after - before) <= COST_TOLERANCE * abs(before):
        return 0
    return 1 if after > before else -1


def compare_cost(
    worker_seconds: tuple[float, float], peak_memory_mb: tuple[float, float]
) -> CostChange:
    moves = {_moved(*worker_seconds), _moved(*peak_memory_mb)}
    if 1 in moves and -1 in moves:
        return "mixed"
    if 1 in moves:
        return "higher"
    if -1 in moves:
        return "lower"
    return "same"


_BY_COST: Mapping[CostChange, Verdict] = {
    "lower": "better",
    "higher": "worse",
    "mixed": "trade-off",
    "same": "same",
}


def verdict_of(slo: SloChange, cost: CostChange, *, crossed: bool) -> Verdict:
    """The rule of the module's docstring; `crossed`: the SLO went from met to missed (or the
    other way) on some trace."""
    if slo == "mixed":
        return "trade-off"
    if slo == "worse":
        return "worse" if crossed or cost != "lower" else "trade-off"
    if slo == "better":
        return "better" if crossed or cost in ("lower", "same") else "trade-off"
    return _BY_COST[cost]


def judge_changed(
    runs: Sequence[tuple[str, PoolMetrics, PoolMetrics]], yardstick: Yardstick
) -> PoolVerdict:
    """A pool present on both sides; `runs` holds (trace, before, after) per trace."""
    per_trace = [(trace, compare_slo(b, a), b, a) for trace, b, a in runs]
    changes = {change for _, change, _, _ in per_trace}
    slo: SloChange
    if "worse" in changes and "better" in changes:
        slo = "mixed"
    elif "worse" in changes:
        slo = "worse"
    elif "better" in changes:
        slo = "better"
    else:
        slo = "same"
    worker_seconds = (
        sum(b.worker_seconds for _, b, _ in runs),
        sum(a.worker_seconds for _, _, a in runs),
    )
    peak = (
        max((b.peak_memory_mb for _, b, _ in runs), default=0.0),
        max((a.peak_memory_mb for _, _, a in runs), default=0.0),
    )
    cost = compare_cost(worker_seconds, peak)
    crossed = any(b.slo_met != a.slo_met for _, b, a in runs)
    verdict = verdict_of(slo, cost, crossed=crossed)
    named = len(runs) > 1
    line = f"{_slo_text(per_trace, yardstick, named)}; {_cost_text(worker_seconds, peak)}"
    return PoolVerdict(verdict=verdict, slo_worse="worse" in changes, slo=slo, cost=cost, line=line)


def judge_added(runs: Sequence[tuple[str, PoolMetrics]], yardstick: Yardstick) -> PoolVerdict:
    missed = [(trace, m) for trace, m in runs if not m.slo_met]
    hours = sum(m.worker_seconds for _, m in runs) / 3600.0
    if missed:
        parts = [
            _on(trace, len(runs) > 1) + f"{percent(m.miss_fraction)} of jobs over "
            f"{seconds(yardstick.wait_s)}, allows {percent(yardstick.allowed_fraction)}"
            for trace, m in missed
        ]
        text = "new pool, misses its SLO: " + "; ".join(parts)
    else:
        text = "new pool, meets its SLO" + (" on every trace" if len(runs) > 1 else "")
    return PoolVerdict(
        verdict="added",
        slo_worse=bool(missed),
        slo=None,
        cost=None,
        line=f"{text}; {hours:.2f} worker-h",
    )


def judge_removed(
    orphaned: Mapping[str, Mapping[str, int]], new_owners: Mapping[str, str]
) -> PoolVerdict:
    """`orphaned`: trace → queue → jobs of this pool's queues no pool consumes at HEAD;
    `new_owners`: queue → the pool consuming it at HEAD."""
    left = _lost_jobs_text(orphaned)
    if left:
        line = f"pool removed; no pool consumes {left} now"
    elif new_owners:
        moved = ", ".join(f"`{q}` by `{p}`" for q, p in new_owners.items())
        line = f"pool removed; its queues are consumed by other pools now ({moved})"
    else:
        line = "pool removed; its queues have no jobs in the traces"
    return PoolVerdict(verdict="removed", slo_worse=bool(left), slo=None, cost=None, line=line)


def with_lost_jobs(verdict: PoolVerdict, lost: Mapping[str, Mapping[str, int]]) -> PoolVerdict:
    """A pool that stopped consuming a queue no other pool took over: its jobs in the traces
    are never served, which is worse on the SLO whatever the pool's own numbers say."""
    text = _lost_jobs_text(lost)
    if not text:
        return verdict
    return PoolVerdict(
        verdict="worse",
        slo_worse=True,
        slo=verdict.slo,
        cost=verdict.cost,
        line=f"no pool consumes {text} now; {verdict.line}",
    )


def _lost_jobs_text(lost: Mapping[str, Mapping[str, int]]) -> str:
    """`12 jobs of queue `mail` in day, ...` for trace → queue → jobs ("" when none)."""
    return ", ".join(
        f"{n} jobs of queue `{q}` in {t}"
        for t, queues in lost.items()
        for q, n in queues.items()
        if n
    )


def _on(trace: str, named: bool) -> str:
    return f"on {trace}: " if named else ""


def _slo_text(
    per_trace: Sequence[tuple[str, SloChange, PoolMetrics, PoolMetrics]],
    yardstick: Yardstick,
    named: bool,
) -> str:
    changed = [item for item in per_trace if item[1] != "same"]
    if not changed:
        missing = [trace for trace, _, _, a in per_trace if not a.slo_met]
        if not missing:
            return "meets its SLO as before"
        where = f" on {', '.join(missing)}" if named else ""
        return f"misses its SLO as before{where}"
    parts = []
    for trace, change, before, after in changed:
        if change == "worse":
            what = "misses its SLO now" if before.slo_met else "misses its SLO by more"
        else:
            what = "meets its SLO now" if after.slo_met else "misses its SLO by less"
        parts.append(
            f"{what}{' on ' + trace if named else ''} ({percent(before.miss_fraction)} → "
            f"{percent(after.miss_fraction)} of jobs over {seconds(yardstick.wait_s)}, allows "
            f"{percent(yardstick.allowed_fraction)})"
        )
    return "; ".join(parts)


def _cost_text(worker_seconds: tuple[float, float], peak: tuple[float, float]) -> str:
    parts = []
    before, after = worker_seconds
    if _moved(before, after):
        if before > 0:
            share = abs(after - before) / before * 100.0
            parts.append(f"{share:.0f} % {'more' if after > before else 'fewer'} worker-hours")
        else:
            parts.append(f"worker-hours 0 → {after / 3600.0:.2f}")
    if _moved(*peak):
        parts.append(f"peak memory {peak[0]:.0f} → {peak[1]:.0f} MB")
    return ", ".join(parts) if parts else "same cost"


def percent(fraction: float) -> str:
    """A share as a percentage for people: `0 %`, `<0.1 %`, `12.5 %`."""
    if fraction <= 0:
        return "0 %"
    if fraction < 0.001:
        return "<0.1 %"
    return f"{round(fraction * 100.0, 1):g} %"


def seconds(value: float) -> str:
    return f"{round(value, 1):g} s"
