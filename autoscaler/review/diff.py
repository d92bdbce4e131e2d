"""`autoscaler diff`: what a policy change does, simulated on traces, as one report object.

Both sides are validated the way `check` validates (every problem listed), then simulated on
every trace with each pool's own strategy through the production `decide`, exactly as the
daemon would run them (simulation.simulate with a DecideController). The report compares
them per pool: the fields that changed, the waits, SLO misses, worker-hours and peak memory
before and after, and a verdict (policy_verdict.py). review_report.py renders it.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from autoscaler.constants import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from autoscaler.policy.fields import changed_fields
from autoscaler.policy.loader import PolicyError, PolicyErrors, PolicySet, load_policies
from autoscaler.policy.model import Policy
from autoscaler.review.runs import (
    SIDES,
    LoadedTrace,
    SideName,
    Task,
    either,
    load_traces,
    simulate_sides,
)
from autoscaler.review.source import OpenedSource, SourceError, open_source
from autoscaler.review.verdict import (
    PoolMetrics,
    PoolVerdict,
    Yardstick,
    judge_added,
    judge_changed,
    judge_removed,
    with_lost_jobs,
)
from autoscaler.simulate.engine import (
    PoolResult,
    SimulationResult,
    WorldSettings,
)
from autoscaler.simulate.report import pool_report
from autoscaler.traces.loader import TraceError

# Report order: what needs a reviewer's eyes first.
_ORDER = {"worse": 0, "trade-off": 1, "removed": 2, "added": 3, "better": 4, "same": 5}


class DiffError(Exception):
    """Bad arguments, an unreadable revision or trace: a usage error (exit 2)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Side:
    name: SideName
    opened: OpenedSource
    policies: PolicySet  # empty when invalid or absent
    errors: list[PolicyError]
    note: str | None  # why the side has no pools, when it has none


def compare_policies(
    base: str,
    head: str,
    traces: Sequence[Path],
    *,
    default_path: Path,
    world: WorldSettings,
    processes: int = 1,
    cwd: Path | None = None,
) -> dict[str, Any]:
    """The diff report of docs (docs/policy-review.md), `exit_code` included."""
    traces = list(dict.fromkeys(traces))  # a trace named twice is simulated once
    if not traces:
        raise DiffError("at least one --trace is needed")
    with tempfile.TemporaryDirectory(prefix="autoscaler-diff-") as scratch:
        sides = {
            name: _load_side(
                name,
                spec,
                default_path=default_path,
                scratch=Path(scratch) / name,
                cwd=cwd,
                usable_memory_mb=world.usable_memory_mb,
            )
            for name, spec in zip(SIDES, (base, head), strict=True)
        }
    report: dict[str, Any] = {side.name: _side_report(side) for side in sides.values()}
    report["settings"] = {
        "interval_s": world.interval_s,
        "startup_s": world.startup_s,
        "memory_budget_mb": world.memory_budget_mb,
        "memory_reserve_mb": world.memory_reserve_mb,
    }
    base_side, head_side = sides["base"], sides["head"]
    if head_side.errors:
        return {
            **report,
            "traces": [],
            "pools": [],
            "totals": [],
            "notes": [],
            "worse_on_slo": [],
            "exit_code": EXIT_USAGE,
        }
    if not base_side.policies and not head_side.policies:
        raise DiffError(f"no policies on either side: {base_side.note}; {head_side.note}")
    try:
        loaded = load_traces(traces, base_side.policies, head_side.policies)
    except TraceError as exc:
        raise DiffError(str(exc)) from exc
    results = simulate_sides(loaded, base_side.policies, head_side.policies, world, processes)
    pools = _pool_reports(loaded, base_side.policies, head_side.policies, results)
    worse = [p["pool"] for p in pools if p["slo_worse"]]
    report.update(
        traces=[
            {
                "name": trace.name,
                "label": label,
                "kind": trace.kind,
                "duration_s": round(trace.duration_s, 3),
                "jobs": trace.jobs,
            }
            for trace, label in zip(
                map(either, loaded), trace_labels([either(t).name for t in loaded]), strict=True
            )
        ],
        pools=pools,
        totals=[_totals(results, index) for index in range(len(loaded))],
        notes=_notes(sides, loaded),
        worse_on_slo=worse,
        exit_code=EXIT_FAILED if worse else EXIT_OK,
    )
    return report


# -- the two sides -------------------------------------------------------------------------


