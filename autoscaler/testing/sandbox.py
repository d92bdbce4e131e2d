"""A whole throwaway stack in one directory: real redis-server, real supervisord, policies whose
workers are fake Laravel workers, and the settings a daemon needs to manage them.

Used by the end-to-end tests and by `autoscaler demo`; everything it starts stops on close.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis import Redis

from autoscaler.policy.tomlfmt import toml_value
from autoscaler.settings import Settings, load_settings
from autoscaler.testing.laravel import make_payload, push
from autoscaler.testing.stack import RedisServer, Supervisord

PREFIX = "laravel_database_"


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxPool:
    name: str
    queues: tuple[str, ...]
    min_processes: int = 1
    static_processes: int = 1
    max_processes: int = 6
    slo_wait_s: float = 5.0
    run_time_s: float = 0.5
    memory_mb: float = 64
    priority: int = 100
    slo_knobs: dict[str, Any] = field(default_factory=dict)
    worker_args: str = ""  # more flags for the stand-in worker, e.g. "--grow-mb-per-job 5"
    lifecycle: dict[str, Any] = field(default_factory=dict)  # the policy's [lifecycle] table


@dataclass
class Sandbox:
    root: Path
    pools: tuple[SandboxPool, ...]
    redis: RedisServer = field(init=False)
    supervisord: Supervisord = field(init=False)

    def __post_init__(self) -> None:
        self.redis = RedisServer(self.root / "redis")
        self.supervisord = Supervisord(self.root / "sv")

    @property
    def policies_dir(self) -> Path:
        return self.root / "policies"

    @property
    def include_file(self) -> Path:
        return self.supervisord.include_dir / "autoscaler-workers.conf"

    @property
    def record(self) -> Path:
        """Every finished job, one line each (see autoscaler/testing/worker.py)."""
        return self.root / "jobs.txt"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    def start(self) -> Sandbox:
        self.root.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        self.redis.start()
        self.supervisord.start()
        self.write_policies()
        return self

    def stop(self) -> None:
        self.supervisord.stop()
        self.redis.stop()

    def write_policies(self) -> None:
        self.policies_dir.mkdir(exist_ok=True)
        for pool in self.pools:
            (self.policies_dir / f"{pool.name}.toml").write_text(self.policy_text(pool))

    def policy_text(self, pool: SandboxPool) -> str:
        command = (
            f"{sys.executable} -m autoscaler.testing.worker --redis-url {self.redis.url} "
            f"--prefix {PREFIX} --queue={','.join(pool.queues)} --sleep=0.1 --timeout=20 "
            f"--record {self.record}" + (f" {pool.worker_args}" if pool.worker_args else "")
        )
        lines = [
            f"queues = {toml_value(list(pool.queues))}",
            f"program = {toml_value(f'sandbox-{pool.name}')}",
            f"command = {toml_value(command)}",
            f"min_processes = {pool.min_processes}",
            f"static_processes = {pool.static_processes}",
            f"max_processes = {pool.max_processes}",
            f"memory_per_worker_mb = {toml_value(float(pool.memory_mb))}",
            f"priority = {pool.priority}",
            f"expected_run_time_s = {toml_value(pool.run_time_s)}",
            "",
            "[slo]",
            f"wait_s = {toml_value(pool.slo_wait_s)}",
            "",
            "[strategy.slo]",
            *(f"{key} = {toml_value(value)}" for key, value in pool.slo_knobs.items()),
            "",
            "[supervisor]",
            "stopwaitsecs = 30",
            "startsecs = 1",
            f"stdout_logfile = {toml_value(str(self.log_dir / f'{pool.name}.log'))}",
            "",
            "[lifecycle]",
            *(f"{key} = {toml_value(value)}" for key, value in pool.lifecycle.items()),
        ]
        return "\n".join(lines) + "\n"

    def env(self, **extra: str) -> dict[str, str]:
        """AUTOSCALER_* variables for a daemon managing this sandbox (for a subprocess)."""
        values = {
            "AUTOSCALER_REDIS_URL": self.redis.url,
            "AUTOSCALER_REDIS_PREFIX": PREFIX,
            "AUTOSCALER_SUPERVISOR_URL": self.supervisord.url,
            "AUTOSCALER_INCLUDE_FILE": str(self.include_file),
            "AUTOSCALER_POLICIES_DIR": str(self.policies_dir),
            "AUTOSCALER_MEMORY_BUDGET_MB": "2048",
            "AUTOSCALER_INTERVAL_S": "1",
            "AUTOSCALER_SUMMARY_INTERVAL_S": "30",
        }
        values.update(extra)
        return {**{k: v for k, v in os.environ.items() if not k.startswith("AUTOSCALER_")},
                **values}  # fmt: skip

    def settings(self, **overrides: Any) -> Settings:
        """Settings for an in-process daemon (the environment is not consulted for these)."""
        values: dict[str, Any] = {
            "redis_url": self.redis.url,
            "redis_prefix": PREFIX,
            "supervisor_url": self.supervisord.url,
            "include_file": self.include_file,
            "policies_dir": self.policies_dir,
            "memory_budget_mb": 2048,
            "interval_s": 1.0,
        }
        values.update(overrides)
        return load_settings(**values)

    def client(self) -> Redis:
        return self.redis.client()

    def push(self, queue: str, count: int, *, run_s: float, prefix: str = PREFIX) -> list[str]:
        """Push `count` jobs as Laravel does (createdAt set); returns their ids."""
        client = self.client()
        ids = []
        now = time.time()
        for _ in range(count):
            job_id = uuid.uuid4().hex
            push(client, prefix, queue, make_payload(run_s=run_s, created_at=now, job_id=job_id))
            ids.append(job_id)
        client.close()
        return ids

    def finished_jobs(self) -> list[str]:
        if not self.record.exists():
            return []
        return [line.split()[0] for line in self.record.read_text().splitlines() if line]
