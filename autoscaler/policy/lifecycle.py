"""A policy's worker-lifecycle tables: `[memory]` (the size the budget takes a worker to be)
and `[lifecycle]` (recycling workers). docs/lifecycle.md explains them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from autoscaler.policy.strict import StrictModel


class MemorySizing(StrictModel):
    """How big the memory budget takes one of this pool's workers to be."""

    size: Literal["declared", "measured"] = Field(
        default="declared",
        description="declared: memory_per_worker_mb. measured: the largest worker's resident "
        "memory over window_s (declared until min_samples ticks are measured), never above "
        "the worker's --memory plus margin_mb.",
    )
    window_s: float = Field(
        default=3600.0, gt=0, description="Window of the measured high-water per worker, s."
    )
    min_samples: int = Field(
        default=12, ge=1, description="Ticks measured before the measured size is used."
    )
    margin_mb: float = Field(
        default=64.0,
        ge=0,
        description="RSS a worker holds beyond PHP's own --memory count (the binary, "
        "extensions, opcache): the measured size is capped at --memory plus this.",
    )


class Lifecycle(StrictModel):
    """Recycling workers: a worker past a limit is replaced surge-first (docs/lifecycle.md)."""

    max_rss_mb: float | None = Field(
        default=None,
        gt=0,
        description="Recycle a worker whose resident memory (with its children) exceeds this, "
        "MB (none: never for memory).",
    )
    max_age_s: float | None = Field(
        default=None, gt=0, description="Recycle a worker older than this, s (none: never)."
    )
    alert_recycles_per_hour: int = Field(
        default=6,
        ge=1,
        description="More recycles than this in an hour raise a `recycling` alert: a leak to "
        "fix in the code.",
    )
