"""`autoscaler status --fleet` and the fleet settings: the JSON contract, the table, and clear
errors (a real redis-server; the hosts are members ticked by hand)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from autoscaler.cli.main import main
from autoscaler.constants import EXIT_FAILED, EXIT_USAGE
from autoscaler.fleet.keys import FleetKeys
from autoscaler.settings import SettingsError, load_settings
from autoscaler.testing.stack import RedisServer
from tests.test_fleet_member import Host, expire, round_of

CONTRACT = {"fleet", "leader", "epoch", "hosts"}
HOST_CONTRACT = {"host", "alive", "last_seen_s", "memory_budget_mb", "pools"}


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("AUTOSCALER_REDIS_URL", redis_server.url)
    monkeypatch.setenv("AUTOSCALER_FLEET", "shop")


def test_json_follows_the_fleet_contract(
    env: None, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    hosts = [Host(redis_client, "h1"), Host(redis_client, "h2", 500.0)]
    for _ in range(3):
        round_of(hosts)
    expire(redis_client, FleetKeys("shop").alive("h2"))  # h2 stopped beating
    assert main(["status", "--fleet", "--format", "json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert set(status) == CONTRACT
    assert (status["fleet"], status["leader"], status["epoch"]) == ("shop", "h1", 1)
    assert [h["host"] for h in status["hosts"]] == ["h1", "h2"]
    h1, h2 = status["hosts"]
    assert set(h1) == HOST_CONTRACT and (h1["alive"], h2["alive"]) == (True, False)
    assert (h1["memory_budget_mb"], h2["memory_budget_mb"]) == (1000.0, 500.0)
    assert h1["pools"]["burst"] == {"workers": 1, "assigned": 1}
    assert h2["pools"]["burst"] == {"workers": 1, "assigned": 1}
    assert h1["last_seen_s"] >= 0


def test_table_and_another_fleet_by_name(
    env: None, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    round_of([Host(redis_client, "h1")])
    assert main(["status", "--fleet"]) == 0
    out = capsys.readouterr().out
    assert "fleet shop: leader h1, epoch 1" in out
    assert "h1 *" in out and "burst" in out
    assert main(["status", "--fleet", "other"]) == 0
    assert "leader none (no lease)" in capsys.readouterr().out


def test_without_a_fleet_name_is_a_usage_error(
    env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AUTOSCALER_FLEET")
    assert main(["status", "--fleet"]) == EXIT_USAGE
    assert "AUTOSCALER_FLEET" in capsys.readouterr().err


def test_redis_down_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTOSCALER_REDIS_URL", "redis://127.0.0.1:1/0")
    assert main(["status", "--fleet", "shop", "--format", "json"]) == EXIT_FAILED
    assert capsys.readouterr().err.startswith("autoscaler: ")


@pytest.mark.parametrize("field", ["fleet", "host_id"])
def test_a_bad_fleet_name_names_the_field(
    field: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingsError, match=rf"{field}: .*letters, digits"):
        load_settings(**{field: "shop floor"})


def test_host_id_defaults_to_the_hostname(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AUTOSCALER_HOST_ID", raising=False)
    monkeypatch.delenv("AUTOSCALER_FLEET", raising=False)
    assert load_settings().host_id is None, "unset outside a fleet (never checked there)"
    assert load_settings(fleet="shop").host_id == socket.gethostname()
    assert load_settings(fleet="shop", host_id="h7").host_id == "h7"


def test_an_unusable_hostname_asks_for_host_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AUTOSCALER_HOST_ID", raising=False)
    monkeypatch.setattr(socket, "gethostname", lambda: "box 7")
    with pytest.raises(SettingsError, match=r"'box 7' cannot name a host.*AUTOSCALER_HOST_ID"):
        load_settings(fleet="shop")
    assert load_settings().host_id is None, "outside a fleet the hostname is never read"
