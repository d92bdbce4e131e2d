"""The daemon's building blocks: lock, ticker, outage backoff, alerts, policy reload, metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from autoscaler.daemon.alerts import Alert, Alerter, webhook_body
from autoscaler.daemon.lock import ControllerLock
from autoscaler.daemon.metrics import Metrics
from autoscaler.daemon.outage import Outage
from autoscaler.daemon.ticker import Ticker
from autoscaler.decide.plan import Plan, PoolDecision
from autoscaler.laravel.queue_sample import QueueSample
from autoscaler.observe.observation import Observation, PoolMemory, PoolObservation
from autoscaler.policy.watch import PolicyWatcher
from autoscaler.supervisord.slots import WorkerCounts
from autoscaler.testing.stack import free_port
from tests.policy_helpers import write_policy

HOLD_LOCK = """
import sys, time
from pathlib import Path
from typing import ClassVar
from autoscaler.daemon.lock import ControllerLock
lock = ControllerLock(state_dir=Path(sys.argv[1]))
print("held" if lock.acquire() else "busy", flush=True)
time.sleep(60)
"""


def test_lock_one_holder_and_takeover(tmp_path: Path) -> None:
    state_dir = tmp_path / ".workers.conf.autoscaler"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(state_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        standby = ControllerLock(state_dir=state_dir)
        assert not standby.acquire()
        assert standby.holder_pid() == holder.pid
        holder.send_signal(signal.SIGKILL)  # the active daemon dies without cleanup
        holder.wait()
        assert standby.acquire()  # the kernel released its flock: take over at once
        assert standby.holder_pid() == os.getpid()
        standby.release()
        assert not standby.held
    finally:
        holder.kill()
        holder.wait()


class FakeClock:
    """A hand-driven clock: the Ticker's arithmetic, not the machine's speed, is under test."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_ticker_compensates_drift_and_skips_missed_ticks() -> None:
    clock = FakeClock()
    ticker = Ticker(interval_s=5, clock=clock)
    clock.now += 1.5  # the first tick took 1.5 s
    assert ticker.next_delay_s() == pytest.approx(3.5)
    clock.now += 3.5 + 0.2  # woke 0.2 s late, tick took nothing
    assert ticker.next_delay_s() == pytest.approx(4.8)
    clock.now += 4.8 + 12.0  # a tick overran: now 122, the 115 tick passed entirely
    assert ticker.next_delay_s() == 0.0  # the 120 tick runs late, at once
    assert ticker.skipped == 1
    delay = ticker.next_delay_s()  # back on the grid: the 125 tick
    assert delay == pytest.approx(3.0)
    assert (clock.now + delay - 100.0) % 5 == pytest.approx(0.0)


def test_outage_logs_once_and_measures_its_length() -> None:
    clock = FakeClock()
    outage = Outage(name="redis", clock=clock)
    assert outage.failed("refused") is True
    assert outage.down
    clock.now += 2.5
    assert outage.failed("refused") is False  # same outage: no second log line
    clock.now += 10
    assert outage.recovered() == pytest.approx(12.5)
    assert not outage.down and outage.recovered() is None


