"""Settings precedence: CLI overrides > env > .env > TOML file > defaults; secrets masked."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoscaler.settings import SettingsError, effective_settings, load_settings, mask_url


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("AUTOSCALER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults() -> None:
    settings = load_settings()
    assert settings.redis_prefix == "laravel_database_"
    assert settings.interval_s == 5.0
    assert settings.dry_run is False


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "autoscaler.toml"
    config.write_text(
        'redis_prefix = "file_"\ninterval_s = 7\nmemory_budget_mb = 1000\nlog_level = "debug"\n'
    )
    (tmp_path / ".env").write_text("AUTOSCALER_INTERVAL_S=8\nAUTOSCALER_MEMORY_BUDGET_MB=2000\n")
    monkeypatch.setenv("AUTOSCALER_MEMORY_BUDGET_MB", "3000")
    settings = load_settings(config_file=config, dry_run=True)
    assert settings.redis_prefix == "file_"  # only the file sets it
    assert settings.interval_s == 8  # .env beats the file
    assert settings.memory_budget_mb == 3000  # env beats .env
    assert settings.dry_run is True  # CLI override beats all
    assert settings.log_level == "DEBUG"


def test_config_file_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.toml"
    config.write_text("interval_s = 11\n")
    monkeypatch.setenv("AUTOSCALER_CONFIG", str(config))
    assert load_settings().interval_s == 11


def test_contract_env_names(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "AUTOSCALER_REDIS_URL": "redis://:pw@10.0.0.1:6380/2",
        "AUTOSCALER_REDIS_PREFIX": "app-database-",
        "AUTOSCALER_SUPERVISOR_URL": "http://127.0.0.1:9001",
        "AUTOSCALER_SUPERVISOR_USERNAME": "admin",
        "AUTOSCALER_SUPERVISOR_PASSWORD": "s3cret",
        "AUTOSCALER_INCLUDE_FILE": "/etc/supervisor/conf.d/app-workers.conf",
        "AUTOSCALER_POLICIES_DIR": "/srv/policies",
        "AUTOSCALER_MEMORY_BUDGET_MB": "6144",
        "AUTOSCALER_INTERVAL_S": "2.5",
        "AUTOSCALER_DRY_RUN": "true",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.redis_prefix == "app-database-"
    assert settings.supervisor_password is not None
    assert settings.supervisor_password.get_secret_value() == "s3cret"
    assert str(settings.include_file) == "/etc/supervisor/conf.d/app-workers.conf"
    assert settings.memory_budget_mb == 6144 and settings.interval_s == 2.5
    assert settings.dry_run is True
    shown = effective_settings(settings)
    assert shown["redis_url"] == "redis://:***@10.0.0.1:6380/2"
    assert shown["supervisor_password"] == "***"
    assert "s3cret" not in repr(shown) and "pw@" not in repr(shown)


def test_errors_name_the_field(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AUTOSCALER_INTERVAL_S", "-1")
    with pytest.raises(SettingsError, match="interval_s"):
        load_settings()
    monkeypatch.delenv("AUTOSCALER_INTERVAL_S")
    bad = tmp_path / "bad.toml"
    bad.write_text("interval_s = \n")
    with pytest.raises(SettingsError, match=str(bad)):
        load_settings(config_file=bad)
    bad.write_text("intervall_s = 3\n")
    with pytest.raises(SettingsError, match="intervall_s"):
        load_settings(config_file=bad)
    with pytest.raises(SettingsError, match="not found"):
        load_settings(config_file=tmp_path / "missing.toml")
    monkeypatch.setenv("AUTOSCALER_SUPERVISOR_URL", "ftp://x")
    with pytest.raises(SettingsError, match="supervisor_url"):
        load_settings()


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:pw@h:1/0", "redis://:***@h:1/0"),
        ("redis://user:pw@h/0", "redis://user:***@h/0"),
        ("rediss://default:p%40ss@h:6380", "rediss://default:***@h:6380"),
        ("unix:///tmp/r.sock?db=0&password=s3cret", "unix:///tmp/r.sock?db=0&password=***"),
        ("unix:///tmp/r.sock?Password=s3&username=u", "unix:///tmp/r.sock?Password=***&username=u"),
        ("redis://h/0?password=a&password=b", "redis://h/0?password=***&password=***"),
        ("redis://:pw@[::1]:6379/0", "redis://:***@[::1]:6379/0"),
        ("redis://[::1]:6379/0", "redis://[::1]:6379/0"),
        ("redis://u:p@w@h:1/0", "redis://u:***@h:1/0"),
        ("redis://u:p?w#x@h:1/0", "redis://u:***@h:1/0"),
        ("redis://h?password=x&n=a@b", "redis://h?password=***&n=a@b"),
        ("http://h:9001/RPC2#frag", "http://h:9001/RPC2#frag"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_dotenv_of_other_programs_is_ignored(tmp_path: Path) -> None:
    # Operators run autoscaler from the Laravel app root, whose .env holds the app's keys.
    (tmp_path / ".env").write_text(
        "APP_KEY=base64:abc=\nDB_PASSWORD=x\nREDIS_PREFIX=app_\nAUTOSCALER_INTERVAL_S=3\n"
    )
    settings = load_settings()
    assert settings.interval_s == 3
    assert settings.redis_prefix == "laravel_database_"


def test_unknown_autoscaler_key_in_dotenv_names_it(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("APP_KEY=x\nAUTOSCALER_INTERVALL_S=3\n")
    with pytest.raises(SettingsError, match=r"\.env: AUTOSCALER_INTERVALL_S: unknown setting"):
        load_settings()


def test_unknown_key_in_config_file_names_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "autoscaler.toml"
    config.write_text("interval_s = 3\napp_key = 'x'\n")
    with pytest.raises(SettingsError, match=rf"{config}: app_key: unknown key"):
        load_settings(config_file=config)


def test_unknown_autoscaler_key_in_process_env_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    # Documented in README: the environment is shared with other programs' settings.
    monkeypatch.setenv("AUTOSCALER_INTERVALL_S", "3")
    assert load_settings().interval_s == 5.0


def test_config_directory_is_named_as_such(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="is a directory"):
        load_settings(config_file=tmp_path)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis://:pw@h:abc/0", "port"),
        ("redis://:pw@h:70000/0", "port"),
        ("redis://:pw@h:6379/zero", "database"),
        ("redis://:pw@h:6379/0?db=x", "db"),
        ("unix://?password=pw", "socket"),
        ("http://:pw@h:6379/0", "redis://"),
        ("redis://:pw@[::1:6379/0", "not a URL"),
    ],
)
def test_bad_redis_url_is_a_settings_error(
    url: str, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOSCALER_REDIS_URL", url)
    with pytest.raises(SettingsError, match=rf"redis_url: .*{problem}") as raised:
        load_settings()
    assert "pw" not in str(raised.value)


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "redis://",
        "redis://h",
        "redis://:pw@[::1]:6379/",
        "rediss://user:pw@h:6380/15?socket_timeout=1",
        "unix:///tmp/r.sock?db=0&password=pw",
    ],
)
def test_good_redis_urls_pass(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOSCALER_REDIS_URL", url)
    assert load_settings().redis_url == url


@pytest.mark.parametrize(
    ("name", "value"),
    [("interval_s", "inf"), ("memory_budget_mb", "inf"), ("redis_timeout_s", "nan")],
)
def test_non_finite_numbers_are_refused(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"AUTOSCALER_{name.upper()}", value)
    with pytest.raises(SettingsError, match=f"{name}: .*finite"):
        load_settings()
