"""Kubernetes names for pools and programs: DNS-1123 labels (lowercase, digits, `-`)."""

from __future__ import annotations

import re

# `keda serve`'s gRPC port, and the one `export keda` points the ScaledObjects at
SCALER_PORT = 6000
MAX_LABEL = 63  # DNS-1123 label length, which Deployment and ScaledObject names must fit
_NOT_ALLOWED = re.compile(r"[^a-z0-9-]+")


def dns_label(name: str) -> str:
    """`gift_card_exchange` -> `gift-card-exchange`; ValueError if nothing usable is left."""
    label = _NOT_ALLOWED.sub("-", name.lower()).strip("-")
    if not label:
        raise ValueError(f"{name!r} has no letter or digit to make a Kubernetes name of")
    if len(label) > MAX_LABEL:
        raise ValueError(f"{name!r} gives {label!r}, longer than {MAX_LABEL} characters")
    return label


def metric_name(pool: str) -> str:
    """The external metric a pool's ScaledObject reads (KEDA prefixes it with `s<index>-`)."""
    return f"autoscaler-workers-{_NOT_ALLOWED.sub('-', pool.lower()).strip('-')}"