class Receiver(BaseHTTPRequestHandler):
    bodies: ClassVar[list[dict[str, object]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        Receiver.bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"errcode":0}')

    def log_message(self, *args: object) -> None:
        pass


def test_alerts_rate_limited_and_posted_to_a_real_webhook() -> None:
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Receiver.bodies = []
    url = f"http://127.0.0.1:{server.server_port}/cgi-bin/webhook/send?key=SECRET"
    alerter = Alerter(interval_s=600, webhook_url=url, webhook_format="wecom")
    try:
        first = Alert(kind="workers_fatal", subject="mail", message="1 slot FATAL", at_s=1000)
        assert alerter.raise_(first)
        assert not alerter.raise_(
            Alert(kind="workers_fatal", subject="mail", message="x", at_s=1300)
        )
        assert alerter.raise_(
            Alert(kind="workers_fatal", subject="card_query", message="y", at_s=1300)
        )
        assert alerter.raise_(Alert(kind="workers_fatal", subject="mail", message="z", at_s=1601))
        alerter.clear("redis_unreachable", "redis")
    finally:
        alerter.close()
        server.shutdown()
    assert len(Receiver.bodies) == 3
    assert Receiver.bodies[0]["msgtype"] == "text"
    content = Receiver.bodies[0]["text"]["content"]  # type: ignore[index]
    assert "workers_fatal mail: 1 slot FATAL" in content


def test_webhook_styles() -> None:
    alert = Alert(kind="budget_exhausted", subject="host", message="4608 MB used", at_s=0)
    assert webhook_body(alert, style="slack", host="h")["text"].startswith("[autoscaler@h]")
    generic = webhook_body(alert, style="generic", host="h")
    assert generic["kind"] == "budget_exhausted" and generic["at"] == "1970-01-01T00:00:00+00:00"


def test_webhook_down_never_blocks() -> None:
    alerter = Alerter(interval_s=0, webhook_url=f"http://127.0.0.1:{free_port()}/x")
    for index in range(100):  # more than the poster's queue holds: dropped, not blocking
        alerter.raise_(Alert(kind="redis_unreachable", subject="redis", message="", at_s=index))
    alerter.close(timeout_s=1)


def test_policy_watcher_keeps_last_valid(tmp_path: Path) -> None:
    path = write_policy(tmp_path, "emails")
    watcher = PolicyWatcher(directory=tmp_path, usable_memory_mb=None)
    first = watcher.load_initial()
    assert watcher.poll().changed is False
    path.write_text(path.read_text().replace("max_processes = 4", "max_processes = 0"))
    broken = watcher.poll()
    assert not broken.changed and broken.new_errors and broken.errors
    assert watcher.policies is first  # the last valid set stays in force
    again = watcher.poll(force=True)  # SIGHUP on the same broken files: not reported twice
    assert again.errors and not again.new_errors
    path.write_text(path.read_text().replace("max_processes = 0", "max_processes = 9"))
    fixed = watcher.poll()
    assert fixed.changed and not fixed.errors
    assert watcher.policies is not None and watcher.policies["emails"].max_processes == 9


def test_metrics_endpoint_on_localhost() -> None:
    metrics = Metrics()
    port = free_port()
    metrics.serve(host="127.0.0.1", port=port)
    try:
        queues = (
            QueueSample(queue="mail", pending=7, reserved=1, delayed=0, delayed_due=0,
                        oldest_wait_s=12.5, oldest_wait_source="createdAt"),
        )  # fmt: skip
        observation = Observation(
            at_s=0,
            interval_s=5,
            pools={
                "mail": PoolObservation(
                    pool="mail", queues=queues, work=None,
                    workers=WorkerCounts(running=2, starting=1, draining=1),
                    memory=PoolMemory(total_mb=180.5, max_mb=120.0, live_mb=250.0, measured=2),
                )
            },
        )  # fmt: skip
        plan = Plan(
            at_s=0,
            decisions={
                "mail": PoolDecision(pool="mail", strategy="slo", current=3, desired=5, reason="r")
            },
            memory_limit_mb=4608, memory_planned_mb=768,
        )  # fmt: skip
        metrics.record(observation, plan, previous={"mail": 3})
        metrics.tick_duration.observe(0.02)
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        # Redis and Supervisor away: unknown is NaN, never the last value or "empty" (0)
        blind = Observation(
            at_s=5,
            interval_s=5,
            pools={"mail": PoolObservation(pool="mail", queues=None, work=None, workers=None)},
        )
        metrics.record(blind, plan, previous={"mail": 5})
        outage = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    finally:
        metrics.close()
    for name in (
        'autoscaler_pending_jobs{pool="mail"}',
        'autoscaler_oldest_wait_seconds{pool="mail"}',
        'autoscaler_queue_pending_jobs{pool="mail",queue="mail"}',
        'autoscaler_queue_oldest_wait_seconds{pool="mail",queue="mail"}',
        'autoscaler_workers{pool="mail"}',
        'autoscaler_workers_memory_mb{pool="mail"}',
        'autoscaler_worker_memory_max_mb{pool="mail"}',
    ):
        assert f"{name} NaN" in outage.decode()
    assert 'autoscaler_workers_memory_mb{pool="mail"} 180.5' in text
    assert 'autoscaler_worker_memory_max_mb{pool="mail"} 120.0' in text
    assert 'autoscaler_queue_pending_jobs{pool="mail",queue="mail"} 7.0' in text
    assert 'autoscaler_queue_reserved_jobs{pool="mail",queue="mail"} 1.0' in text
    assert 'autoscaler_queue_oldest_wait_seconds{pool="mail",queue="mail"} 12.5' in text
    assert 'autoscaler_pending_jobs{pool="mail"} 7.0' in text
    assert 'autoscaler_oldest_wait_seconds{pool="mail"} 12.5' in text
    assert 'autoscaler_workers{pool="mail"} 3.0' in text
    assert 'autoscaler_desired_workers{pool="mail"} 5.0' in text
    assert 'autoscaler_scale_decisions_total{direction="up",pool="mail"} 1.0' in text
    assert "autoscaler_tick_duration_seconds_count 1.0" in text


def test_deploy_example_settings_are_valid() -> None:
    from autoscaler.settings import load_settings

    example = Path(__file__).resolve().parent.parent / "deploy" / "autoscaler.example.toml"
    settings = load_settings(config_file=example)
    assert settings.dry_run is True and settings.metrics_port == 9464


def test_a_policy_file_gone_for_a_moment_keeps_its_pool(tmp_path: Path) -> None:
    """Issue 19.5: an editor's rename-save or a git checkout removed a policy file for 4 s and
    every worker of its pool was stopped. The pool now stays for the grace period."""
    clock = FakeClock()
    write_policy(tmp_path, "emails")
    other = write_policy(tmp_path, "mail", queues=["mail"], program="mail-worker",
                         command="php artisan queue:work redis --queue=mail")  # fmt: skip
    watcher = PolicyWatcher(directory=tmp_path, usable_memory_mb=None, grace_s=60, clock=clock)
    watcher.load_initial()
    saved = other.read_text()
    other.unlink()  # the editor's rename-save: the file is gone ...
    gone = watcher.poll()
    assert not gone.changed and set(gone.missing) == {"mail"} and not gone.removed
    assert watcher.policies is not None and "mail" in watcher.policies
    clock.now += 4
    other.write_text(saved)  # ... and back 4 s later
    back = watcher.poll()
    assert not back.changed and back.missing == {} and "mail" in watcher.policies

    other.unlink()  # gone for good: removed once the grace period has passed
    assert set(watcher.poll().missing) == {"mail"}
    clock.now += 59
    assert "mail" in watcher.policies and not watcher.poll().removed
    clock.now += 1
    final = watcher.poll()
    assert final.changed and final.removed == ["mail"] and "mail" not in watcher.policies

    # A rename (same program and queues under another name) replaces the pool at once.
    other.write_text(saved)
    watcher.poll()
    other.rename(tmp_path / "mailer.toml")
    renamed = watcher.poll()
    assert renamed.removed == ["mail"] and set(watcher.policies) == {"emails", "mailer"}