def _load_side(
    name: SideName,
    spec: str,
    *,
    default_path: Path,
    scratch: Path,
    cwd: Path | None,
    usable_memory_mb: float,
) -> Side:
    try:
        opened = open_source(spec, default_path=default_path, scratch=scratch, cwd=cwd)
    except SourceError as exc:
        raise DiffError(f"{name.upper()}: {exc}") from exc
    errors = list(opened.problems)
    empty = PolicySet({}, files={})
    source = opened.source
    where = f"{source.path} at {source.rev}" if source.kind == "revision" else source.path
    if opened.directory is None:
        return Side(
            name=name, opened=opened, policies=empty, errors=errors, note=f"{where} does not exist"
        )
    if not errors and not any(opened.directory.glob("*.toml")):
        return Side(
            name=name,
            opened=opened,
            policies=empty,
            errors=errors,
            note=f"{where} holds no policy files",
        )
    policies = empty
    try:
        policies = load_policies(opened.directory, usable_memory_mb=usable_memory_mb)
    except PolicyErrors as exc:
        errors.extend(opened.shown(error) for error in exc.errors)
    if errors:
        policies = empty
    # Policy files are named as the operator knows them, not by their scratch copies.
    files = {pool: opened.shown_directory / f"{pool}.toml" for pool in policies}
    plural = "s" * (len(errors) > 1)
    note = f"{where} has {len(errors)} problem{plural}" if errors else None
    return Side(
        name=name,
        opened=opened,
        policies=PolicySet(policies, files=files),
        errors=errors,
        note=note,
    )


def _side_report(side: Side) -> dict[str, Any]:
    source = side.opened.source
    return {
        "spec": source.spec,
        "kind": source.kind,
        "path": source.path,
        "commit": source.commit,
        "valid": not side.errors,
        "pools": len(side.policies),
        "note": side.note,
        "errors": [
            {"file": e.file.as_posix(), "line": e.line, "field": e.field, "problem": e.problem}
            for e in side.errors
        ],
    }


# -- per pool ------------------------------------------------------------------------------


def _metrics(result: PoolResult, yardstick: Yardstick) -> PoolMetrics:
    judged = dataclasses.replace(
        result, slo_wait_s=yardstick.wait_s, slo_percentile=yardstick.percentile
    )
    data = pool_report(judged)
    return PoolMetrics(
        jobs=data["jobs"],
        wait_p95_s=data["wait_p95_s"],
        miss_fraction=data["slo_miss_fraction"],
        missed_jobs=data["missed_jobs"],
        slo_met=data["slo_met"],
        worker_seconds=data["worker_seconds"],
        peak_memory_mb=round(result.peak_memory_mb, 1),
        unserved=data["unserved"],
    )


def _pool_reports(
    loaded: Sequence[LoadedTrace],
    base: PolicySet,
    head: PolicySet,
    results: Mapping[Task, SimulationResult],
) -> list[dict[str, Any]]:
    names = [either(trace).name for trace in loaded]
    labels = trace_labels(names)  # in the one-line verdicts
    out = []
    for pool in sorted(set(base) | set(head)):
        before, after = base.get(pool), head.get(pool)
        judged = after or before
        assert judged is not None  # the pool is on one side at least
        slo = judged.slo
        yardstick = Yardstick(wait_s=slo.wait_s, percentile=slo.percentile)
        runs: list[dict[str, Any]] = []
        for index, name in enumerate(names):
            old = _metrics(results[("base", index)].pools[pool], yardstick) if before else None
            new = _metrics(results[("head", index)].pools[pool], yardstick) if after else None
            runs.append({"trace": name, "before": old, "after": new})
        lost = _lost_jobs(pool, base, head, loaded, labels)
        changes = changed_fields(before, after) if before and after else []
        labelled = [(label, r["before"], r["after"]) for label, r in zip(labels, runs, strict=True)]
        if before and after:
            verdict = with_lost_jobs(judge_changed(labelled, yardstick), lost)
            status = "changed" if changes else "unchanged"
            if not changes and verdict.verdict != "same":
                verdict = _moved_by_others(verdict, before, results, len(names))
        elif after:
            verdict = judge_added([(label, a) for label, _, a in labelled], yardstick)
            status = "added"
        else:
            owners = {q: o for q in judged.queues if (o := head.pool_for_queue(q)) is not None}
            verdict = judge_removed(lost, owners)
            status = "removed"
        out.append(
            _pool_entry(
                pool,
                status=status,
                verdict=verdict,
                yardstick=yardstick,
                base=base,
                head=head,
                changes=changes,
                runs=runs,
            )
        )
    out.sort(key=lambda p: (not p["slo_worse"], _ORDER[p["verdict"]], p["pool"]))
    return out


