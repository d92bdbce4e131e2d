"""The rendered include file: one program per slot, deterministic, accepted by Supervisor."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from autoscaler.policy.loader import load_policies
from autoscaler.supervisord.include_file import check_text
from autoscaler.supervisord.render import HEADER, SLOT_KEYS, contiguous, render, render_slot
from tests.act_helpers import make_policy

REPO = Path(__file__).resolve().parent.parent


def parse(text: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=True, interpolation=None)
    parser.read_string(text)
    return parser


def test_one_program_per_slot_with_the_fixed_stop_options(tmp_path: Path) -> None:
    policy = make_policy(
        command="php artisan queue:work redis --queue=emails --timeout=60",
        priority=300,
        supervisor={
            "user": "www",
            "directory": "/srv/app",
            "environment": {"B": "2", "A": "x y"},
            "stdout_logfile": str(tmp_path / "emails.log"),
            "stdout_logfile_backups": 3,
        },
    )
    text = render({"emails": policy}, {"emails": (0, 1, 3)})
    assert text.startswith(HEADER) and "DO NOT EDIT" in text
    parser = parse(text)
    assert parser.sections() == [
        "program:emails-worker_00",
        "program:emails-worker_01",
        "program:emails-worker_03",
    ]
    slot = dict(parser.items("program:emails-worker_03"))
    assert set(slot) <= SLOT_KEYS
    assert slot["numprocs"] == "1"
    assert slot["stopsignal"] == "TERM"
    assert slot["stopasgroup"] == slot["killasgroup"] == "true"
    assert slot["stopwaitsecs"] == "90"  # --timeout 60 + 30 when the policy sets none
    assert slot["priority"] == "300"
    assert slot["user"] == "www" and slot["directory"] == "/srv/app"
    assert slot["environment"] == 'A="x y",B="2"'  # sorted: same input, same bytes
    assert slot["stdout_logfile"] == str(tmp_path / "emails_03.log")
    assert slot["stdout_logfile_backups"] == "3"
    assert slot["autostart"] == "true"


def test_same_input_same_bytes() -> None:
    policies = load_policies(REPO / "policies")
    counts = {pool: p.static_processes for pool, p in policies.items()}
    first = render(policies, contiguous(counts))
    reordered = dict(reversed(list(contiguous(counts).items())))
    assert render(policies, reordered) == first
    assert render(policies, contiguous(counts)) == first
    # 15 slots of the seed's configuration, every pool present, ordered by pool name
    assert first.count("[program:") == sum(counts.values()) == 15
    assert first.index("laravel-bill-worker_00") < first.index("laravel-mail-worker_00")


def test_pools_without_slots_are_left_out_and_unknown_pools_rejected() -> None:
    policy = make_policy()
    assert "[program:" not in render({"emails": policy}, {"emails": ()})
    with pytest.raises(KeyError, match="nope"):
        render({"emails": policy}, {"nope": (0,)})


def test_explicit_stopwaitsecs_and_stderr_per_slot(tmp_path: Path) -> None:
    policy = make_policy(
        supervisor={
            "stopwaitsecs": 75,
            "redirect_stderr": False,
            "stderr_logfile": str(tmp_path / "err.log"),
        }
    )
    section = render_slot(policy, 2)
    assert "stopwaitsecs=75\n" in section
    assert f"stderr_logfile={tmp_path / 'err_02.log'}\n" in section
    assert "redirect_stderr=false\n" in section
    assert "stdout_logfile" not in section  # Supervisor's AUTO log in childlogdir


def test_the_seed_policies_render_a_file_supervisor_accepts(tmp_path: Path) -> None:
    policies = load_policies(REPO / "policies")
    # The seed's paths (/www/...) and user (www) do not exist here: point them at tmp.
    local = {
        pool: p.model_copy(
            update={
                "supervisor": p.supervisor.model_copy(
                    update={
                        "user": None,
                        "directory": str(tmp_path),
                        "stdout_logfile": str(tmp_path / f"{pool}.log"),
                    }
                )
            }
        )
        for pool, p in policies.items()
    }
    text = render(local, contiguous({pool: p.max_processes for pool, p in local.items()}))
    check_text(text, path=tmp_path / "workers.conf")
