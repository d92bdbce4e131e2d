"""Strategy `hpa`: KEDA's Redis-list trigger feeding the Kubernetes HorizontalPodAutoscaler.

Ported rule by rule from kedacore/keda (pkg/scalers/redis_scaler.go, the scale executor) and
kubernetes (pkg/controller/podautoscaler/horizontal.go, replica_calculator.go):

- KEDA's metric is LLEN of the list (jobs in flight are not counted), one trigger per queue;
  the target is an AverageValue of `listLength` per replica. KEDA itself only moves between
  zero and one replica: active when LLEN > activationListLength (checked every
  pollingInterval); scale to zero after cooldownPeriod without activity (minReplicaCount 0).
- The HPA syncs every 15 s. Per metric, with KEDA's default metricType AverageValue:
  ratio = usage / (target × statusReplicas); within the tolerance keep statusReplicas, else
  ⌈usage / target⌉. With metricType Value: ratio = usage / target; within the tolerance
  keep statusReplicas, else ⌈ratio × ready pods⌉ (a worker still starting is not ready).
  Several metrics: the largest.
- Stabilization: up = the lowest recommendation inside the up window (including the new one),
  down = the highest inside the down window; the result is the current (spec) count
  clamped into [up, down].
- Rate limits: per policy, periodStart = current − added + deleted within its period;
  Pods: periodStart ± value; Percent: up ⌈periodStart × (1 + v/100)⌉, down
  ⌊periodStart × (1 − v/100)⌋; selectPolicy Max (default) takes the largest change, Min
  the smallest, Disabled none.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from autoscaler.decide.strategies.base import PoolTick
from autoscaler.policy.model import HpaKnobs, HpaPolicyRule

# (unix time, replicas): a recommendation or a scale event, as the controller records them.
Timed = tuple[float, int]


def average_value_replicas(
    *,
    status_replicas: int,
    usage: float,
    target: float,
    scale_up_tolerance: float,
    scale_down_tolerance: float,
) -> int:
    """GetExternalPerPodMetricReplicas: replicas for an AverageValue target."""
    if status_replicas <= 0:
        return math.ceil(usage / target)
    ratio = usage / (target * status_replicas)
    if 1.0 - scale_down_tolerance <= ratio <= 1.0 + scale_up_tolerance:
        return status_replicas
    return math.ceil(usage / target)


def value_replicas(
    *,
    status_replicas: int,
    ready_pods: int,
    usage: float,
    target: float,
    scale_up_tolerance: float,
    scale_down_tolerance: float,
) -> int:
    """GetExternalMetricReplicas (a Value target) through getUsageRatioReplicaCount: the
    ratio usage/target times the pods that are Ready (a starting worker is not), unless the
    ratio is within the tolerance; from zero replicas, ⌈ratio⌉."""
    ratio = usage / target
    if status_replicas <= 0:
        return math.ceil(ratio)
    if 1.0 - scale_down_tolerance <= ratio <= 1.0 + scale_up_tolerance:
        return status_replicas
    return math.ceil(ratio * ready_pods)


def stabilize(
    *,
    recommendations: Sequence[Timed],
    now_s: float,
    desired: int,
    current: int,
    up_window_s: float,
    down_window_s: float,
) -> int:
    """stabilizeRecommendationWithBehaviors: clamp `current` into [up, down] where up is the
    lowest and down the highest recommendation newer than its window (the new one included)."""
    up = down = desired
    up_cutoff = now_s - up_window_s
    down_cutoff = now_s - down_window_s
    for at_s, value in recommendations:
        if at_s > up_cutoff and value < up:
            up = value
        if at_s > down_cutoff and value > down:
            down = value
    return min(max(current, up), down)


def _period_start(
    current: int,
    up_events: Sequence[Timed],
    down_events: Sequence[Timed],
    period_s: float,
    now_s: float,
) -> int:
    """periodStartReplicas: the count a rule's period started from (the changes made within
    it undone)."""
    cutoff = now_s - period_s
    added = sum(change for at_s, change in up_events if at_s > cutoff)
    deleted = sum(change for at_s, change in down_events if at_s > cutoff)
    return current - added + deleted


def scale_up_limit(
    *,
    current: int,
    up_events: Sequence[Timed],
    down_events: Sequence[Timed],
    rules: Sequence[HpaPolicyRule],
    select: str,
    now_s: float,
) -> int:
    """calculateScaleUpLimitWithScalingRules: the most replicas the policies allow now."""
    if select == "Disabled" or not rules:
        return current
    proposals = []
    for rule in rules:
        start = _period_start(current, up_events, down_events, rule.period_s, now_s)
        if rule.type == "Pods":
            proposals.append(start + rule.value)
        else:
            proposals.append(math.ceil(start * (1 + rule.value / 100)))
    return min(proposals) if select == "Min" else max(proposals)


def scale_down_limit(
    *,
    current: int,
    up_events: Sequence[Timed],
    down_events: Sequence[Timed],
    rules: Sequence[HpaPolicyRule],
    select: str,
    now_s: float,
) -> int:
    """calculateScaleDownLimitWithBehaviors: the fewest replicas the policies allow now
    (selectPolicy Max: the largest change, so the fewest replicas)."""
    if select == "Disabled" or not rules:
        return current
    proposals = []
    for rule in rules:
        start = _period_start(current, up_events, down_events, rule.period_s, now_s)
        if rule.type == "Pods":
            proposals.append(start - rule.value)
        else:
            proposals.append(int(start * (1 - rule.value / 100)))
    return max(proposals) if select == "Min" else min(proposals)


def rate_limit(
    *,
    current: int,
    desired: int,
    min_replicas: int,
    max_replicas: int,
    up_events: Sequence[Timed],
    down_events: Sequence[Timed],
    knobs: HpaKnobs,
    now_s: float,
) -> int:
    """convertDesiredReplicasWithBehaviorRate: bound `desired` by min/max and the rate
    policies (a limit never moves the count the other way)."""
    if desired > current:
        limit = scale_up_limit(
            current=current,
            up_events=up_events,
            down_events=down_events,
            rules=knobs.scale_up_policies,
            select=knobs.scale_up_select_policy,
            now_s=now_s,
        )
        return min(desired, max_replicas, max(limit, current))
    if desired < current:
        limit = scale_down_limit(
            current=current,
            up_events=up_events,
            down_events=down_events,
            rules=knobs.scale_down_policies,
            select=knobs.scale_down_select_policy,
            now_s=now_s,
        )
        return max(desired, min_replicas, min(limit, current))
    return desired


class HpaMemory(NamedTuple):
    spec: int  # the replica count the HPA last set (spec.replicas)
    synced_s: float  # last HPA sync
    polled_s: float | None  # last KEDA activation poll
    active_s: float | None  # last time KEDA saw the list active
    recommendations: tuple[Timed, ...]
    up_events: tuple[Timed, ...]
    down_events: tuple[Timed, ...]


def _keep_recent(items: tuple[Timed, ...], now_s: float, horizon_s: float) -> tuple[Timed, ...]:
    cutoff = now_s - horizon_s
    if not items or items[0][0] > cutoff:
        return items
    return tuple(item for item in items if item[0] > cutoff)


def _longest_period(rules: Sequence[HpaPolicyRule]) -> float:
    return max((rule.period_s for rule in rules), default=0.0)


def hpa_step(
    *,
    tick: PoolTick,
    lengths: Sequence[int],
    now_s: float,
    memory: HpaMemory | None,
) -> tuple[int, str, HpaMemory]:
    """One tick of KEDA + HPA for one pool: (replicas, reason, new memory)."""
    policy = tick.policy
    knobs = policy.strategy.hpa
    min_keda = tick.const.min_processes
    min_hpa = max(1, min_keda)
    max_hpa = tick.const.max_processes
    status = tick.current
    if memory is None:
        # recordInitialRecommendation: the current count is the first recommendation
        memory = HpaMemory(
            spec=tick.previous,
            synced_s=now_s - knobs.sync_period_s,
            polled_s=None,
            active_s=None,
            recommendations=((now_s, tick.previous),),
            up_events=(),
            down_events=(),
        )
    spec = tick.previous
    if spec != memory.spec:  # what was actually applied last time (the budget may cut it)
        change = spec - memory.spec
        if change > 0:
            memory = memory._replace(up_events=(*memory.up_events, (memory.synced_s, change)))
        else:
            memory = memory._replace(down_events=(*memory.down_events, (memory.synced_s, -change)))
        memory = memory._replace(spec=spec)
    total = sum(lengths)

    # KEDA: activation and scale to/from zero, for pools that may run no worker.
    if min_keda == 0 and (
        memory.polled_s is None or now_s - memory.polled_s >= knobs.polling_interval_s
    ):
        active = total > knobs.activation_list_length
        memory = memory._replace(polled_s=now_s, active_s=now_s if active else memory.active_s)
        if spec == 0 and active:
            activation = knobs.activation_list_length
            reason = f"keda: list {total} > activation {activation:g}; 0 -> 1"
            return 1, reason, memory._replace(spec=1)
        if spec > 0 and not active:
            idle_since = memory.active_s if memory.active_s is not None else memory.synced_s
            if now_s - idle_since >= knobs.cooldown_period_s:
                return (
                    0,
                    f"keda: list idle for {knobs.cooldown_period_s:.0f}s; {spec} -> 0",
                    memory._replace(spec=0),
                )
    if spec == 0:
        return 0, f"keda: list {total} not active; hold 0", memory
    if now_s - memory.synced_s < knobs.sync_period_s:
        return spec, f"hpa: list {total}; hold {spec} until the next sync", memory

    # HPA sync.
    up_tolerance = (
        knobs.scale_up_tolerance if knobs.scale_up_tolerance is not None else knobs.tolerance
    )
    down_tolerance = (
        knobs.scale_down_tolerance if knobs.scale_down_tolerance is not None else knobs.tolerance
    )
    proposal = 0
    for length in lengths:
        if knobs.metric_type == "Value":
            replicas_for_metric = value_replicas(
                status_replicas=status,
                ready_pods=tick.running,  # Supervisor's RUNNING: past startsecs
                usage=float(length),
                target=knobs.list_length,
                scale_up_tolerance=up_tolerance,
                scale_down_tolerance=down_tolerance,
            )
        else:
            replicas_for_metric = average_value_replicas(
                status_replicas=status,
                usage=float(length),
                target=knobs.list_length,
                scale_up_tolerance=up_tolerance,
                scale_down_tolerance=down_tolerance,
            )
        proposal = max(proposal, replicas_for_metric)
    stabilized = stabilize(
        recommendations=memory.recommendations,
        now_s=now_s,
        desired=proposal,
        current=spec,
        up_window_s=knobs.scale_up_stabilization_s,
        down_window_s=knobs.scale_down_stabilization_s,
    )
    replicas = rate_limit(
        current=spec,
        desired=stabilized,
        min_replicas=min_hpa,
        max_replicas=max_hpa,
        up_events=memory.up_events,
        down_events=memory.down_events,
        knobs=knobs,
        now_s=now_s,
    )
    window = max(knobs.scale_up_stabilization_s, knobs.scale_down_stabilization_s)
    memory = HpaMemory(
        spec=replicas,
        synced_s=now_s,
        polled_s=memory.polled_s,
        active_s=memory.active_s,
        recommendations=(*_keep_recent(memory.recommendations, now_s, window), (now_s, proposal)),
        up_events=_keep_recent(memory.up_events, now_s, _longest_period(knobs.scale_up_policies)),
        down_events=_keep_recent(
            memory.down_events, now_s, _longest_period(knobs.scale_down_policies)
        ),
    )
    # the event of this change is recorded next tick, from the count actually decided
    memory = memory._replace(spec=spec)
    reason = f"hpa: list {total} / {knobs.list_length:g} per worker -> {proposal}"
    if stabilized != proposal:
        reason += f", stabilized {stabilized}"
    if replicas != stabilized:
        reason += f", rate-limited {replicas}"
    return replicas, reason, memory


def run(
    ticks: list[PoolTick], now_s: float, interval_s: float, shared: Mapping[str, Any]
) -> dict[str, Any]:
    for tick in ticks:
        memory = tick.memory if isinstance(tick.memory, HpaMemory) else None
        # one KEDA trigger per queue: LLEN only (jobs in flight are not counted)
        lengths = [queue.pending for queue in tick.queues]
        tick.wanted, tick.reason, tick.memory = hpa_step(
            tick=tick, lengths=lengths, now_s=now_s, memory=memory
        )
    return {}
