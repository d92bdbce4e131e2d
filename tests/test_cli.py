"""The CLI: --help on every verb, exit codes, check, config and init end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autoscaler.cli.main import build_parser, main, verb_modules
from autoscaler.policy.loader import load_policies
from autoscaler.testing.stack import find_binary
from tests.policy_helpers import write_policy

REPO = Path(__file__).resolve().parent.parent
SEED = REPO / "tests" / "fixtures" / "supervisor-complete.conf"


def verb_names() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "verb")
    return sorted(action.choices)  # type: ignore[arg-type]


def test_every_verb_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert len(verb_names()) == len(verb_modules()) >= 3
    for verb in verb_names():
        with pytest.raises(SystemExit) as exit_info:
            main([verb, "--help"])
        assert exit_info.value.code == 0
        assert verb in capsys.readouterr().out


def test_python_dash_m_and_usage_exit_code() -> None:
    ok = subprocess.run([sys.executable, "-m", "autoscaler", "--help"], capture_output=True)
    assert ok.returncode == 0 and b"check" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "autoscaler", "nosuchverb"], capture_output=True)
    assert bad.returncode == 2


def test_check_shipped_policies(capsys: pytest.CaptureFixture[str]) -> None:
    # --no-host: the shipped policies run as user www, which a developer's machine lacks
    assert main(["check", str(REPO / "policies"), "--no-host"]) == 0
    out = capsys.readouterr().out
    assert "gift_card_exchange" in out and "2 / 4 / 16" in out and "p95 <= 15s" in out
    assert main(["check", str(REPO / "policies"), "--no-host", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] and len(data["pools"]) == 7


def test_check_lists_every_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_policy(tmp_path, "a", max_processes=0)
    write_policy(tmp_path, "b", typo=1)
    assert main(["check", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "a.toml" in err and "max_processes" in err and "b.toml" in err and "typo" in err
    assert "2 problem(s)" in err
    assert main(["check", str(tmp_path), "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert {e["field"] for e in data["errors"]} == {"max_processes", "typo"}


def test_check_budget_from_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_policy(tmp_path / "p", "a", min_processes=2, memory_per_worker_mb=300)
    monkeypatch.setenv("AUTOSCALER_MEMORY_BUDGET_MB", "500")
    assert main(["check", str(tmp_path / "p")]) == 1
    assert "600 MB" in capsys.readouterr().err


def test_check_usage_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", str(tmp_path / "missing")]) == 2
    assert main(["check", str(tmp_path / "missing"), "--format", "json"]) == 2
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False
    assert data["errors"] == [
        {"file": str(tmp_path / "missing"), "line": None, "field": "(directory)",
         "problem": "not a directory"}
    ]  # fmt: skip
    monkeypatch.setenv("AUTOSCALER_INTERVAL_S", "zero")
    assert main(["check", str(REPO / "policies")]) == 2
    assert main(["check", str(REPO / "policies"), "--format", "json"]) == 2
    (error,) = json.loads(capsys.readouterr().out)["errors"]
    assert error["field"] == "(settings)" and "interval_s" in error["problem"]


def test_check_counts_pools_in_words(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_policy(tmp_path, "a")
    assert main(["check", str(tmp_path)]) == 0
    assert "\n1 pool valid." in capsys.readouterr().out
    write_policy(tmp_path, "b", queues=["b"], program="b", command="php artisan queue:work")
    assert main(["check", str(tmp_path)]) == 0
    assert "\n2 pools valid." in capsys.readouterr().out


def test_config_file_that_is_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(tmp_path), "config"]) == 2
    assert f"{tmp_path}: is a directory" in capsys.readouterr().err


def test_config_masks_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTOSCALER_REDIS_URL", "redis://:hunter2@db:6379/0")
    monkeypatch.setenv("AUTOSCALER_SUPERVISOR_PASSWORD", "hunter3")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "hunter" not in out and "redis://:***@db:6379/0" in out
    assert "AUTOSCALER_MEMORY_BUDGET_MB" in out
    assert main(["config", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["supervisor_password"] == "***"


@pytest.mark.parametrize("verb", ["config", "status", "run"])
def test_bad_redis_port_is_a_config_error(
    verb: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTOSCALER_REDIS_URL", "redis://:hunter2@h:abc/0")
    assert main([verb]) == 2
    err = capsys.readouterr().err
    assert "redis_url" in err and "port" in err and "hunter2" not in err


def test_init_round_trips_the_seed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "policies"
    assert main(["init", "--from-supervisor", str(SEED), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for program in ("websocket-trade-monitor", "laravel-scheduler", "websocket-monitor"):
        assert f"left alone: [program:{program}]" in printed
    policies = load_policies(out, usable_memory_mb=4608)
    assert main(["check", str(out), "--no-host"]) == 0
    assert sorted(policies) == sorted(load_policies(REPO / "policies"))
    gift = policies["gift_card_exchange"]
    assert gift.static_processes == 4 and gift.priority == 100 and gift.timeout_s == 300
    assert gift.memory_per_worker_mb == 256 and gift.supervisor.user == "www"
    assert policies["default"].queues == ("high", "default")
    assert policies["mail"].memory_per_worker_mb == 128


def test_shipped_policies_come_from_the_seed(tmp_path: Path) -> None:
    """The shipped files keep what init imported; only bounds, SLO and run time were tuned."""
    main(["init", "--from-supervisor", str(SEED), "--out", str(tmp_path)])
    imported = load_policies(tmp_path)
    shipped = load_policies(REPO / "policies")
    tuned = {"min_processes", "max_processes", "slo", "expected_run_time_s", "strategy"}
    for pool, policy in shipped.items():
        kept = policy.model_dump(exclude=tuned)
        assert kept == imported[pool].model_dump(exclude=tuned), pool


def test_init_never_overwrites_without_force(tmp_path: Path) -> None:
    out = tmp_path / "p"
    assert main(["init", "--from-supervisor", str(SEED), "--out", str(out)]) == 0
    (out / "mail.toml").write_text("# my edits\n")
    assert main(["init", "--from-supervisor", str(SEED), "--out", str(out)]) == 2
    assert (out / "mail.toml").read_text() == "# my edits\n"
    assert main(["init", "--from-supervisor", str(SEED), "--out", str(out), "--force"]) == 0
    assert "queues" in (out / "mail.toml").read_text()


def test_init_fixes_stopwaitsecs_and_reports_other_programs(tmp_path: Path) -> None:
    conf = tmp_path / "s.conf"
    conf.write_text(
        "[program:w]\ncommand=php artisan queue:work --timeout=120 --queue=a\nnumprocs=3\n"
        'environment=APP_ENV="prod",X="1,2"\n\n[program:cron]\ncommand=php artisan schedule:work\n'
    )
    out = tmp_path / "p"
    assert main(["init", "--from-supervisor", str(conf), "--out", str(out)]) == 0
    text = (out / "a.toml").read_text()
    assert "stopwaitsecs = 150" in text and "NOTE: stopwaitsecs was 10" in text
    policy = load_policies(out)["a"]
    assert policy.supervisor.environment == {"APP_ENV": "prod", "X": "1,2"}
    assert policy.static_processes == 3


def test_init_rejects_unparseable_file(tmp_path: Path) -> None:
    conf = tmp_path / "s.conf"
    conf.write_text("this is not ini\n")
    assert main(["init", "--from-supervisor", str(conf), "--out", str(tmp_path / "p")]) == 2
    assert not (tmp_path / "p").exists()


def test_console_script_installed() -> None:
    env = {**os.environ, "AUTOSCALER_MEMORY_BUDGET_MB": "9000"}
    script = find_binary("autoscaler")  # the one installed beside this Python
    assert script is not None
    command = [script, "check", str(REPO / "policies"), "--no-host"]
    result = subprocess.run(command, capture_output=True, env=env)
    assert result.returncode == 0, result.stderr


def test_check_on_the_host_reports_what_supervisord_would_refuse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 19.1: `check` said "valid" for a policy supervisord refused (a missing log
    directory). On the host it now checks each pool's sections as supervisord would."""
    monkeypatch.delenv("CHECK_UNSET_VAR", raising=False)
    (tmp_path / "logs").mkdir()
    write_policy(tmp_path / "p", "fine", supervisor={"stdout_logfile": f"{tmp_path}/logs/f.log"})
    write_policy(
        tmp_path / "p",
        "nodir",
        program="nodir",
        queues=["nodir"],
        command="php artisan queue:work --queue=nodir",
        supervisor={"stdout_logfile": f"{tmp_path}/missing/x.log"},
    )
    write_policy(tmp_path / "p", "nouser", program="nouser", queues=["nouser"],
                 command="php artisan queue:work --queue=nouser",
                 supervisor={"user": "no-such-user-19"})  # fmt: skip
    write_policy(
        tmp_path / "p",
        "noenv",
        program="noenv",
        queues=["noenv"],
        command="php artisan queue:work --queue=noenv --memory=%(ENV_CHECK_UNSET_VAR)s",
    )
    assert main(["check", str(tmp_path / "p"), "--no-host"]) == 0  # CI: not this host
    capsys.readouterr()
    assert main(["check", str(tmp_path / "p"), "--host", "--format", "json"]) == 1
    errors = {
        Path(e["file"]).stem: e["problem"] for e in json.loads(capsys.readouterr().out)["errors"]
    }
    assert set(errors) == {"nodir", "nouser", "noenv"}
    assert "missing" in errors["nodir"] and "does not exist" in errors["nodir"]
    assert "no-such-user-19" in errors["nouser"]
    assert "ENV_CHECK_UNSET_VAR" in errors["noenv"] and "Available names" not in errors["noenv"]
    include = tmp_path / "conf.d" / "workers.conf"
    include.parent.mkdir()
    monkeypatch.setenv("AUTOSCALER_INCLUDE_FILE", str(include))
    assert main(["check", str(tmp_path / "p")]) == 1  # the include directory exists: on the host
    assert "no-such-user-19" in capsys.readouterr().err
