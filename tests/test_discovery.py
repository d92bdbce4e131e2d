"""Discovery with SCAN: prefixes, queues without a policy, policies without a key."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis

from autoscaler.cli.main import main
from autoscaler.laravel.discovery import discover, split_key
from autoscaler.policy.loader import load_policies
from autoscaler.testing.laravel import later, make_payload, pop, push
from autoscaler.testing.stack import RedisServer
from tests.policy_helpers import write_policy


def policies(tmp_path: Path) -> Path:
    directory = tmp_path / "policies"
    write_policy(directory, "emails")
    write_policy(
        directory,
        "default",
        queues=["high", "default"],
        program="default-worker",
        command="php artisan queue:work redis --queue=high,default",
    )
    return directory


def test_split_key() -> None:
    assert split_key("app_database_queues:default") == ("app_database_", "default", "list")
    assert split_key("app-database-queues:high:reserved") == ("app-database-", "high", "reserved")
    assert split_key("queues:mail:delayed") == ("", "mail", "delayed")
    assert split_key("p_queues:a:b:notify") == ("p_", "a:b", "notify")
    assert split_key("app_cache_:something") is None
    assert split_key("p_queues::reserved") is None


def test_discover_sorts_queues_by_prefix(tmp_path: Path, redis_client: redis.Redis) -> None:
    prefix = "app_database_"
    push(redis_client, prefix, "emails", make_payload())
    push(redis_client, prefix, "emails", make_payload())
    pop(redis_client, prefix, "emails")
    later(redis_client, prefix, "high", make_payload(), time.time() + 60)
    push(redis_client, prefix, "reports", make_payload())  # no policy consumes it
    push(redis_client, "other-database-", "default", make_payload())
    redis_client.set("app_cache_:unrelated", "1")
    redis_client.config_resetstat()
    found = discover(redis_client, prefix=prefix, policies=load_policies(policies(tmp_path)))
    stats = redis_client.info("commandstats")
    assert stats["cmdstat_scan"]["calls"] >= 1 and "cmdstat_keys" not in stats  # never KEYS
    by_name = {(q.prefix, q.queue): q for q in found.queues}
    assert by_name[(prefix, "emails")].keys == {"list", "reserved", "notify"}
    assert by_name[(prefix, "emails")].pool == "emails"
    assert by_name[(prefix, "high")].keys == {"delayed"}
    assert by_name[(prefix, "high")].pool == "default"
    assert [q.queue for q in found.unmanaged] == ["reports"]
    assert found.missing == [("default", "default")]  # idle, or under the other prefix
    assert found.prefixes == {prefix: 3, "other-database-": 1}
    assert found.suggested_prefix is None  # the configured one holds more of ours


def test_status_discover_suggests_the_prefix(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTOSCALER_POLICIES_DIR", str(policies(tmp_path)))
    monkeypatch.setenv("AUTOSCALER_REDIS_URL", redis_server.url)
    monkeypatch.setenv("AUTOSCALER_REDIS_PREFIX", "laravel_database_")  # Laravel 11 default
    for queue in ("emails", "high", "default"):
        push(redis_client, "shop-database-", queue, make_payload())  # but the app is on 12
    assert main(["status", "--discover"]) == 1
    out = capsys.readouterr().out
    assert "AUTOSCALER_REDIS_PREFIX=shop-database-" in out
    assert "policies whose queue has no key" in out
    assert main(["status", "--discover", "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["suggested_prefix"] == "shop-database-"
    assert data["prefixes"] == {"shop-database-": 3}
    assert len(data["policies_without_keys"]) == 3
    monkeypatch.setenv("AUTOSCALER_REDIS_PREFIX", "shop-database-")
    assert main(["status", "--discover", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["suggested_prefix"] is None and data["policies_without_keys"] == []
    assert {q["pool"] for q in data["queues"]} == {"emails", "default"}


def test_discover_with_redis_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTOSCALER_POLICIES_DIR", str(policies(tmp_path)))
    monkeypatch.setenv("AUTOSCALER_REDIS_URL", "redis://127.0.0.1:1/0")
    assert main(["status", "--discover"]) == 1
    assert "Redis unavailable" in capsys.readouterr().err
