"""The real Laravel 8 application shipped in `autoscaler/data/laravel_app`, for tests and `demo`.

It boots on Debian's packages (`apt-get install php-cli php-laravel-framework php-redis`:
PHP 8.2, Laravel 8.83 loaded through /usr/share/php/Illuminate/autoload.php), with no
composer and no network. Its workers are the real `php artisan queue:work`; its `jobs:push`
command pushes N jobs of S seconds the way an application does, and every run of a job
appends one JSON line to the Redis list `runs` (under the app's key prefix).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis

from autoscaler.bundled import laravel_app_dir
from autoscaler.testing.stack import find_binary

LARAVEL_AUTOLOAD = Path("/usr/share/php/Illuminate/autoload.php")
RUNS_KEY = "runs"  # the app's list of job runs, under its prefix
DEBIAN_PACKAGES = "php-cli php-laravel-framework php-redis"


def missing_php() -> str | None:
    """Why the real Laravel app cannot run here, or None when it can."""
    php = find_binary("php")
    if php is None:
        return f"php is not installed (apt-get install {DEBIAN_PACKAGES})"
    if not LARAVEL_AUTOLOAD.is_file():
        return f"{LARAVEL_AUTOLOAD} is missing (apt-get install php-laravel-framework)"
    try:
        modules = subprocess.run(
            [php, "-m"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.split()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{php} -m failed: {exc}"
    for module in ("redis", "pcntl"):
        if module not in modules:
            return f"PHP has no {module} extension (apt-get install {DEBIAN_PACKAGES})"
    return None


@dataclass(frozen=True, slots=True)
class PushedJob:
    id: str
    pushed_at_s: float  # unix time just after Redis took it


@dataclass
class LaravelApp:
    """The app pointed at one Redis (host and port from a redis:// URL) and key prefix."""

    redis_url: str
    prefix: str
    runtime_dir: Path  # Laravel's manifests and storage: outside the package
    directory: Path = field(default_factory=laravel_app_dir)

    @property
    def artisan(self) -> Path:
        return self.directory / "artisan"

    def env(self) -> dict[str, str]:
        """The variables the app reads (config/*.php); also a Supervisor `environment`."""
        url = urlsplit(self.redis_url)
        return {
            "REDIS_HOST": url.hostname or "127.0.0.1",
            "REDIS_PORT": str(url.port or 6379),
            "REDIS_DB": (url.path.strip("/") or "0"),
            "REDIS_PREFIX": self.prefix,
            "APP_RUNTIME_DIR": str(self.runtime_dir),
        }

    def worker_command(self, queues: str, *, sleep_s: float = 0.1, extra: str = "") -> str:
        """`php artisan queue:work redis ...` as a Supervisor `command=` starts it."""
        php = find_binary("php") or "php"
        command = (
            f"{php} {self.artisan} queue:work redis --queue={queues} --sleep={sleep_s:g} "
            "--timeout=20 --tries=1"
        )
        return f"{command} {extra}".strip()

    def run_artisan(self, *args: str, timeout_s: float = 120.0) -> str:
        """Run one artisan command; its stdout. Raises CalledProcessError with its output."""
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [find_binary("php") or "php", str(self.artisan), *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env={**os.environ, **self.env()},
            check=False,
        )
        if result.returncode != 0:
            raise subprocess.CalledProcessError(
                result.returncode, result.args, result.stdout, result.stderr
            )
        return result.stdout

    def push(
        self,
        queue: str,
        count: int,
        *,
        seconds: float = 0.0,
        kind: str = "plain",
        spread_s: float = 0.0,
        delay_s: int = 0,
        ballast_mb: int = 0,
        tag: str = "",
    ) -> list[PushedJob]:
        """`artisan jobs:push`: the ids of the jobs and when each was pushed."""
        out = self.run_artisan(
            "jobs:push", str(count), f"--seconds={seconds:g}", f"--queue={queue}",
            f"--kind={kind}", f"--spread={spread_s:g}", f"--delay={delay_s}",
            f"--ballast-mb={ballast_mb}", f"--tag={tag}",
        )  # fmt: skip
        jobs = []
        for line in out.splitlines():
            job_id, _, at = line.strip().partition(" ")
            if job_id and at:
                jobs.append(PushedJob(job_id, float(at)))
        return jobs

    def runs(self, client: redis.Redis) -> list[dict[str, Any]]:
        """Every run of every job so far, in the order they finished."""
        raw: list[bytes] = client.lrange(self.prefix + RUNS_KEY, 0, -1)  # type: ignore[assignment]
        return [json.loads(item) for item in raw]
