"""Build valid policy TOML for tests, with overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autoscaler.policy.tomlfmt import toml_value

BASE: dict[str, Any] = {
    "queues": ["emails"],
    "program": "emails-worker",
    "command": "php artisan queue:work redis --queue=emails --timeout=60",
    "min_processes": 1,
    "static_processes": 2,
    "max_processes": 4,
    "memory_per_worker_mb": 128,
    "priority": 100,
    "slo": {"wait_s": 30.0, "percentile": 95.0},
}


def policy_toml(**overrides: Any) -> str:
    data = {**BASE, **overrides}
    return to_toml(data)


def to_toml(data: dict[str, Any], table: str = "") -> str:
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    lines = [f"[{table}]"] if table and scalars else []
    lines += [f"{k} = {toml_value(v)}" for k, v in scalars.items()]
    out = "\n".join(lines) + "\n"
    for key, sub in tables.items():
        out += "\n" + to_toml(sub, f"{table}.{key}" if table else key)
    return out


def write_policy(directory: Path, pool: str, **overrides: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{pool}.toml"
    path.write_text(policy_toml(**overrides))
    return path
