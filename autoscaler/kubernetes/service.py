"""`autoscaler keda serve`: KEDA's external scaler gRPC service over the Asker's counts.

A ScaledObject's trigger (type `external`) names its pool in its metadata (`pool: <pool>`).
The metric is the worker count decide wants for that pool, with an AverageValue target of 1,
so the HPA's replica count is that number: ratio = count / (1 × replicas), and outside the
tolerance the HPA sets ⌈count / 1⌉ (docs/kubernetes.md). IsActive is `count > 0`: it matters
only for a policy with min_processes = 0, which KEDA scales to and from zero.

Errors are gRPC statuses, never a 0: NOT_FOUND for a pool no policy defines,
INVALID_ARGUMENT for a trigger without `pool`, UNAVAILABLE when no fresh count can be given
(Redis down, for one); KEDA then counts failures and applies the ScaledObject's fallback.
GetMetricSpec needs no observation (the target is always 1), so KEDA can build the HPA while
Redis is still unreachable.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures

import grpc
from loguru import logger

from autoscaler.kubernetes.asks import Asker, AskUnavailable, UnknownPool
from autoscaler.kubernetes.externalscaler import externalscaler_pb2 as pb
from autoscaler.kubernetes.externalscaler import externalscaler_pb2_grpc as pb_grpc
from autoscaler.kubernetes.names import metric_name

POOL_KEY = "pool"  # the trigger metadata key that names the pool
TARGET_PER_REPLICA = 1  # AverageValue target: one unit of the metric per replica
# How often a StreamIsActive call checks that its client is still there between ticks, s.
STREAM_CHECK_S = 1.0
MAX_WORKERS = 16  # gRPC handler threads: KEDA's operator and metrics server, and streams


class ExternalScaler(pb_grpc.ExternalScalerServicer):
    """The four calls of KEDA's externalscaler.proto (StreamMetricSpec is left unimplemented,
    which KEDA takes as "pull the spec": the spec never changes)."""

    def __init__(self, asker: Asker, *, stop: threading.Event | None = None) -> None:
        self.asker = asker
        self.stop = stop or threading.Event()

    def IsActive(  # the proto names its methods
        self, request: pb.ScaledObjectRef, context: grpc.ServicerContext
    ) -> pb.IsActiveResponse:
        return pb.IsActiveResponse(result=self._ask(request, context) > 0)

    def StreamIsActive(
        self, request: pb.ScaledObjectRef, context: grpc.ServicerContext
    ) -> Iterator[pb.IsActiveResponse]:
        """The activity now, then again whenever a tick changes it."""
        sent: bool | None = None
        seen_s: float | None = None
        while context.is_active() and not self.stop.is_set():
            tick = self.asker.wait_for_tick(seen_s, STREAM_CHECK_S)
            if tick is None:
                continue
            seen_s = tick.at_s
            active = self._ask(request, context) > 0
            if active != sent:
                sent = active
                yield pb.IsActiveResponse(result=active)

    def GetMetricSpec(
        self, request: pb.ScaledObjectRef, context: grpc.ServicerContext
    ) -> pb.GetMetricSpecResponse:
        pool = self._pool(request, context)
        spec = pb.MetricSpec(
            metricName=metric_name(pool),
            targetSize=TARGET_PER_REPLICA,
            targetSizeFloat=float(TARGET_PER_REPLICA),
        )
        return pb.GetMetricSpecResponse(metricSpecs=[spec])

    def GetMetrics(
        self, request: pb.GetMetricsRequest, context: grpc.ServicerContext
    ) -> pb.GetMetricsResponse:
        count = self._ask(request.scaledObjectRef, context)
        pool = request.scaledObjectRef.scalerMetadata[POOL_KEY]
        value = pb.MetricValue(
            metricName=metric_name(pool), metricValue=count, metricValueFloat=float(count)
        )
        return pb.GetMetricsResponse(metricValues=[value])

    def _pool(self, ref: pb.ScaledObjectRef, context: grpc.ServicerContext) -> str:
        pool = ref.scalerMetadata.get(POOL_KEY, "")
        where = f"ScaledObject {ref.namespace}/{ref.name}"
        if not pool:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{where}: the external trigger's metadata has no `{POOL_KEY}`",
            )
        try:
            self.asker.check_pool(pool)
        except UnknownPool as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, f"{where}: {exc}")
        return pool

    def _ask(self, ref: pb.ScaledObjectRef, context: grpc.ServicerContext) -> int:
        pool = self._pool(ref, context)
        try:
            return self.asker.ask(pool)
        except AskUnavailable as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))


class ScalerServer:
    """The gRPC server and the ticker thread behind it; `start()`, then `stop()`."""

    def __init__(self, asker: Asker, *, host: str, port: int) -> None:
        self.asker = asker
        self._stop = threading.Event()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=MAX_WORKERS))
        servicer = ExternalScaler(asker, stop=self._stop)
        pb_grpc.add_ExternalScalerServicer_to_server(servicer, self._server)  # type: ignore[no-untyped-call]  # generated
        # port 0: a free port, chosen by the system
        self.port = self._server.add_insecure_port(f"{host}:{port}")
        if self.port == 0:
            raise OSError(f"cannot listen on {host}:{port}")
        self._ticks = threading.Thread(
            target=asker.run, args=(self._stop,), name="keda-ticks", daemon=True
        )

    def start(self) -> None:
        self.asker.tick()  # before serving: no request finds "no observation yet"
        self._ticks.start()
        self._server.start()
        logger.info(
            "KEDA external scaler on port {} for pools {} (a tick every {:g}s)",
            self.port,
            ", ".join(self.asker.policies),
            self.asker.interval_s,
        )

    def stop(self, grace_s: float = 2.0) -> None:
        self._stop.set()
        self._server.stop(grace_s).wait()
        self._ticks.join(timeout=grace_s + self.asker.interval_s)
