"""Small policy sets and traces for the simulator tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autoscaler.policy.loader import PolicySet, load_policies
from tests.policy_helpers import write_policy


def write_pool(directory: Path, name: str, queues: list[str], **overrides: Any) -> Path:
    """A valid policy for pool `name` consuming `queues` (program and --queue to match)."""
    settings: dict[str, Any] = {
        "queues": queues,
        "program": f"{name}-worker",
        "command": f"php artisan queue:work redis --queue={','.join(queues)} --timeout=60",
        **overrides,
    }
    return write_policy(directory, name, **settings)


def policy_set(directory: Path, pools: dict[str, dict[str, Any]]) -> PolicySet:
    """Write one policy per entry (`queues` defaults to [pool]) and load them."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, overrides in pools.items():
        options = dict(overrides)
        queues = options.pop("queues", [name])
        write_pool(directory, name, queues, **options)
    return load_policies(directory)
