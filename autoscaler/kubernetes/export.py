"""`autoscaler export keda`: per policy a Deployment and a KEDA ScaledObject, as YAML.

The ScaledObject's trigger is the served external scaler (`autoscaler keda serve`), which
gives decide's count for the pool as an AverageValue metric with target 1. The HPA KEDA makes
is told to follow that number (docs/kubernetes.md, "HPA traps"):
- no stabilization in either direction: `slo` already keeps its own scale-down window;
- a rate limit that never binds (max_processes pods per 15 s both ways): `slo` already
  bounds its steps (scale_down_step, max_step_up);
- tolerance 0 (behavior.scaleUp/scaleDown.tolerance, Kubernetes' HPAConfigurableTolerance):
  at 20 replicas a count of 21 is a ratio of 1.05, which the default 10 % ignores.
With `native`, the trigger is instead KEDA's own `redis` list scaler on each of the pool's
queues (NATIVE_LOSSES says what that gives up); the HPA then keeps `slo`'s scale-down window
as its stabilization window.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from autoscaler.constants import QUEUE_KEY
from autoscaler.kubernetes.names import dns_label
from autoscaler.policy.model import Policy

SCALED_OBJECT_API = "keda.sh/v1alpha1"
# KEDA checks activity every pollingInterval; 15 s is also the HPA's default sync period.
POLLING_INTERVAL_S = 15
# The HPA rate limits' period, s (the HPA's own default period).
POLICY_PERIOD_S = 15
# Fallback: after this many failed calls in a row, KEDA keeps the current replica count
# (behavior `currentReplicas`, KEDA >= 2.17): no scale-in on missing data, as the daemon.
FALLBACK_FAILURES = 3
CONTAINER = "worker"
NATIVE_LOSSES = (
    "jobs in flight (the `:reserved` set): KEDA counts LLEN only, so busy workers look idle "
    "and a pool running long jobs is scaled in under them",
    "job age: the head job's wait is not read, so a short list of old jobs never raises "
    "the count; the SLO is only approximated by listLength = (SLO wait - startup) / run time",
    "arrival rate and measured run times: no steady-state (Erlang C) count, no learning",
    "the memory budget: each pool scales alone, up to max_processes, whatever the others use",
    "a pool with several queues is sized by its longest list (the HPA takes the largest "
    "trigger), not by their sum",
)


class ExportError(ValueError):
    """A policy that cannot be turned into manifests; the message names the pool."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RedisTarget:
    """Where KEDA's own redis scaler reads the lists (`native` only)."""

    address: str  # host:port
    database: int
    prefix: str  # Laravel's key prefix
    tls: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportOptions:
    namespace: str
    scaler_address: str  # host:port of `autoscaler keda serve`, as seen from KEDA
    image: str  # the Laravel application's image, which runs the policy's command
    native: RedisTarget | None = None  # None: the external scaler


def manifests(policies: Mapping[str, Policy], options: ExportOptions) -> list[dict[str, Any]]:
    """A Deployment then a ScaledObject per pool, in the policies' order."""
    names: dict[str, str] = {}
    documents: list[dict[str, Any]] = []
    for pool, policy in policies.items():
        try:
            name = dns_label(policy.program)
            dns_label(pool)  # the pool's label value
        except ValueError as exc:
            raise ExportError(f"pool {pool}: {exc}") from None
        if name in names:
            raise ExportError(
                f"pools {names[name]} and {pool}: both programs become the Kubernetes name "
                f"{name!r}; rename one `program`"
            )
        names[name] = pool
        documents.append(deployment(pool, policy, name=name, options=options))
        documents.append(scaled_object(pool, policy, name=name, options=options))
    return documents


def labels(pool: str, name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/component": "queue-worker",
        "app.kubernetes.io/managed-by": "autoscaler",
        "autoscaler/pool": dns_label(pool),
    }


def deployment(pool: str, policy: Policy, *, name: str, options: ExportOptions) -> dict[str, Any]:
    """The workers: the policy's command as the container's (exec form, so the worker is PID 1
    and gets SIGTERM itself), a grace period of stopwaitsecs to finish the job in hand, and
    memory_per_worker_mb as the memory request the scheduler packs by."""
    try:
        command = shlex.split(policy.command)
    except ValueError as exc:
        raise ExportError(f"pool {pool}: command: {exc}") from None
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": options.image,
        "command": command,
    }
    if policy.supervisor.directory:
        container["workingDir"] = policy.supervisor.directory
    if policy.supervisor.environment:
        container["env"] = [
            {"name": key, "value": value} for key, value in policy.supervisor.environment.items()
        ]
    container["resources"] = {"requests": {"memory": f"{math.ceil(policy.memory_per_worker_mb)}Mi"}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": options.namespace, "labels": labels(pool, name)},
        "spec": {
            # The hand-picked count to start from; the HPA owns it from then on.
            "replicas": policy.static_processes,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": labels(pool, name)},
                "spec": {
                    "terminationGracePeriodSeconds": policy.stopwaitsecs,
                    "containers": [container],
                },
            },
        },
    }