def _moved_by_others(
    verdict: PoolVerdict,
    policy: Policy,
    results: Mapping[Task, SimulationResult],
    traces: int,
) -> PoolVerdict:
    """An unchanged pool's results moved: the only link between pools in a simulation is
    the memory budget, so say whether it binds (no room left for one more of its workers)."""
    peaks = [
        (results[(side, i)].peak_memory_mb, results[(side, i)].memory_budget_mb)
        for i in range(traces)
        for side in ("base", "head")
    ]
    peak, budget = max(peaks)
    if any(p + policy.memory_per_worker_mb > b for p, b in peaks):
        why = (
            f"; no field of it changed: the memory budget binds (peak {peak:.0f} of "
            f"{budget:.0f} MB), so other pools' changes moved it"
        )
    else:
        why = "; no field of it changed and the memory budget does not bind"
    return dataclasses.replace(verdict, line=verdict.line + why)


def trace_labels(names: Sequence[str]) -> list[str]:
    """Short trace names for the one-line verdicts: the file names without `.csv` and `.gz`
    (`traces/day.csv.gz` is `day`), or the names as given when two would read alike."""
    short = []
    for name in names:
        label = PurePosixPath(name).name.removesuffix(".gz").removesuffix(".csv")
        short.append(label or name)
    return short if len(set(short)) == len(short) else list(names)


def _lost_jobs(
    pool: str,
    base: PolicySet,
    head: PolicySet,
    loaded: Sequence[LoadedTrace],
    names: Sequence[str],
) -> dict[str, dict[str, int]]:
    """trace -> queue -> jobs of queues `pool` consumed at BASE that no pool consumes at HEAD."""
    policy = base.get(pool)
    if policy is None:
        return {}
    lost: dict[str, dict[str, int]] = {}
    for name, trace in zip(names, loaded, strict=True):
        jobs = trace["base"].queues
        for queue in policy.queues:
            if head.pool_for_queue(queue) is None and queue in jobs and len(jobs[queue]):
                lost.setdefault(name, {})[queue] = len(jobs[queue])
    return lost


def _pool_entry(
    pool: str,
    *,
    status: str,
    verdict: PoolVerdict,
    yardstick: Yardstick,
    base: PolicySet,
    head: PolicySet,
    changes: Sequence[Any],
    runs: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "pool": pool,
        "status": status,
        "verdict": verdict.verdict,
        "slo_worse": verdict.slo_worse,
        "line": verdict.line,
        "slo_change": verdict.slo,
        "cost_change": verdict.cost,
        "slo": {"wait_s": yardstick.wait_s, "percentile": yardstick.percentile},
        "files": {
            "base": base.files[pool].as_posix() if pool in base else None,
            "head": head.files[pool].as_posix() if pool in head else None,
        },
        "changes": [dataclasses.asdict(change) for change in changes],
        "traces": [
            {
                "trace": run["trace"],
                "before": dataclasses.asdict(run["before"]) if run["before"] else None,
                "after": dataclasses.asdict(run["after"]) if run["after"] else None,
            }
            for run in runs
        ],
    }


def _totals(results: Mapping[Task, SimulationResult], index: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for side in SIDES:
        result = results.get((side, index))
        out[side] = (
            None
            if result is None
            else {
                "worker_seconds": round(sum(p.worker_seconds for p in result.pools.values()), 1),
                "peak_memory_mb": round(result.peak_memory_mb, 1),
                "memory_budget_mb": round(result.memory_budget_mb, 1),
            }
        )
    return out


def _notes(sides: Mapping[SideName, Side], loaded: Sequence[LoadedTrace]) -> list[str]:
    # An invalid side's note is the report's own warning, with its problems.
    notes = [side.note for side in sides.values() if side.note and not side.errors]
    base, head = sides["base"].policies, sides["head"].policies
    for trace in loaded:
        if "base" not in trace or "head" not in trace:
            continue
        for queue, jobs in trace["base"].queues.items():
            if base.pool_for_queue(queue) is None and len(jobs):
                notes.append(
                    f"at BASE no pool consumed queue `{queue}` ({len(jobs)} jobs in "
                    f"{trace['base'].name}); at HEAD pool `{head.pool_for_queue(queue)}` does"
                )
    return notes
