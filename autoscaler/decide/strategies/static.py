"""Strategy `static`: the fixed count of the hand-written Supervisor configuration."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autoscaler.decide.strategies.base import PoolTick


def static_count(static_processes: int) -> int:
    """What the hand-written config ran (`numprocs`): the count never changes."""
    return static_processes


def run(
    ticks: list[PoolTick], now_s: float, interval_s: float, shared: Mapping[str, Any]
) -> dict[str, Any]:
    for tick in ticks:
        count = static_count(tick.const.static_processes)
        tick.wanted = count
        tick.reason = f"static {count}"
        tick.memory = None
    return {}
