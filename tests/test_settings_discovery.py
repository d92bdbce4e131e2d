"""The settings file without --config: ./autoscaler.toml, then /etc/autoscaler/autoscaler.toml;
`autoscaler config` names each value's source; an unreachable default address says that no
settings file was found."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoscaler import settings as settings_module
from autoscaler.cli.common import unreachable_hint
from autoscaler.cli.main import main
from autoscaler.settings import Settings, load_settings
from tests.policy_helpers import write_policy


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A working directory and a stand-in for /etc/autoscaler/autoscaler.toml."""
    work = tmp_path / "app"
    work.mkdir()
    etc = tmp_path / "etc" / "autoscaler.toml"
    etc.parent.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(settings_module, "SEARCH_PATHS", (Path("autoscaler.toml"), etc))
    for name in Settings.model_fields:
        monkeypatch.delenv(f"AUTOSCALER_{name.upper()}", raising=False)
    monkeypatch.delenv("AUTOSCALER_CONFIG", raising=False)
    return work, etc


def test_search_order_and_origins(
    places: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    work, etc = places
    assert load_settings().config_file is None
    etc.write_text("interval_s = 9\n")
    found = load_settings()
    assert found.config_file == etc and found.interval_s == 9
    assert found.origin("interval_s") == str(etc) and found.origin("redis_url") == "default"

    (work / "autoscaler.toml").write_text("interval_s = 7\nmemory_budget_mb = 100\n")
    local = load_settings()
    assert local.config_file == Path("autoscaler.toml") and local.interval_s == 7

    named = tmp_path / "named.toml"
    named.write_text("interval_s = 3\n")
    monkeypatch.setenv("AUTOSCALER_CONFIG", str(named))
    assert load_settings().interval_s == 3  # AUTOSCALER_CONFIG wins over the search
    assert load_settings(config_file=etc).interval_s == 9  # and --config over it
    monkeypatch.delenv("AUTOSCALER_CONFIG")

    monkeypatch.setenv("AUTOSCALER_INTERVAL_S", "2")
    (work / ".env").write_text("AUTOSCALER_DRY_RUN=true\nAPP_KEY=x\n")
    mixed = load_settings(log_level="DEBUG")
    assert mixed.interval_s == 2 and mixed.origin("interval_s") == "env AUTOSCALER_INTERVAL_S"
    assert mixed.origin("memory_budget_mb") == "autoscaler.toml"
    assert mixed.origin("dry_run").startswith(".env (")
    assert mixed.origin("log_level") == "command line"


def test_config_prints_the_file_and_each_source(
    places: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    work, _etc = places
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("no settings file (looked for ./autoscaler.toml, ")
    (work / "autoscaler.toml").write_text("interval_s = 7\n")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("settings file: autoscaler.toml\n")
    rows = {line.split()[0]: line.split()[1:3] for line in out.splitlines()[3:]}
    assert rows["AUTOSCALER_INTERVAL_S"] == ["7.0", "autoscaler.toml"]
    assert rows["AUTOSCALER_INCLUDE_BACKUPS"] == ["5", "default"]


def test_unreachable_default_address_says_no_settings_file_was_found(
    places: tuple[Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    work, _etc = places
    write_policy(work / "policies", "emails")
    default_socket = Settings.model_fields["supervisor_url"].default.removeprefix("unix://")
    if Path(default_socket).exists():
        pytest.skip(f"a supervisord listens at the default {default_socket}")
    assert main(["plan"]) == 1
    err = capsys.readouterr().err
    assert "no settings file was found in ./autoscaler.toml" in err
    assert "AUTOSCALER_SUPERVISOR_URL" in err

    # Set anywhere (here in a found settings file), the address is the operator's: no hint.
    (work / "autoscaler.toml").write_text(f'supervisor_url = "unix://{tmp_path}/gone.sock"\n')
    assert main(["plan"]) == 1
    err = capsys.readouterr().err
    assert "gone.sock" in err and "no settings file" not in err
    assert unreachable_hint(load_settings(), "supervisor_url") == ""
