"""`simulate --plot`: waiting jobs, workers and oldest wait over time, a row per pool and a
line per strategy. matplotlib is an optional extra (`pip install 'autoscaler[plot]'`)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from autoscaler.fileio import write_atomic_bytes
from autoscaler.simulate.engine import SimulationResult

MAX_POINTS = 300  # per line: about what a panel can show; longer series are binned
# The oracle is the reference: drawn first, wide and pale, so the others show on top of it.
STYLES: dict[str, dict[str, Any]] = {
    "oracle": {"color": "#f4a6a6", "linewidth": 3.0, "zorder": 1},
    "static": {"color": "#555555", "linewidth": 1.0, "linestyle": "--", "zorder": 2},
    "hpa": {"color": "#9467bd", "linewidth": 1.0, "zorder": 3},
    "step": {"color": "#ff7f0e", "linewidth": 1.0, "zorder": 3},
    "horizon": {"color": "#2ca02c", "linewidth": 1.0, "zorder": 3},
    "celery": {"color": "#8c564b", "linewidth": 1.0, "zorder": 3},
    "slo": {"color": "#1f4fb4", "linewidth": 1.4, "zorder": 4},
}


class PlotUnavailable(Exception):
    """matplotlib is not installed."""


def check_plotting() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise PlotUnavailable("--plot needs matplotlib: pip install 'autoscaler[plot]'") from exc


def _binned(
    times: npt.NDArray[np.float64], values: npt.NDArray[Any], how: str
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """At most MAX_POINTS points: the max (peaks must stay visible) or mean of each bin."""
    values = values.astype(np.float64)
    if times.shape[0] <= MAX_POINTS:
        return times, values
    size = -(-times.shape[0] // MAX_POINTS)
    usable = (times.shape[0] // size) * size
    shaped = values[:usable].reshape(-1, size)
    if how == "max":
        with np.errstate(all="ignore"):
            empty = np.all(np.isnan(shaped), axis=1)
            filled = np.where(np.isnan(shaped), -np.inf, shaped).max(axis=1)
            reduced = np.where(empty, np.nan, filled)
    else:
        reduced = shaped.mean(axis=1)
    return times[:usable:size], reduced


def plot_results(
    results: Sequence[SimulationResult], path: Path, *, description: str | None = None
) -> None:
    """Draw every result's series into one PNG at `path`, or SVG when its name ends in .svg
    (written atomically). Either is the same bytes for the same results and matplotlib (an
    SVG has no date and fixed ids); `description` goes into the file's metadata
    (docs/generate.py keeps a digest of the plotted data there)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    first = results[0]
    pools = list(first.pools)
    hours_total = max(r.series.times_s[-1] for r in results if r.series.times_s.size) / 3600
    unit, scale = ("h", 3600.0) if hours_total > 3 else ("min", 60.0)
    columns = (
        ("waiting jobs", "backlog", "max"),
        ("workers", "workers", "mean"),
        ("oldest wait (s)", "oldest_wait_s", "max"),
    )
    figure, axes = plt.subplots(
        len(pools),
        len(columns),
        figsize=(15, 1.9 * len(pools) + 1.2),
        sharex=True,
        squeeze=False,
    )
    for row, pool in enumerate(pools):
        slo_wait = first.pools[pool].slo_wait_s
        for column, (label, attribute, how) in enumerate(columns):
            title = label
            ax = axes[row][column]
            peak = 0.0
            for result in results:
                series = result.series
                values = getattr(series, attribute)[pool]
                if attribute == "oldest_wait_s":
                    values = np.nan_to_num(values, nan=0.0)  # nothing waits: no wait
                x, y = _binned(series.times_s, values, how)
                peak = max(peak, float(np.max(y)) if y.size else 0.0)
                style = STYLES.get(result.strategy, {"linewidth": 1.0})
                ax.plot(x / scale, y, label=result.strategy, drawstyle="steps-post", **style)
            if attribute == "oldest_wait_s":
                ax.axhline(slo_wait, color="black", linestyle=":", linewidth=0.8)
            # One strategy's disaster (static: minutes of wait) would flatten the others:
            # past 20x the interesting range the axis turns logarithmic.
            linear_up_to = 2 * slo_wait if attribute == "oldest_wait_s" else 10.0
            if attribute != "workers" and peak > 20 * linear_up_to:
                ax.set_yscale("symlog", linthresh=linear_up_to)
                ax.yaxis.set_major_formatter(ScalarFormatter())
                title += ", log scale"
            ax.set_ylim(bottom=0)
            ax.set_title(f"{pool}: {title}", fontsize=9, loc="left")
            ax.tick_params(labelsize=8)
            ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel(f"time ({unit})", fontsize=8)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="upper center", ncol=len(results), fontsize=9)
    figure.suptitle(
        f"{first.trace} (dotted: the pool's SLO wait)",
        fontsize=10,
        y=1 - 0.35 / figure.get_figheight(),
    )
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.75 / figure.get_figheight()))
    buffer = io.BytesIO()
    if path.suffix.lower() == ".svg":
        metadata = {"Date": None, "Description": description}
        with matplotlib.rc_context({"svg.hashsalt": "autoscaler"}):
            figure.savefig(buffer, format="svg", metadata=metadata)
    else:
        extra = {"Description": description} if description is not None else {}
        figure.savefig(buffer, format="png", dpi=100, metadata=extra)
    plt.close(figure)
    write_atomic_bytes(path, buffer.getvalue())
