"""Choosing slots and the calls that reach them: scenario tables, no servers."""

from __future__ import annotations

from collections.abc import Collection, Mapping

import pytest

from autoscaler.act.reconcile import (
    Slot,
    choose_layout,
    our_slots,
    predicted_changes,
    slot_changes,
)
from autoscaler.policy.model import Policy
from autoscaler.supervisord.rpc import ProcessInfo
from tests.act_helpers import make_policy

STATES = {"STOPPED": 0, "STARTING": 10, "RUNNING": 20, "BACKOFF": 30, "STOPPING": 40}
STATES |= {"EXITED": 100, "FATAL": 200}

POLICIES: dict[str, Policy] = {
    "mail": make_policy(queues=["mail"], program="mail", command="x --queue=mail"),
    "sms": make_policy(queues=["sms"], program="sms", command="x --queue=sms", min_processes=1),
}


def proc(
    name: str, state: str = "RUNNING", *, group: str | None = None, started: int = 1
) -> ProcessInfo:
    return ProcessInfo(
        name=name, group=group or name, state=STATES[state], pid=100, start_s=started,
        now_s=2, stdout_logfile="", spawnerr="", exitstatus=0,
    )  # fmt: skip


def layout_of(
    file_slots: Collection[str],
    processes: list[ProcessInfo],
    desired: Mapping[str, int] | None,
    busy: Collection[str] = (),
) -> dict[str, tuple[int, ...]]:
    slots = our_slots(POLICIES, file_slots, processes)
    return choose_layout(POLICIES, slots, desired, busy).indices


def running(*names: str) -> list[ProcessInfo]:
    return [proc(n) for n in names]


@pytest.mark.parametrize(
    ("file_slots", "states", "desired", "busy", "expected"),
    [
        # scale up takes the lowest free indices, and never moves a slot
        (["mail_00", "mail_01"], {}, 5, (), (0, 1, 2, 3, 4)),
        (["mail_00", "mail_03"], {}, 3, (), (0, 1, 3)),
        # scale down: highest index first when all are idle
        (["mail_00", "mail_01", "mail_02"], {}, 1, (), (0,)),
        # ... idle before busy, whatever the index
        (["mail_00", "mail_01", "mail_02"], {}, 1, ("mail_00", "mail_02"), (0,)),
        (["mail_00", "mail_01", "mail_02"], {}, 2, ("mail_00", "mail_02"), (0, 2)),
        (["mail_00", "mail_01", "mail_02"], {}, 2, ("mail_01",), (0, 1)),
        # ... not-serving slots (FATAL, not added yet) before idle ones
        (["mail_00", "mail_01", "mail_02"], {"mail_00": "FATAL"}, 2, (), (1, 2)),
        (["mail_00", "mail_01", "mail_02"], {"mail_01": None}, 2, (), (0, 2)),
        # an index whose old worker still drains is not reused
        (["mail_00"], {"mail_01": "STOPPING"}, 2, (), (0, 2)),
    ],
)
def test_choose_layout(
    file_slots: list[str],
    states: dict[str, str | None],
    desired: int,
    busy: tuple[str, ...],
    expected: tuple[int, ...],
) -> None:
    processes = []
    for name in sorted(set(file_slots) | set(states)):
        state = states.get(name, "RUNNING")
        if state is not None:
            processes.append(proc(name, state))
    assert layout_of(file_slots, processes, {"mail": desired}, busy)["mail"] == expected


def test_pools_left_out_keep_the_file_then_what_runs_then_static() -> None:
    processes = running("mail_00", "mail_01", "mail_02")
    # mail: the file holds 2 of the 3 running (the third is adopted only if wanted)
    layout = layout_of(["mail_00", "mail_01"], processes, None)
    assert layout == {"mail": (0, 1), "sms": (0, 1)}  # sms: nothing anywhere -> static 2
    # nothing in the file: what runs is adopted
    assert layout_of([], processes, {})["mail"] == (0, 1, 2)


def test_adoption_notes_and_foreign_programs() -> None:
    processes = [
        proc("mail_00"),
        proc("mail_01"),  # runs, missing from the file: adopted
        proc("scheduler"),  # another file's program
        proc("mail_07", group="mail"),  # a numprocs program of a hand-written file
        proc("other_00"),  # slot-like name of a program no policy owns
    ]
    slots = our_slots(POLICIES, ["mail_00"], processes)
    assert sorted(slots) == ["mail_00", "mail_01"]
    layout = choose_layout(POLICIES, slots, {"mail": 2, "sms": 1}, ())
    assert layout.notes == ["mail_01 is RUNNING but missing from the file: adopting it"]
    assert layout.indices["mail"] == (0, 1)


def test_counts_outside_the_bounds_and_unknown_pools_are_refused() -> None:
    slots = our_slots(POLICIES, [], [])
    with pytest.raises(ValueError, match="outside"):
        choose_layout(POLICIES, slots, {"sms": 0}, ())
    with pytest.raises(ValueError, match="outside"):
        choose_layout(POLICIES, slots, {"mail": 9}, ())
    with pytest.raises(KeyError, match="nope"):
        choose_layout(POLICIES, slots, {"nope": 1}, ())


def changes_for(
    file_slots: list[str],
    processes: list[ProcessInfo],
    desired: Mapping[str, int],
    *,
    changed: Collection[str] = (),
    busy: Collection[str] = (),
    hold: Collection[str] = (),
    policies: Mapping[str, Policy] = POLICIES,
) -> list[tuple[str, str]]:
    slots = our_slots(policies, file_slots, processes)
    layout = choose_layout(policies, slots, desired, busy)
    target = {f"{policies[p].program}_{i:02d}" for p, ix in layout.indices.items() for i in ix}
    changes = slot_changes(
        policies, slots, layout, target=target, changed=changed, busy_slots=busy, hold=hold
    )
    return [(c.action, c.slot) for c in changes]


