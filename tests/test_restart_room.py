"""Rolling restarts within the memory budget (act/retire.py, act/surge_room.py): a restart's
next surge starts only while one more worker fits, so `restart --all` on a full host goes pool
after pool; with no room and nothing to wait for, one step goes over by one worker."""

from __future__ import annotations

from pathlib import Path

from autoscaler.act.reconcile import Slot, our_slots
from autoscaler.act.retire import Replacer
from autoscaler.act.retire_state import ReplaceState, Restart, save
from autoscaler.act.surge_room import DeclaredRoom, used_mb
from autoscaler.policy.model import Policy
from autoscaler.supervisord.rpc import ProcessInfo
from tests.act_helpers import make_policy

STATES = {"RUNNING": 20, "STOPPING": 40, "BACKOFF": 30, "FATAL": 200}
POLICIES: dict[str, Policy] = {
    name: make_policy(
        queues=[name], program=name, command=f"x --queue={name}", memory_per_worker_mb=100
    )
    for name in ("a", "b")
}


def proc(name: str, pid: int, state: str = "RUNNING") -> ProcessInfo:
    return ProcessInfo(
        name=name,
        group=name,
        state=STATES[state],
        pid=pid,
        start_s=10,
        now_s=20,
        stdout_logfile="",
        spawnerr="",
        exitstatus=0,
    )


def restarting(tmp_path: Path, budget_mb: float | None) -> Replacer:
    """Pools a and b, two workers each (a_00, a_01, b_00, b_01), both being restarted."""
    path = tmp_path / "state.json"
    save(
        path,
        ReplaceState(
            restarts={
                pool: Restart(
                    pool=pool,
                    old={f"{pool}_00": 1 + base, f"{pool}_01": 2 + base},
                    running_at_start=2,
                    owner_pid=0,
                    started_s=5.0,
                )
                for pool, base in (("a", 0), ("b", 10))
            }
        ),
    )
    room = DeclaredRoom(budget_mb) if budget_mb is not None else None
    return Replacer(path=path, clock=lambda: 5.0, declared_room=room)


def four_workers(*extra: ProcessInfo) -> dict[str, Slot]:
    processes = [proc("a_00", 1), proc("a_01", 2), proc("b_00", 11), proc("b_01", 12), *extra]
    return our_slots(POLICIES, [p.name for p in processes], processes)


def test_room_for_two_surges_restarts_both_pools_at_once(tmp_path: Path) -> None:
    replacer = restarting(tmp_path, budget_mb=600)  # 400 held: two more fit
    adjustment = replacer.adjust(POLICIES, four_workers(), None, ())
    assert adjustment.surge == {"a", "b"} and not replacer.waiting


def test_room_for_one_surge_restarts_the_pools_one_after_the_other(tmp_path: Path) -> None:
    replacer = restarting(tmp_path, budget_mb=500)  # one more worker fits
    adjustment = replacer.adjust(POLICIES, four_workers(), None, ())
    assert adjustment.surge == {"a"} and replacer.waiting == {"b"}
    assert replacer.events[-1] == (
        "b: waiting for memory room: restart: one more worker (100 MB) does not fit the memory "
        "budget (0 MB free at the declared sizes)"
    )
    replacer.adjust(POLICIES, four_workers(), None, ())
    assert not any("waiting" in event for event in replacer.events)  # said once


def test_a_worker_finishing_its_job_holds_memory_and_the_next_step_waits_for_it(
    tmp_path: Path,
) -> None:
    replacer = restarting(tmp_path, budget_mb=500)
    stopping = four_workers(proc("c_00", 30))  # not a pool of ours: holds nothing
    assert used_mb(stopping, POLICIES) == 400
    slots = four_workers(proc("a_02", 3, "STOPPING"))  # a replaced worker finishing its job
    assert used_mb(slots, POLICIES) == 500
    adjustment = replacer.adjust(POLICIES, slots, None, ())
    assert not adjustment.surge and replacer.waiting == {"a", "b"}
    assert not any("over the budget" in event for event in replacer.events)


def test_a_full_host_with_nothing_to_wait_for_goes_over_by_one_worker_one_pool_at_a_time(
    tmp_path: Path,
) -> None:
    replacer = restarting(tmp_path, budget_mb=400)  # full: no surge fits, ever
    adjustment = replacer.adjust(POLICIES, four_workers(), None, ())
    assert adjustment.surge == {"a"} and replacer.waiting == {"b"}
    assert any("a: no memory room" in e and "over the budget by one" in e for e in replacer.events)


def test_crashing_slots_hold_no_memory(tmp_path: Path) -> None:
    slots = four_workers(proc("a_02", 0, "BACKOFF"), proc("b_02", 0, "FATAL"))
    assert used_mb(slots, POLICIES) == 400


def test_without_a_gate_every_pool_surges_as_before(tmp_path: Path) -> None:
    replacer = restarting(tmp_path, budget_mb=None)  # an Actuator built without settings
    assert replacer.adjust(POLICIES, four_workers(), None, ()).surge == {"a", "b"}


def test_the_daemons_gate_wins_over_the_declared_sizes(tmp_path: Path) -> None:
    replacer = restarting(tmp_path, budget_mb=10_000)
    asked: list[tuple[str, str]] = []

    def no_room(pool: str, what: str) -> bool:
        asked.append((pool, what))
        return False

    replacer.may_surge = no_room
    adjustment = replacer.adjust(POLICIES, four_workers(), None, ())
    assert asked == [("a", "restart"), ("b", "restart")]
    assert adjustment.surge == {"a"}  # nothing else in progress: over by one, one pool
    assert not any("waiting for memory room" in e for e in replacer.events)  # the daemon says it
