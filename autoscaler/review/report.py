"""The Markdown view of a policy diff report, for a pull request comment.

Short on top (one status line, one row per pool that changed), the numbers per trace below,
the long parts folded in <details>. Only the report's (rounded) values are printed, so the
same report always gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from autoscaler.review.verdict import percent, seconds
from autoscaler.simulate.report import markdown_table

VERDICT_MARKS = {
    "worse": "❌ worse",
    "trade-off": "⚖️ trade-off",
    "removed": "🗑️ removed",
    "added": "🆕 added",
    "better": "✅ better",
    "same": "➖ same",
}
FOLD_FIELD_LINES = 12  # more changed-field lines than this are folded
FOLD_TRACES = 2  # more traces than this: each trace's table is folded


def render_markdown(report: dict[str, Any]) -> str:
    base, head = report["base"], report["head"]
    out = [f"### Policy review: {_side_label(base)} → {_side_label(head)}", ""]
    if not head["valid"]:
        out += _invalid(head, "HEAD", folded=False)
        if not base["valid"]:
            out += _invalid(base, "BASE", folded=True)
        return "\n".join(out).rstrip("\n") + "\n"
    pools: list[dict[str, Any]] = report["pools"]
    shown = [p for p in pools if not _quiet(p)]
    quiet = sorted(p["pool"] for p in pools if _quiet(p))
    out += [_status_line(report, shown, quiet), ""]
    if not base["valid"]:
        out += [
            f"⚠️ BASE is invalid ({base['note']}): every pool at HEAD is reported as added.",
            "",
        ]
        out += _invalid(base, "BASE", folded=True)
    if shown:
        out += _table(
            ["pool", "verdict", "why"],
            [[_code(p["pool"]), VERDICT_MARKS[p["verdict"]], _inline(p["line"])] for p in shown],
        )
        out.append("")
    if quiet:
        out += [f"Unchanged (same fields, same results): {', '.join(map(_code, quiet))}.", ""]
    out += _changed_fields(shown)
    out += _trace_tables(report, shown)
    if report["notes"]:
        out += ["**Notes**", ""] + [f"- {_inline(note)}" for note in report["notes"]] + [""]
    out += _method(report)
    return "\n".join(out).rstrip("\n") + "\n"


def _quiet(pool: dict[str, Any]) -> bool:
    return bool(pool["status"] == "unchanged" and pool["verdict"] == "same")


def _status_line(
    report: dict[str, Any], shown: Sequence[dict[str, Any]], quiet: Sequence[str]
) -> str:
    worse = report["worse_on_slo"]
    if worse:
        names = ", ".join(map(_code, worse))
        head = f"❌ **{len(worse)} pool{'s' if len(worse) > 1 else ''} worse on its SLO**: {names}."
    else:
        head = "✅ **No pool is worse on its SLO.**"
    counts: dict[str, int] = {}
    for pool in shown:
        counts[pool["verdict"]] = counts.get(pool["verdict"], 0) + 1
    parts = [f"{counts[v]} {v}" for v in VERDICT_MARKS if counts.get(v)]
    if quiet:
        parts.append(f"{len(quiet)} unchanged")
    traces = len(report["traces"])
    return f"{head} Verdicts: {', '.join(parts)}; simulated on {traces} trace{'s' * (traces > 1)}."


def _invalid(side: dict[str, Any], name: str, *, folded: bool) -> list[str]:
    errors = side["errors"]
    rows = [
        [_code(e["file"]), str(e["line"] or ""), _code(e["field"]), _inline(e["problem"])]
        for e in errors
    ]
    table = _table(["file", "line", "field", "problem"], rows)
    if folded:
        return [
            f"<details><summary>{len(errors)} problem(s) at BASE</summary>",
            "",
            *table,
            "",
            "</details>",
            "",
        ]
    return [
        f"❌ **The policies at {name} are invalid** ({len(errors)} problem"
        f"{'s' * (len(errors) > 1)}); nothing was simulated. `autoscaler check` lists the same.",
        "",
        *table,
        "",
    ]


def _changed_fields(shown: Sequence[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    for pool in shown:
        files = pool["files"]
        if pool["status"] == "added":
            lines.append(f"- {_code(pool['pool'])}: new file {_code(files['head'])}")
        elif pool["status"] == "removed":
            lines.append(f"- {_code(pool['pool'])}: {_code(files['base'])} removed")
        elif pool["changes"]:
            lines.append(f"- {_code(pool['pool'])} ({_code(files['head'])}):")
            lines += [
                f"  - {_code(c['field'])}: {_code(c['before'])} → {_code(c['after'])}"
                for c in pool["changes"]
            ]
        else:
            lines.append(f"- {_code(pool['pool'])}: no field changed (other pools did)")
    if not lines:
        return []
    if len(lines) > FOLD_FIELD_LINES:
        changed = sum(len(p["changes"]) for p in shown)
        return [
            f"<details><summary>Changed fields ({changed})</summary>",
            "",
            *lines,
            "",
            "</details>",
            "",
        ]
    return ["**Changed fields**", "", *lines, ""]


def _trace_tables(report: dict[str, Any], shown: Sequence[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    fold = len(report["traces"]) > FOLD_TRACES
    for index, trace in enumerate(report["traces"]):
        title = f"{_code(trace['name'])}: {trace['duration_s'] / 3600:.2f} h, {trace['jobs']} jobs"
        rows = [_pool_row(pool, pool["traces"][index]) for pool in shown]
        rows.append(_total_row(report["totals"][index]))
        table = _table(["pool", "SLO", "p95 wait", "over SLO", "worker-h", "peak MB"], rows)
        if fold:
            out += [f"<details><summary>{title}</summary>", "", *table, "", "</details>", ""]
        else:
            out += [f"**{title}**", "", *table, ""]
    return out


def _pool_row(pool: dict[str, Any], run: dict[str, Any]) -> list[str]:
    before, after = run["before"], run["after"]
    slo = pool["slo"]

    def over(m: dict[str, Any] | None) -> str | None:
        if m is None:
            return None
        return percent(m["miss_fraction"]) + ("" if m["slo_met"] else " ❌")

    def wait(m: dict[str, Any] | None) -> str | None:
        return None if m is None else seconds(m["wait_p95_s"])

    def hours(m: dict[str, Any] | None) -> str | None:
        return None if m is None else f"{m['worker_seconds'] / 3600:.2f}"

    def memory(m: dict[str, Any] | None) -> str | None:
        return None if m is None else f"{m['peak_memory_mb']:.0f}"

    return [
        _code(pool["pool"]),
        f"p{slo['percentile']:g} ≤ {seconds(slo['wait_s'])}",
        *(_change(f(before), f(after)) for f in (wait, over, hours, memory)),
    ]


def _total_row(totals: dict[str, Any]) -> list[str]:
    before, after = totals["base"], totals["head"]

    def hours(t: dict[str, Any] | None) -> str | None:
        return None if t is None else f"{t['worker_seconds'] / 3600:.2f}"

    def memory(t: dict[str, Any] | None) -> str | None:
        return None if t is None else f"{t['peak_memory_mb']:.0f}"

    budget = (after or before)["memory_budget_mb"]
    return [
        "all pools",
        "",
        "",
        "",
        _change(hours(before), hours(after)),
        f"{_change(memory(before), memory(after))} of {budget:.0f}",
    ]


def _change(before: str | None, after: str | None) -> str:
    if before == after:
        return before or "–"
    return f"{before or '–'} → {after or '–'}"


def _method(report: dict[str, Any]) -> list[str]:
    settings = report["settings"]
    lines = [
        "<details><summary>How this was computed</summary>",
        "",
        f"- BASE: {_side_detail(report['base'])}; HEAD: {_side_detail(report['head'])}.",
        "- Each side is simulated on every trace with its pools' own strategies, through the "
        f"same `decide` the daemon runs: tick {settings['interval_s']:g} s, worker start-up "
        f"{settings['startup_s']:g} s, memory budget {settings['memory_budget_mb']:g} MB "
        f"(reserve {settings['memory_reserve_mb']:g} MB).",
        "- *over SLO*: the share of jobs that waited longer than the pool's SLO wait at HEAD "
        "(both sides are held to it); ❌ more than the SLO allows. *worker-h*: worker time "
        "including idle, starting and draining workers. *peak MB*: the most memory the pool's "
        "workers held at once.",
        "- Verdict: a pool that stops meeting its SLO on a trace is *worse*, one that starts "
        "meeting it *better*, whatever the cost. Otherwise the SLO (fewer or more jobs over "
        "the SLO wait, by over 0.1 points) and the cost (worker-hours, peak memory; changes "
        "under 1 % ignored) decide: *trade-off* when they moved in opposite directions; with "
        "the SLO unchanged, lower cost is *better* and higher cost *worse*.",
        "",
        "</details>",
    ]
    return lines


def _side_label(side: dict[str, Any]) -> str:
    if side["kind"] == "revision":
        return f"{_code(side['spec'])} ({side['commit'][:7]})"
    return _code(side["spec"])


def _side_detail(side: dict[str, Any]) -> str:
    if side["kind"] == "revision":
        return f"{_code(side['path'])} at {_code(side['spec'])} ({side['commit']})"
    return f"directory {_code(side['path'])}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return markdown_table(headers, rows).split("\n")


def _inline(text: str) -> str:
    """Free text on one line; `<` escaped so nothing is read as HTML."""
    return " ".join(text.split()).replace("<", "&lt;")


def _code(text: str) -> str:
    """`text` as a code span; a fence longer than any run of backticks inside it."""
    text = " ".join(text.splitlines())
    longest = run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"
