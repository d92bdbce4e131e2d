"""Fixtures that start a real redis-server and a real supervisord on temporary sockets/ports.

When CI=true a missing binary fails the test instead of skipping it: CI must prove the
integration paths, not quietly step around them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from autoscaler.testing.laravel_app import missing_php
from autoscaler.testing.stack import RedisServer, Supervisord, find_binary

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_binary(name: str) -> None:
    if find_binary(name) is None:
        message = f"{name} is not installed"
        if IN_CI:
            pytest.fail(f"{message}; CI=true forbids skipping integration tests")
        pytest.skip(message)


def require_php() -> None:
    """PHP with phpredis, pcntl and Debian's Laravel 8, for the real Laravel app's tests."""
    problem = missing_php()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"{problem}; CI=true forbids skipping integration tests")
        pytest.skip(problem)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session; use `redis_client` for a flushed database."""
    require_binary("redis-server")
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis_server.client()
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, for tests that stop or restart it."""
    require_binary("redis-server")
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def supervisord(tmp_path: Path) -> Iterator[Supervisord]:
    """A real supervisord of this test's own, with an empty include directory."""
    require_binary("supervisord")
    # A short path: unix socket paths are limited to ~107 bytes.
    server = Supervisord(tmp_path.resolve() / "sv").start()
    yield server
    server.stop()


@pytest.fixture
def worker_command() -> str:
    """The fake Laravel worker, as a Supervisor `command=` would start it."""
    return f"{sys.executable} -m autoscaler.testing.worker"
