"""`autoscaler record`: the trace format, and a recording of live traffic end to end."""

from __future__ import annotations

import csv
import gzip
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from autoscaler.cli.common import UsageError
from autoscaler.cli.main import main
from autoscaler.cli.record_cmd import _header, parse_duration_s
from autoscaler.observe.flow_balance import QueueFlow
from autoscaler.observe.recorder import TraceRecorder
from autoscaler.policy.loader import load_policies
from autoscaler.settings import load_settings
from autoscaler.testing.laravel import later, make_payload
from autoscaler.testing.stack import RedisServer, Supervisord
from tests.policy_helpers import write_policy

PREFIX = "shop-database-"
REPO = Path(__file__).resolve().parent.parent


def flow(
    queue: str, arrivals: float | None, run_times: list[float], interval_s: float = 5.0
) -> QueueFlow:
    return QueueFlow(
        queue=queue,
        pool="p",
        interval_s=interval_s,
        arrivals=arrivals,
        completions=float(len(run_times)),
        failures=0.0,
        run_times_s=run_times,
        source="logs",
    )


def read_rows(text: str) -> list[dict[str, str]]:
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    return list(csv.DictReader(io.StringIO(body)))


def test_recorder_rows_carry_fractions_and_service_times(tmp_path: Path) -> None:
    directory = tmp_path / "policies"
    write_policy(
        directory,
        "p",
        queues=["high", "default"],
        program="p",
        command="php artisan queue:work redis --queue=high,default",
        expected_run_time_s=2.5,
    )
    recorder = TraceRecorder(policies=load_policies(directory), started_at_s=100.0)
    recorder.add(at_s=105.0, flows={"high": flow("high", 1.4, [0.5, 1.5])}, problem=None)
    recorder.add(
        at_s=110.0,
        flows={"high": flow("high", 1.4, []), "default": flow("default", 0.0, [])},
        problem=None,
    )
    recorder.add(at_s=115.0, flows={}, problem="Redis unavailable: down")
    recorder.add(
        at_s=125.0,
        flows={"high": flow("high", 1.2, [3.0], interval_s=15.0)},
        problem=None,
    )
    text = recorder.render(["recorded by a test"])
    assert text.startswith("# recorded by a test\n# gaps (1")
    assert "t=15.0s: Redis unavailable: down" in text
    rows = read_rows(text)
    assert [tuple(r.values()) for r in rows] == [
        ("0", "high", "1", "1"),  # 1.4 -> 1, carry 0.4
        ("5", "high", "2", "1"),  # 0.4 + 1.4 = 1.8 -> 2, carry -0.2; no run time: keep 1
        ("5", "default", "0", "2.5"),  # nothing measured yet: the policy's expected run time
        ("10", "high", "1", "3"),  # the bucket after the gap starts at the last balance
    ]
    assert sum(int(r["arrivals"]) for r in rows) == 4  # 1.4 + 1.4 + 1.2, rounded once
    out = tmp_path / "trace.csv.gz"
    recorder.write(out, ["gz"])
    assert gzip.decompress(out.read_bytes()).decode() == recorder.render(["gz"])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize(
    "url", ["unix:///tmp/r.sock?db=0&password=s3cret", "rediss://u:s3cret@[::1]:6380/1"]
)
def test_header_masks_the_redis_password(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    settings = load_settings(redis_url=url)
    recorder = TraceRecorder(policies={}, started_at_s=0.0)
    header = "\n".join(_header(settings, 0.0, 5.0, 1.0, 0, "complete", recorder))
    assert "s3cret" not in header and "***" in header


def test_durations() -> None:
    assert parse_duration_s("90") == 90.0
    assert parse_duration_s("15m") == 900.0
    assert parse_duration_s("2h") == 7200.0
    assert parse_duration_s("1.5 d") == 129600.0
    with pytest.raises(UsageError):
        parse_duration_s("soon")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer) -> Path:
    monkeypatch.chdir(tmp_path)
    policies = tmp_path / "policies"
    write_policy(policies, "emails", program="w", expected_run_time_s=9.0)
    monkeypatch.setenv("AUTOSCALER_POLICIES_DIR", str(policies))
    monkeypatch.setenv("AUTOSCALER_REDIS_URL", redis_server.url)
    monkeypatch.setenv("AUTOSCALER_REDIS_PREFIX", PREFIX)
    monkeypatch.setenv("AUTOSCALER_SUPERVISOR_URL", f"unix://{tmp_path}/none.sock")
    return tmp_path


def test_usage_errors(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (env / "taken.csv").write_text("x")
    assert main(["record", "--out", str(env / "taken.csv"), "--duration", "5"]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["record", "--out", str(env / "t.csv"), "--duration", "soon"]) == 2
    assert main(["record", "--out", str(env / "no/t.csv"), "--duration", "5"]) == 2
    args = ["record", "--out", str(env / "t.csv"), "--duration", "1", "--interval", "2"]
    assert main(args) == 2


def test_records_live_traffic_from_supervised_workers(
    env: Path,
    *,
    monkeypatch: pytest.MonkeyPatch,
    supervisord: Supervisord,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    worker_command: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AUTOSCALER_SUPERVISOR_URL", supervisord.url)
    (supervisord.include_dir / "w.conf").write_text(
        "[program:w_00]\n"
        f"command={worker_command} --redis-url {redis_server.url} --prefix {PREFIX} "
        "--queue=emails --sleep 0.05\nstartsecs=0\nstopasgroup=true\nkillasgroup=true\n"
    )
    proxy = supervisord.proxy()
    proxy.supervisor.reloadConfig()
    proxy.supervisor.addProcessGroup("w_00")
    # Jobs that become due during the recording arrive then (delayed jobs are not queued yet).
    due = time.time() + 4.0  # after the first tick, even on a loaded machine
    jobs = 6
    for _ in range(jobs):
        later(redis_client, PREFIX, "emails", make_payload(run_s=0.2), due)
    out = env / "live.csv"
    assert main(["record", "--out", str(out), "--duration", "8", "--interval", "1"]) == 0
    assert "row(s)" in capsys.readouterr().err
    text = out.read_text()
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert any("started" in line and "complete" in line for line in header)
    assert any("emails=logs" in line for line in header)
    rows = read_rows(text)
    assert rows and set(rows[0]) == {"time_s", "queue", "arrivals", "service_s"}
    assert sum(int(r["arrivals"]) for r in rows) == jobs
    times = [float(r["time_s"]) for r in rows]
    assert times == sorted(times) and times[0] < 1.5
    measured = [float(r["service_s"]) for r in rows if float(r["service_s"]) != 9.0]
    assert measured and all(0.15 < s < 2.0 for s in measured)  # the workers' logged 0.2 s
    assert float(rows[0]["service_s"]) == 9.0  # before any job ran: the policy's guess


def test_sigterm_ends_early_with_the_trace_written(
    env: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    out = env / "cut.csv"
    process = subprocess.Popen(
        [sys.executable, "-m", "autoscaler", "record", "--out", str(out), "--duration", "1h",
         "--interval", "0.3"],
        cwd=env,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    redis_client.config_resetstat()
    deadline = time.monotonic() + 30
    while redis_client.info("commandstats").get("cmdstat_llen", {}).get("calls", 0) < 3:
        assert time.monotonic() < deadline and process.poll() is None, process.stderr
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    text = out.read_text()
    assert "interrupted" in text and b"wrote" in err
    assert len(read_rows(text)) >= 2
