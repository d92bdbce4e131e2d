"""Policies, waiting and call recording for the actuator tests (real supervisord, real workers)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from autoscaler.act.actuator import Actuator
from autoscaler.act.apply_report import ApplyReport
from autoscaler.observe import logtail
from autoscaler.policy.model import Policy
from autoscaler.supervisord.include_file import SupervisorFile
from autoscaler.supervisord.rpc import SupervisorClient

READ_ONLY = frozenset({"getAllProcessInfo", "getAllConfigInfo", "getState"})


def make_policy(**overrides: Any) -> Policy:
    data: dict[str, Any] = {
        "queues": ["emails"],
        "program": "emails-worker",
        "command": "php artisan queue:work redis --queue=emails --timeout=60",
        "min_processes": 0,
        "static_processes": 2,
        "max_processes": 8,
        "memory_per_worker_mb": 128,
        "priority": 100,
        "slo": {"wait_s": 30.0},
    }
    supervisor = overrides.pop("supervisor", {})
    data.update(overrides)
    data["supervisor"] = supervisor
    return Policy.model_validate(data)


def worker_policy(
    *,
    redis_url: str,
    queue: str,
    log_dir: Path,
    record: Path | None = None,
    program: str | None = None,
    extra_args: str = "",
    **overrides: Any,
) -> Policy:
    """A pool of fake Laravel workers (autoscaler.testing.worker) on `queue`."""
    log_dir.mkdir(parents=True, exist_ok=True)
    record_arg = f" --record {record}" if record is not None else ""
    command = (
        f"{sys.executable} -m autoscaler.testing.worker --redis-url {redis_url} "
        f"--queue={queue} --sleep=0.05 --timeout=30{record_arg}{extra_args}"
    )
    supervisor = {"stdout_logfile": str(log_dir / f"{queue}.log"), "stopwaitsecs": 40}
    supervisor.update(overrides.pop("supervisor", {}))
    return make_policy(
        queues=[queue],
        program=program or f"{queue}-worker",
        command=command,
        supervisor=supervisor,
        **overrides,
    )


class RecordingClient(SupervisorClient):
    """The real client, remembering every supervisor.* method it called (multicall expanded)."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.calls: list[str] = []

    def call(self, method: str, *args: Any) -> Any:
        self.calls.append(method)
        return super().call(method, *args)

    def multicall(self, calls: Any) -> list[Any]:
        self.calls.extend(method for method, _args in calls)
        return super().multicall(calls)

    def state_changing_calls(self) -> list[str]:
        return [c for c in self.calls if c not in READ_ONLY]


def make_actuator(
    url: str,
    include_file: Path,
    policies: Mapping[str, Policy],
    *,
    clock: Callable[[], float] = time.monotonic,
    **kwargs: Any,
) -> tuple[Actuator, RecordingClient]:
    client = RecordingClient(url, **kwargs)
    actuator = Actuator(
        client=client,
        file=SupervisorFile(path=include_file, backups=3),
        policies=policies,
        clock=clock,
        retry_initial_s=0.2,
        retry_max_s=1.0,
    )
    return actuator, client


def wait_for(check: Callable[[], Any], *, timeout_s: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def converge(
    actuator: Actuator,
    desired: Mapping[str, int] | None,
    *,
    busy_slots: Collection[str] = (),
    timeout_s: float = 30.0,
    on_tick: Callable[[ApplyReport], None] | None = None,
) -> list[ApplyReport]:
    """Apply every 0.2 s (a fast daemon) until an apply finds nothing to do."""
    reports: list[ApplyReport] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        report = actuator.apply(desired, busy_slots=busy_slots)
        reports.append(report)
        if on_tick is not None:
            on_tick(report)
        assert report.skipped or report.error is None, report.error
        if report.converged:
            return reports
        time.sleep(0.2)
    raise AssertionError(f"no convergence in {timeout_s:.0f}s: last {reports[-1]}")


def pids(client: SupervisorClient, prefix: str = "") -> dict[str, int]:
    """RUNNING single-process groups (slots) named `prefix...`, with their PIDs."""
    return {
        p.name: p.pid
        for p in client.processes()
        if p.group == p.name and p.name.startswith(prefix) and p.statename == "RUNNING"
    }


def running(client: SupervisorClient) -> int:
    return sum(1 for p in client.processes() if p.statename == "RUNNING")


def busy_from_logs(client: SupervisorClient) -> set[str]:
    """Slots whose log shows a job in hand, as the daemon and the CLI tell it."""
    return logtail.busy_slots(p for p in client.processes() if p.group == p.name)


def run_once(cwd: Path) -> int:
    """`autoscaler run --once` in a subprocess with this process's environment (the daemon
    installs signal handlers and log sinks: never inside the test process)."""
    done = subprocess.run(
        [sys.executable, "-m", "autoscaler", "run", "--once"],
        cwd=cwd,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode
