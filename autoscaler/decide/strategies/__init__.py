"""The strategies a policy can name in `strategy.name`, each a runner over PoolTicks.

- `slo`: the project's own (strategies/slo.py, docs/slo-strategy.md);
- `static`: the hand-written count;
- `horizon`: Laravel Horizon's auto balancing;
- `hpa`: KEDA's Redis-list trigger feeding the Kubernetes HPA;
- `step`: a Judoscale/HireFire-style latency band;
- `celery`: Celery's `worker --autoscale=max,min`.

Each module exposes its core rule as documented pure functions (tested against the cases in
docs/research.md) and a `run` adapter that applies it to the ticks.
"""

from __future__ import annotations

from autoscaler.decide.strategies import celery, horizon, hpa, slo, static, step
from autoscaler.decide.strategies.base import PoolTick, Runner

RUNNERS: dict[str, Runner] = {
    "slo": slo.run,
    "static": static.run,
    "horizon": horizon.run,
    "hpa": hpa.run,
    "step": step.run,
    "celery": celery.run,
}

__all__ = ["RUNNERS", "PoolTick", "Runner"]
