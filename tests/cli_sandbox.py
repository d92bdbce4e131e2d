"""A whole throwaway stack (autoscaler/testing/sandbox.py) for tests that run CLI verbs in
process: its settings in the environment, the working directory beside it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from autoscaler.testing.sandbox import Sandbox, SandboxPool
from tests.conftest import require_binary


@contextmanager
def cli_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *pools: SandboxPool
) -> Iterator[Sandbox]:
    require_binary("redis-server")
    require_binary("supervisord")
    sandbox = Sandbox(tmp_path.resolve() / "s", pools=pools).start()
    try:
        for key, value in sandbox.env().items():
            if key.startswith("AUTOSCALER_"):
                monkeypatch.setenv(key, value)
        monkeypatch.chdir(tmp_path)
        yield sandbox
    finally:
        sandbox.stop()