def scaled_object(
    pool: str, policy: Policy, *, name: str, options: ExportOptions
) -> dict[str, Any]:
    native = options.native
    window_s = math.ceil(policy.strategy.slo.scale_down_window_s)
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
        "minReplicaCount": policy.min_processes,
        "maxReplicaCount": policy.max_processes,
        "pollingInterval": POLLING_INTERVAL_S,
    }
    if policy.min_processes == 0:
        # To zero only after the count has been 0 this long (external: slo's own window has
        # already passed by then; native: the window is this cooldown).
        spec["cooldownPeriod"] = POLLING_INTERVAL_S if native is None else window_s
    spec["fallback"] = {
        "failureThreshold": FALLBACK_FAILURES,
        "replicas": policy.static_processes,
        "behavior": "currentReplicas",
    }
    spec["advanced"] = {
        "horizontalPodAutoscalerConfig": {
            "behavior": hpa_behavior(policy, down_window_s=0 if native is None else window_s)
        }
    }
    spec["triggers"] = (
        [external_trigger(pool, options.scaler_address)]
        if native is None
        else [
            redis_trigger(native, queue=q, list_length=list_length(policy)) for q in policy.queues
        ]
    )
    return {
        "apiVersion": SCALED_OBJECT_API,
        "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": options.namespace, "labels": labels(pool, name)},
        "spec": spec,
    }


def hpa_behavior(policy: Policy, *, down_window_s: int) -> dict[str, Any]:
    """Follow the metric: no tolerance, a rate limit that never binds, and a scale-down
    stabilization of `down_window_s` (0 when slo keeps its own window)."""

    def direction(window_s: int) -> dict[str, Any]:
        return {
            "stabilizationWindowSeconds": window_s,
            "selectPolicy": "Max",
            "policies": [
                {"type": "Pods", "value": policy.max_processes, "periodSeconds": POLICY_PERIOD_S}
            ],
            "tolerance": "0",
        }

    return {"scaleUp": direction(0), "scaleDown": direction(down_window_s)}


def list_length(policy: Policy) -> int:
    """KEDA listLength (waiting jobs per replica) so that the last of them starts within the
    SLO: a worker starts its n-th waiting job after about n × run time, once it has started."""
    usable_s = policy.slo.wait_s - policy.strategy.slo.startup_s
    return max(1, math.floor(usable_s / policy.expected_run_time_s))


def external_trigger(pool: str, scaler_address: str) -> dict[str, Any]:
    return {
        "type": "external",
        "metricType": "AverageValue",
        "metadata": {"scalerAddress": scaler_address, "pool": pool},
    }


def redis_trigger(target: RedisTarget, *, queue: str, list_length: int) -> dict[str, Any]:
    """KEDA's redis list scaler on one of the pool's queues."""
    metadata = {
        "address": target.address,
        "listName": target.prefix + QUEUE_KEY.format(queue=queue),
        "listLength": str(list_length),
        "activationListLength": "0",
        "databaseIndex": str(target.database),
    }
    if target.tls:
        metadata["enableTLS"] = "true"
    return {"type": "redis", "metricType": "AverageValue", "metadata": metadata}


def render_yaml(documents: list[dict[str, Any]], *, header: str) -> str:
    """The documents as one YAML stream, after a comment header."""
    import yaml

    comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    body = yaml.safe_dump_all(documents, sort_keys=False, default_flow_style=False)
    return f"{comment}---\n{body}"


def redis_target(redis_url: str, *, prefix: str, address: str | None = None) -> RedisTarget:
    """Where KEDA reads the lists: AUTOSCALER_REDIS_URL's host, port and database (`address`
    overrides the host:port, e.g. the Redis Service's name inside the cluster). A password is
    never copied into the YAML: KEDA takes it from a TriggerAuthentication."""
    parts = urlsplit(redis_url)
    if parts.scheme not in ("redis", "rediss"):
        raise ExportError(
            "--native: KEDA reaches Redis over TCP, and AUTOSCALER_REDIS_URL is not a "
            "redis:// or rediss:// URL; pass --redis-address HOST:PORT"
        )
    database = parts.path.strip("/")
    if address is None:
        host = parts.hostname or "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        address = f"{host}:{parts.port or 6379}"
    return RedisTarget(
        address=address,
        database=int(database) if database else 0,
        prefix=prefix,
        tls=parts.scheme == "rediss",
    )