def test_changes_for_scaling_and_draining() -> None:
    sms = [proc("sms_00")]
    up = changes_for(["mail_00", "sms_00"], [proc("mail_00"), *sms], {"mail": 3, "sms": 1})
    assert up == [("add", "mail_01"), ("add", "mail_02")]
    processes = [proc("mail_00"), proc("mail_01"), proc("mail_02", "STOPPING"), *sms]
    processes += [proc("mail_03", "STOPPED"), proc("mail_04", "EXITED")]
    down = changes_for(["mail_00", "mail_01", "sms_00"], processes, {"mail": 1, "sms": 1})
    assert down == [("stop", "mail_01"), ("remove", "mail_03"), ("remove", "mail_04")]


def test_converged_means_no_change() -> None:
    processes = [proc("mail_00"), proc("mail_01"), proc("sms_00", "STARTING")]
    files = ["mail_00", "mail_01", "sms_00"]
    assert changes_for(files, processes, {"mail": 2, "sms": 1}) == []


def test_repairs() -> None:
    exits = {
        "mail": POLICIES["mail"].model_copy(
            update={
                "supervisor": POLICIES["mail"].supervisor.model_copy(
                    update={"autorestart": "unexpected"}
                )
            }
        ),
        "sms": POLICIES["sms"],
    }
    processes = [
        proc("mail_00", "FATAL"),
        proc("mail_01", "STOPPED"),  # stopped by hand after it ran
        proc("mail_02", "STOPPED", started=0),  # added, autostart pending: leave it
        proc("mail_03", "EXITED"),  # autorestart=unexpected: Supervisor will not restart it
        proc("sms_00", "EXITED"),  # autorestart=true: Supervisor restarts it itself
    ]
    files = ["mail_00", "mail_01", "mail_02", "mail_03", "sms_00"]
    desired = {"mail": 4, "sms": 1}
    got = changes_for(files, processes, desired, policies=exits)
    assert got == [("start", "mail_00"), ("start", "mail_01"), ("start", "mail_03")]
    held = changes_for(files, processes, desired, policies=exits, hold={"mail_00"})
    assert ("start", "mail_00") not in held


def test_changed_slots_are_replaced_one_running_slot_per_pool() -> None:
    files = ["mail_00", "mail_01", "mail_02", "sms_00"]
    processes = [proc("mail_00"), proc("mail_01"), proc("mail_02"), proc("sms_00")]
    changed = {"mail_00", "mail_01", "mail_02", "sms_00"}
    got = changes_for(files, processes, {"mail": 3, "sms": 1}, changed=changed, busy={"mail_02"})
    assert got == [("stop", "mail_01"), ("stop", "sms_00")]  # idle, highest index first
    # one is stopping: wait; a stopped one is re-added with its new configuration
    processes = [proc("mail_00"), proc("mail_01", "STOPPING"), proc("mail_02"), proc("sms_00")]
    assert changes_for(files, processes, {"mail": 3, "sms": 1}, changed=changed - {"sms_00"}) == []
    processes[1] = proc("mail_01", "STOPPED")
    rest = changed - {"sms_00"}
    assert changes_for(files, processes, {"mail": 3, "sms": 1}, changed=rest) == [
        ("replace", "mail_01")
    ]
    # the next one only once the re-added slot runs again
    processes[1] = proc("mail_01", "STARTING")
    rest -= {"mail_01"}
    assert changes_for(files, processes, {"mail": 3, "sms": 1}, changed=rest) == []
    processes[1] = proc("mail_01")
    assert changes_for(files, processes, {"mail": 3, "sms": 1}, changed=rest) == [
        ("stop", "mail_02")
    ]


def test_a_pool_without_policy_is_drained() -> None:
    processes = [proc("gone_00"), proc("gone_01", "STOPPED"), proc("sms_00")]
    slots = our_slots(POLICIES, ["gone_00", "gone_01", "sms_00"], processes)
    assert slots["gone_00"].pool is None
    layout = choose_layout(POLICIES, slots, {"mail": 0, "sms": 1}, ())
    changes = slot_changes(POLICIES, slots, layout, target={"sms_00"}, changed=(), busy_slots=())
    assert [(c.action, c.slot, c.reason) for c in changes] == [
        ("stop", "gone_00", "its pool has no policy any more"),
        ("remove", "gone_01", "STOPPED: drained"),
    ]


def test_predicted_changes_compare_sections() -> None:
    old = {"mail_00": {"command": "a"}, "mail_01": {"command": "a"}}
    new = {"mail_00": {"command": "b"}, "mail_01": {"command": "a"}, "mail_02": {"command": "b"}}
    slots = {
        "mail_00": Slot(
            name="mail_00", index=0, pool="mail", in_file=True, process=proc("mail_00")
        ),
        "mail_01": Slot(
            name="mail_01", index=1, pool="mail", in_file=True, process=proc("mail_01")
        ),
    }
    assert predicted_changes(old, new, slots) == {"mail_00"}


def test_backoff_doubles_up_to_its_cap_and_resets() -> None:
    from autoscaler.backoff import Backoff

    now = [0.0]
    backoff = Backoff(initial_s=1.0, max_s=5.0, clock=lambda: now[0])
    assert backoff.remaining_s() == 0
    assert [backoff.failed() for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    now[0] += 2
    assert backoff.remaining_s() == 3.0
    backoff.succeeded()
    assert backoff.remaining_s() == 0 and backoff.failed() == 1.0
