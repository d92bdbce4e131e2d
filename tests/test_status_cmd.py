"""`autoscaler status` end to end: real Redis, real supervisord with fake workers."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis

from autoscaler.cli.main import main
from autoscaler.cli.status_view import TABLE_HEADERS, pool_rows, table_rows
from autoscaler.laravel.queue_sample import QueueSample
from autoscaler.observe.flow_balance import QueueFlow
from autoscaler.observe.observation import Observation, PoolObservation, WorkSample
from autoscaler.policy.loader import load_policies
from autoscaler.testing.laravel import later, make_payload, pop, push
from autoscaler.testing.stack import RedisServer, Supervisord
from tests.policy_helpers import write_policy

PREFIX = "shop_database_"
CONTRACT = {
    "pool",
    "queues",
    "pending",
    "reserved",
    "delayed",
    "oldest_wait_s",
    "workers",
    "desired",
    "memory_mb",
    "memory_mb_max",
}


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer) -> Path:
    """Settings through the environment, as an operator would set them; no stray .env."""
    monkeypatch.chdir(tmp_path)
    policies = tmp_path / "policies"
    write_policy(policies, "emails", strategy={"name": "static"}, static_processes=2)
    write_policy(
        policies,
        "default",
        queues=["high", "default"],
        program="default-worker",
        command="php artisan queue:work redis --queue=high,default",
        strategy={"name": "static"},
        static_processes=1,
    )
    monkeypatch.setenv("AUTOSCALER_POLICIES_DIR", str(policies))
    monkeypatch.setenv("AUTOSCALER_REDIS_URL", redis_server.url)
    monkeypatch.setenv("AUTOSCALER_REDIS_PREFIX", PREFIX)
    monkeypatch.setenv("AUTOSCALER_SUPERVISOR_URL", f"unix://{tmp_path}/none.sock")
    return policies


def fill(client: redis.Redis) -> None:
    now = time.time()
    for index in range(3):
        push(client, PREFIX, "emails", make_payload(created_at=now - 20 - index))
    pop(client, PREFIX, "emails")
    push(client, PREFIX, "high", make_payload(pushed_at=now - 8))
    later(client, PREFIX, "default", make_payload(), now + 3600)
    later(client, PREFIX, "default", make_payload(), now - 1)


def test_json_follows_the_status_contract(
    env: Path, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(redis_client)
    assert main(["status", "--format", "json", "--window", "0.2"]) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert [row["pool"] for row in rows] == ["default", "emails"]
    assert all(set(row) >= CONTRACT for row in rows)
    default, emails = rows
    assert default["queues"] == ["high", "default"]
    assert (default["pending"], default["reserved"], default["delayed"]) == (1, 0, 2)
    assert default["delayed_due"] == 1
    assert default["oldest_wait_s"] >= 8 and default["oldest_wait_source"] == "pushedAt"
    assert [q["queue"] for q in default["per_queue"]] == ["high", "default"]
    assert (emails["pending"], emails["reserved"], emails["delayed"]) == (2, 1, 0)
    assert 20 <= emails["oldest_wait_s"] < 60 and emails["oldest_wait_source"] == "createdAt"
    # Supervisor is unreachable: workers unknown (null), and decide holds the static count.
    assert emails["workers"] is None and emails["desired"] == 2 and emails["desired_held"]
    assert emails["work_source"] == "redis" and emails["window_s"] > 0
    assert "workers unknown" in captured.err


def test_table_marks_unknown_workers_and_totals_a_multi_queue_pool(
    env: Path, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(redis_client)
    assert main(["status", "--window", "0"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[1].split()[:4] == ["pool", "queue", "pending", "reserved"]
    rows = {tuple(line.split()[:2]): line.split() for line in lines[3:] if line.strip()}
    assert rows[("default", "high")][2:4] == ["1", "0"]
    assert rows[("default", "(all)")][2:6] == ["1", "0", "2", "1"]
    assert rows[("emails", "emails")][-4:] == ["unknown", "2", "-", "-"]
    assert "workers unknown" in out and "need a window" in out


def test_redis_down_exits_1_with_nulls(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTOSCALER_REDIS_URL", "redis://127.0.0.1:1/0")
    assert main(["status", "--format", "json", "--window", "0"]) == 1
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert all(row["pending"] is None and row["oldest_wait_s"] is None for row in rows)
    assert "Redis unavailable" in captured.err


def test_watch_refreshes(
    env: Path, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(redis_client)
    args = ["status", "--watch", "--interval", "0.2", "--count", "2", "--format", "json"]
    assert main(args) == 0
    frames = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(frames) == 2 and all(len(frame) == 2 for frame in frames)
    assert main(["status", "--watch", "--interval", "0.2", "--count", "2"]) == 0
    assert capsys.readouterr().out.count("autoscaler status at") == 2


def test_workers_from_supervisord(
    env: Path,
    *,
    monkeypatch: pytest.MonkeyPatch,
    supervisord: Supervisord,
    redis_server: RedisServer,
    worker_command: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AUTOSCALER_SUPERVISOR_URL", supervisord.url)
    (supervisord.include_dir / "w.conf").write_text(
        "[program:emails-worker_00]\n"
        f"command={worker_command} --redis-url {redis_server.url} --prefix {PREFIX} "
        "--queue=emails --sleep 0.1\nstartsecs=0\nstopasgroup=true\nkillasgroup=true\n"
    )
    proxy = supervisord.proxy()
    proxy.supervisor.reloadConfig()
    proxy.supervisor.addProcessGroup("emails-worker_00")
    deadline = time.monotonic() + 30
    while proxy.supervisor.getProcessInfo("emails-worker_00")["statename"] != "RUNNING":
        assert time.monotonic() < deadline, "worker did not start"
        time.sleep(0.05)
    assert main(["status", "--format", "json", "--window", "0.2"]) == 0
    rows = {row["pool"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["emails"]["workers"] == 1 and rows["default"]["workers"] == 0
    assert rows["emails"]["work_source"] == "logs"
    assert rows["emails"]["memory_mb"] == rows["emails"]["memory_mb_max"] > 5
    assert rows["default"]["memory_mb"] == 0
    assert main(["status", "--slots", "--format", "json", "--window", "0.2"]) == 0
    slots = json.loads(capsys.readouterr().out)
    pid = proxy.supervisor.getProcessInfo("emails-worker_00")["pid"]
    assert [(s["pool"], s["slot"], s["pid"], s["state"]) for s in slots] == [
        ("emails", "emails-worker_00", pid, "RUNNING")
    ]
    assert slots[0]["rss_mb"] > 5 and slots[0]["cpu_percent"] is not None
    assert slots[0]["in_flight"] is not None and slots[0]["age_s"] >= 0  # from its log
    assert main(["status", "--slots", "--window", "0"]) == 0
    assert f"emails-worker_00  {pid}  RUNNING" in capsys.readouterr().out


def test_bad_policies_are_a_usage_error(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (env / "broken.toml").write_text("queues = [\n")
    assert main(["status"]) == 2
    assert "invalid policies" in capsys.readouterr().err


def test_each_queue_of_a_multi_queue_pool_shows_its_own_throughput(env: Path) -> None:
    """The view alone (a pure function of the observation and the Observer's flows)."""
    policies = load_policies(env)
    queues = tuple(
        QueueSample(queue=q, pending=0, reserved=r, delayed=0, delayed_due=0,
                    oldest_wait_s=None, oldest_wait_source="empty")
        for q, r in (("high", 1), ("default", 3))
    )  # fmt: skip
    work = WorkSample(completions=8, failures=0, run_time_mean_s=1.5, run_time_p95_s=2.0,
                      busy_workers=4.0, source="logs")  # fmt: skip
    observation = Observation(
        at_s=100.0,
        interval_s=30.0,
        pools={"default": PoolObservation(pool="default", queues=queues, work=work, workers=None)},
    )
    flows = {
        "high": QueueFlow(queue="high", pool="default", interval_s=30.0, arrivals=2.0,
                          completions=2.0, failures=0.0, run_times_s=[1.0, 1.0], source="logs"),
        "default": QueueFlow(queue="default", pool="default", interval_s=30.0, arrivals=6.0,
                             completions=6.0, failures=1.0, run_times_s=[1.0, 2.0, 3.0],
                             source="logs"),
    }  # fmt: skip
    rows = {tuple(row[:2]): row for row in table_rows(observation, policies, None, flows)}
    done, mean = TABLE_HEADERS.index("done/min"), TABLE_HEADERS.index("mean run s")
    assert (rows[("default", "high")][done], rows[("default", "high")][mean]) == (4.0, 1.0)
    assert (rows[("default", "default")][done], rows[("default", "default")][mean]) == (12.0, 2.0)
    assert (rows[("default", "(all)")][done], rows[("default", "(all)")][mean]) == (16.0, 1.5)
    (default,) = pool_rows(observation, policies, None, flows)
    high, low = default["per_queue"]
    assert (high["throughput_per_min"], high["completions"], high["failures"]) == (4.0, 2.0, 0.0)
    assert (low["throughput_per_min"], low["run_time_mean_s"], low["failures"]) == (12.0, 2.0, 1.0)
