"""A policy edit replaced surge-first, without servers: which slots are outdated, the steps of
their replacement, a new configuration that does not start, and the memory budget's say."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from autoscaler.act.outdated import Outdated, find_outdated
from autoscaler.act.reconcile import Slot, choose_layout, our_slots
from autoscaler.act.retire import CONFIG_RETRY_S, Replacer
from autoscaler.act.retire_state import load
from autoscaler.daemon.alerts import Alerter
from autoscaler.daemon.recycler import Recycler
from autoscaler.policy.model import Policy
from autoscaler.supervisord.render import contiguous, render, render_pool
from autoscaler.supervisord.rpc import ProcessInfo
from tests.act_helpers import make_policy as act_policy
from tests.test_lifecycle_logic import add, proc, recycler_inputs

OLD = act_policy(
    queues=["mail"], program="mail", command="x --queue=mail", static_processes=1, max_processes=1
)
NEW = OLD.model_copy(update={"command": "x --queue=mail --tries=2"})
NEWER = OLD.model_copy(update={"command": "x --queue=mail --tries=3"})
LIVE = render({"mail": OLD}, contiguous({"mail": 1}))  # the file as the old policy wrote it


def slots_of(policy: Policy, files: list[str], processes: list[ProcessInfo]) -> dict[str, Slot]:
    return our_slots({"mail": policy}, files, processes)


def apply_once(
    replacer: Replacer,
    policy: Policy,
    live: str,
    files: list[str],
    processes: list[ProcessInfo],
    *,
    desired: Mapping[str, int] | None = None,
) -> tuple[tuple[int, ...], str, dict[str, Slot]]:
    """What one apply lays out and writes for pool mail: (indices, file text, slots)."""
    policies = {"mail": policy}
    slots = slots_of(policy, files, processes)
    outdated = find_outdated(policies, live, slots)
    adjustment = replacer.adjust(policies, slots, desired, (), outdated)
    layout = choose_layout(
        policies,
        slots,
        adjustment.desired,
        (),
        retire_first=adjustment.retire_first,
        surge=adjustment.surge,
    )
    indices = layout.indices["mail"]
    return indices, render_pool("mail", policy, indices, outdated.sections), slots


def test_running_slots_whose_section_changed_are_outdated_the_others_not() -> None:
    live = render({"mail": OLD}, contiguous({"mail": 3}))
    processes = [proc("mail_00"), proc("mail_01", "STARTING"), proc("mail_02", "BACKOFF")]
    slots = slots_of(NEW, ["mail_00", "mail_01", "mail_02"], processes)
    found = find_outdated({"mail": NEW}, live, slots)
    assert found.pools == {"mail": ["mail_00", "mail_01"]}  # BACKOFF serves nothing: re-added
    assert found.reasons["mail_00"] == "configuration changed: command"
    assert "command=x --queue=mail\n" in found.sections["mail_00"]
    assert find_outdated({"mail": OLD}, live, slots).pools == {}  # the same policy
    assert find_outdated({"mail": NEW}, live, slots, paused={"mail"}).pools == {}


def test_a_one_slot_pool_surges_with_two_commands_then_drops_the_old_slot(
    tmp_path: Path,
) -> None:
    replacer = Replacer(path=tmp_path / "state.json", clock=lambda: 5.0)
    # 1. the old slot keeps its section; a new one with the new command is added
    indices, text, slots = apply_once(replacer, NEW, LIVE, ["mail_00"], [proc("mail_00", pid=1)])
    assert indices == (0, 1)
    assert "command=x --queue=mail\n" in text and "command=x --queue=mail --tries=2\n" in text
    replacer.settle(slots, add("mail_01"))
    assert load(tmp_path / "state.json").retiring["mail"].origin == "config"
    # 2. the new one starts: both stay (the pool is not scaled up meanwhile either)
    both = [proc("mail_00", pid=1), proc("mail_01", "STARTING", pid=2)]
    indices, text, slots = apply_once(
        replacer, NEW, text, ["mail_00", "mail_01"], both, desired={"mail": 1}
    )
    assert indices == (0, 1)
    replacer.settle(slots, [])
    # 3. it runs: the old slot goes (it finishes its job), the file holds the new command only
    runs = [proc("mail_00", pid=1), proc("mail_01", pid=2)]
    indices, text, slots = apply_once(
        replacer, NEW, text, ["mail_00", "mail_01"], runs, desired={"mail": 1}
    )
    assert indices == (1,) and "command=x --queue=mail\n" not in text
    replacer.settle(slots, [])


def test_a_new_configuration_that_does_not_start_is_held_until_edited_again(
    tmp_path: Path,
) -> None:
    now = [5.0]
    path = tmp_path / "state.json"
    replacer = Replacer(path=path, clock=lambda: now[0])
    _, text, slots = apply_once(replacer, NEW, LIVE, ["mail_00"], [proc("mail_00", pid=1)])
    replacer.settle(slots, add("mail_01"))
    fatal = [proc("mail_00", pid=1), proc("mail_01", "FATAL", pid=0)]
    indices, text, slots = apply_once(replacer, NEW, text, ["mail_00", "mail_01"], fatal)
    replacer.settle(slots, [])
    assert indices == (0,)  # the old worker stays, the failed slot goes
    assert "did not start" in replacer.failures["mail"] and "mail" in replacer.config_failures
    assert "command=x --queue=mail\n" in text  # with its old section
    assert load(path).config_failed["mail"].why.startswith("mail_01 did not start")
    # Not tried again at every apply...
    alone = [proc("mail_00", pid=1)]
    indices, text, slots = apply_once(replacer, NEW, text, ["mail_00"], alone)
    replacer.settle(slots, [])
    assert indices == (0,) and "mail" not in replacer.replacing
    # ...but after the retry delay, or at once for another edit.
    now[0] += CONFIG_RETRY_S
    assert apply_once(replacer, NEW, text, ["mail_00"], alone)[0] == (0, 1)
    now[0] -= CONFIG_RETRY_S
    assert apply_once(replacer, NEWER, text, ["mail_00"], alone)[0] == (0, 1)


def test_a_policy_put_back_midway_undoes_the_surge(tmp_path: Path) -> None:
    replacer = Replacer(path=tmp_path / "state.json", clock=lambda: 5.0)
    _, text, slots = apply_once(replacer, NEW, LIVE, ["mail_00"], [proc("mail_00", pid=1)])
    replacer.settle(slots, add("mail_01"))
    both = [proc("mail_00", pid=1), proc("mail_01", "STARTING", pid=2)]
    indices, _, slots = apply_once(replacer, OLD, text, ["mail_00", "mail_01"], both)
    replacer.settle(slots, [])
    assert indices == (0,)  # the old worker is what the policy says again: the new slot goes
    assert not (tmp_path / "state.json").exists()


def test_without_room_in_the_budget_the_replacement_waits(tmp_path: Path) -> None:
    replacer = Replacer(path=tmp_path / "state.json", clock=lambda: 5.0)
    recycler = Recycler(replacer=replacer, alerter=Alerter(interval_s=600))
    obs, plan, _ = recycler_inputs(room_mb=50)  # one more worker (128 MB) does not fit
    recycler.tick(obs, plan, {"mail": OLD})
    indices, _, _ = apply_once(replacer, NEW, LIVE, ["mail_00"], [proc("mail_00", pid=1)])
    assert indices == (0,) and replacer.waiting == {"mail"}
    obs, plan, _ = recycler_inputs(room_mb=500)
    recycler.tick(obs, plan, {"mail": OLD})
    indices, _, _ = apply_once(replacer, NEW, LIVE, ["mail_00"], [proc("mail_00", pid=1)])
    assert indices == (0, 1) and not replacer.waiting


def test_no_outdated_slots_means_no_change_to_the_steps(tmp_path: Path) -> None:
    replacer = Replacer(path=tmp_path / "state.json", clock=lambda: 5.0)
    slots = slots_of(OLD, ["mail_00"], [proc("mail_00", pid=1)])
    adjustment = replacer.adjust({"mail": OLD}, slots, {"mail": 1}, (), Outdated())
    assert adjustment.desired == {"mail": 1} and not adjustment.surge
