"""Strategy `step`: a Judoscale/HireFire-style latency band with fixed jumps.

Both services watch queue latency, the age of the oldest waiting job (Judoscale's adapters
report it every 10 s, HireFire checks every minute), and act on a band:
- above the upper threshold, add a fixed jump of workers, then wait an up cooldown before
  adding again;
- below the lower threshold, and only after latency stayed there for the downscale delay
  (counted again after every scale event), remove a fixed jump;
- in between, hold.
An empty queue has latency 0. Thresholds default to fractions of the pool's SLO wait.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from autoscaler.decide.strategies.base import PoolTick, by_identity
from autoscaler.policy.model import Policy


class StepMemory(NamedTuple):
    last_up_s: float | None  # when the last jump up was made
    calm_since_s: float | None  # since when latency has been below the band (and no scaling)


def band(policy: Policy) -> tuple[float, float]:
    """(low, high) latency thresholds in seconds: the knobs, else SLO/10 and SLO/2."""
    knobs = policy.strategy.step
    high = knobs.latency_high_s if knobs.latency_high_s is not None else policy.slo.wait_s / 2
    low = knobs.latency_low_s if knobs.latency_low_s is not None else policy.slo.wait_s / 10
    return min(low, high), high


def step_decision(
    *,
    current: int,
    latency_s: float,
    now_s: float,
    low_s: float,
    high_s: float,
    up_jump: int,
    up_cooldown_s: float,
    down_jump: int,
    downscale_delay_s: float,
    memory: StepMemory,
) -> tuple[int, StepMemory]:
    """The band rule: the new count and the new memory (pure)."""
    if latency_s > high_s:
        last_up = memory.last_up_s
        if last_up is None or now_s - last_up >= up_cooldown_s:
            return current + up_jump, StepMemory(last_up_s=now_s, calm_since_s=None)
        return current, StepMemory(last_up_s=last_up, calm_since_s=None)
    if latency_s < low_s:
        calm_since = memory.calm_since_s if memory.calm_since_s is not None else now_s
        if now_s - calm_since >= downscale_delay_s and current > 0:
            # the delay counts again from this scale event
            return current - down_jump, StepMemory(last_up_s=memory.last_up_s, calm_since_s=now_s)
        return current, StepMemory(last_up_s=memory.last_up_s, calm_since_s=calm_since)
    return current, StepMemory(last_up_s=memory.last_up_s, calm_since_s=None)


_FRESH = StepMemory(last_up_s=None, calm_since_s=None)


class StepRule(NamedTuple):
    """A policy's band and knobs, read from the (immutable) policy once, not every tick."""

    low_s: float
    high_s: float
    up_jump: int
    up_cooldown_s: float
    down_jump: int
    downscale_delay_s: float

    @classmethod
    def of(cls, policy: Policy) -> StepRule:
        knobs = policy.strategy.step
        low, high = band(policy)
        return cls(
            low, high, knobs.up_jump, knobs.up_cooldown_s, knobs.down_jump, knobs.downscale_delay_s
        )


_rules: dict[int, tuple[Policy, StepRule]] = {}


def run(
    ticks: list[PoolTick], now_s: float, interval_s: float, shared: Mapping[str, Any]
) -> dict[str, Any]:
    for tick in ticks:
        memory = tick.memory if isinstance(tick.memory, StepMemory) else _FRESH
        latency = tick.oldest_wait_s
        if latency is None:
            if tick.waiting > 0:  # jobs wait but their age is unknown: no basis to act
                tick.wanted = tick.previous
                tick.memory = memory
                tick.reason = f"step: {tick.waiting} waiting, age unknown; hold {tick.previous}"
                continue
            latency = 0.0
        rule = by_identity(_rules, tick.policy, StepRule.of)
        low, high = rule.low_s, rule.high_s
        count, tick.memory = step_decision(
            current=tick.previous,
            latency_s=latency,
            now_s=now_s,
            low_s=low,
            high_s=high,
            up_jump=rule.up_jump,
            up_cooldown_s=rule.up_cooldown_s,
            down_jump=rule.down_jump,
            downscale_delay_s=rule.downscale_delay_s,
            memory=memory,
        )
        tick.wanted = count
        if count > tick.previous:
            tick.reason = f"step: latency {latency:.0f}s > {high:.0f}s; +{count - tick.previous}"
        elif count < tick.previous:
            tick.reason = (
                f"step: latency {latency:.0f}s < {low:.0f}s for "
                f"{rule.downscale_delay_s:.0f}s; -{tick.previous - count}"
            )
        else:
            tick.reason = f"step: latency {latency:.0f}s, band {low:.0f}-{high:.0f}s; hold {count}"
    return {}
