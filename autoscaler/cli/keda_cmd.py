"""`autoscaler keda serve`: the KEDA external scaler (gRPC) over the daemon's observe + decide."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from autoscaler.cli.common import UsageError, build_settings, load_cli_policies
from autoscaler.constants import EXIT_FAILED, EXIT_OK
from autoscaler.daemon.logsetup import configure_logging
from autoscaler.decide.plan import MemoryBudget
from autoscaler.kubernetes.asks import Asker
from autoscaler.kubernetes.names import SCALER_PORT
from autoscaler.laravel.sampler import connect_redis
from autoscaler.observe.observer import Observer

MISSING = (
    "autoscaler keda serve needs grpcio and protobuf (the `kubernetes` extra): "
    "pip install 'autoscaler[kubernetes]'"
)


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = verbs.add_parser(
        "keda",
        help="serve KEDA: the external scaler for the ScaledObjects of `export keda`",
        description="KEDA integration; see docs/kubernetes.md.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    serve = actions.add_parser(
        "serve",
        help="run the KEDA external scaler (gRPC)",
        description="Serve KEDA's external scaler protocol (IsActive, StreamIsActive, "
        "GetMetricSpec, GetMetrics). Every AUTOSCALER_INTERVAL_S it observes Redis as the "
        "daemon does and runs decide; a ScaledObject whose trigger metadata says "
        "`pool: P` gets decide's count for P as its metric (AverageValue target 1). When "
        "Redis cannot be read the calls fail (gRPC UNAVAILABLE), so KEDA's fallback holds "
        "the replicas. SIGTERM/SIGINT stop it.",
    )
    serve.add_argument(
        "--port", type=int, default=SCALER_PORT, help=f"gRPC port (default {SCALER_PORT})"
    )
    serve.add_argument(
        "--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0: all)"
    )
    serve.add_argument(
        "--policies", type=Path, default=None, help="policy directory (default from settings)"
    )
    serve.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port < 65536:
        raise UsageError(f"--port {args.port}: expected 0 to 65535")
    try:  # grpcio is an optional extra: the other verbs work without it
        from autoscaler.kubernetes.service import ScalerServer
    except ImportError as exc:
        print(f"autoscaler: {MISSING} ({exc})", file=sys.stderr)
        return EXIT_FAILED
    except RuntimeError as exc:  # the generated stubs refuse an older grpcio or protobuf
        print(f"autoscaler: {exc}", file=sys.stderr)
        return EXIT_FAILED
    settings = build_settings(args)
    policies = load_cli_policies(args.policies, settings)
    configure_logging(level=settings.log_level, json_lines=settings.log_json)
    observer = Observer(
        policies=policies,
        client=connect_redis(settings.redis_url, timeout_s=settings.redis_timeout_s),
        prefix=settings.redis_prefix,
        supervisor=None,  # Kubernetes runs the workers
        log_max_bytes=settings.log_max_bytes_per_tick,
    )
    asker = Asker(
        policies=policies,
        observer=observer,
        budget=MemoryBudget(
            budget_mb=settings.memory_budget_mb, reserve_mb=settings.memory_reserve_mb
        ),
        interval_s=settings.interval_s,
    )
    try:
        server = ScalerServer(asker, host=args.host, port=args.port)
    except (OSError, RuntimeError) as exc:
        print(f"autoscaler: {exc}", file=sys.stderr)
        observer.close()
        return EXIT_FAILED
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    print(f"autoscaler keda serve: listening on {args.host}:{server.port}", flush=True)
    try:
        stop.wait()
    finally:
        server.stop()
        observer.close()
    return EXIT_OK
