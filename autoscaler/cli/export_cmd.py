"""`autoscaler export keda`: the policies as Kubernetes manifests for KEDA (YAML on stdout)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import urlsplit

from autoscaler.cli.common import UsageError, build_settings, load_cli_policies
from autoscaler.constants import EXIT_OK
from autoscaler.kubernetes.export import (
    NATIVE_LOSSES,
    ExportError,
    ExportOptions,
    manifests,
    redis_target,
    render_yaml,
)
from autoscaler.kubernetes.names import SCALER_PORT

DEFAULT_NAMESPACE = "default"
DEFAULT_IMAGE = "laravel-app:latest"
KEDA_SERVICE = "autoscaler-keda"  # the Service name docs/kubernetes.md gives `keda serve`


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = verbs.add_parser(
        "export",
        help="the policies as manifests for another platform (keda)",
        description="Print the policies as manifests for another platform.",
    )
    targets = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
    keda = targets.add_parser(
        "keda",
        help="a Deployment and a KEDA ScaledObject per policy (YAML)",
        description="Print, per policy, a Deployment running the policy's command "
        "(terminationGracePeriodSeconds from stopwaitsecs, memory request from "
        "memory_per_worker_mb) and a KEDA ScaledObject (min/max from the policy) whose "
        "external trigger is `autoscaler keda serve` with `pool: <pool>`. --native uses "
        "KEDA's own redis list scaler instead and says on stderr what that loses. See "
        "docs/kubernetes.md.",
    )
    keda.add_argument(
        "--policies", type=Path, default=None, help="policy directory (default from settings)"
    )
    keda.add_argument(
        "--namespace", default=DEFAULT_NAMESPACE, help=f"namespace (default {DEFAULT_NAMESPACE})"
    )
    keda.add_argument(
        "--scaler-address",
        metavar="HOST:PORT",
        default=None,
        help="where KEDA reaches `autoscaler keda serve` (default "
        f"{KEDA_SERVICE}.<namespace>.svc:{SCALER_PORT})",
    )
    keda.add_argument(
        "--image",
        default=None,
        help=f"the Laravel application's image that runs the workers (default {DEFAULT_IMAGE})",
    )
    keda.add_argument(
        "--native",
        action="store_true",
        help="use KEDA's built-in redis list scaler (no `keda serve`; loses reserved jobs, "
        "job age and the memory budget)",
    )
    keda.add_argument(
        "--redis-address",
        metavar="HOST:PORT",
        default=None,
        help="with --native: Redis as KEDA reaches it (default: AUTOSCALER_REDIS_URL's)",
    )
    keda.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = build_settings(args)
    policies = load_cli_policies(args.policies, settings)
    if not policies:
        raise UsageError(f"no policy in {args.policies or settings.policies_dir}")
    if args.redis_address is not None and not args.native:
        raise UsageError("--redis-address needs --native")
    scaler = args.scaler_address or f"{KEDA_SERVICE}.{args.namespace}.svc:{SCALER_PORT}"
    if not _host_port(scaler):
        raise UsageError(f"--scaler-address {scaler!r}: expected HOST:PORT")
    try:
        native = (
            redis_target(
                settings.redis_url, prefix=settings.redis_prefix, address=args.redis_address
            )
            if args.native
            else None
        )
        options = ExportOptions(
            namespace=args.namespace,
            scaler_address=scaler,
            image=args.image or DEFAULT_IMAGE,
            native=native,
        )
        documents = manifests(policies, options)
    except ExportError as exc:
        raise UsageError(str(exc)) from None
    try:
        text = render_yaml(documents, header=_header(args, native is not None))
    except ImportError:
        raise UsageError("export keda needs PyYAML: pip install 'autoscaler[kubernetes]'") from None
    sys.stdout.write(text)
    if args.image is None:
        print(
            f"autoscaler: --image not given: the Deployments run {DEFAULT_IMAGE}; "
            "pass your application's image",
            file=sys.stderr,
        )
    if native is not None:
        print("autoscaler: --native: KEDA's redis list scaler does not see:", file=sys.stderr)
        for loss in NATIVE_LOSSES:
            print(f"  - {loss}", file=sys.stderr)
        if urlsplit(settings.redis_url).password:
            print(
                "autoscaler: Redis needs a password: add a TriggerAuthentication and an "
                "authenticationRef to each redis trigger (not written here)",
                file=sys.stderr,
            )
    return EXIT_OK


def _host_port(address: str) -> bool:
    host, _, port = address.rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


def _header(args: argparse.Namespace, native: bool) -> str:
    source = "KEDA's redis list scaler (--native)" if native else "`autoscaler keda serve`"
    return (
        "Generated by `autoscaler export keda` from the policies; regenerate, do not edit.\n"
        f"Scaled by {source}; see docs/kubernetes.md."
    )
