"""Slot names, per-slot log files and counting a pool's workers from Supervisor's view."""

from __future__ import annotations

from pathlib import Path

from autoscaler.policy.loader import load_policies
from autoscaler.supervisord.rpc import ProcessInfo
from autoscaler.supervisord.slots import parse_slot, slot_logfile, slot_name, worker_counts

REPO = Path(__file__).resolve().parent.parent


def info(name: str, state: int) -> ProcessInfo:
    return ProcessInfo(
        name=name, group=name, state=state, pid=1, start_s=0, now_s=0,
        stdout_logfile="", spawnerr="", exitstatus=0,
    )  # fmt: skip


def test_names_round_trip() -> None:
    assert slot_name("laravel-mail-worker", 3) == "laravel-mail-worker_03"
    assert slot_name("w", 123) == "w_123"
    slot = parse_slot("laravel-mail-worker_03")
    assert slot is not None and (slot.program, slot.index) == ("laravel-mail-worker", 3)
    assert parse_slot("laravel-scheduler") is None


def test_logfile_per_slot() -> None:
    policies = load_policies(REPO / "policies")
    gift = policies["gift_card_exchange"]
    assert slot_logfile(gift, 2) == (
        "/www/wwwroot/slurry-admin-api/storage/logs/supervisor/gift-card-worker_02.log"
    )
    expanded = gift.model_copy(
        update={
            "supervisor": gift.supervisor.model_copy(
                update={"stdout_logfile": "/l/%(program_name)s.log"}
            )
        }
    )
    assert slot_logfile(expanded, 2) == "/l/%(program_name)s.log"
    bare = gift.model_copy(
        update={"supervisor": gift.supervisor.model_copy(update={"stdout_logfile": "/l/worker"})}
    )
    assert slot_logfile(bare, 0) == "/l/worker_00"


def test_worker_counts_by_state() -> None:
    policies = load_policies(REPO / "policies")
    processes = [
        info("laravel-mail-worker_00", 20),
        info("laravel-mail-worker_01", 10),
        info("laravel-mail-worker_02", 40),
        info("laravel-mail-worker_03", 200),
        info("laravel-mail-worker_04", 0),  # stopped, removed soon: not counted
        info("laravel-mail-worker_05", 30),  # BACKOFF: crashed at start, no process
        info("laravel-scheduler", 20),  # not ours
    ]
    counts = worker_counts(processes, policies)
    mail = counts["mail"]
    assert (mail.running, mail.starting, mail.draining, mail.failed) == (1, 1, 1, 1)
    assert mail.crashing == 2  # BACKOFF and FATAL: neither has a process nor counts as current
    assert mail.current == 2
    assert counts["default"].current == 0
