"""Worker lifecycle without servers: the measured memory size in decide, which worker to
recycle, and the surge-first replacement steps (act/retire.py) as scenario tables."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from autoscaler.act.reconcile import Slot, SlotChange, choose_layout, our_slots
from autoscaler.act.retire import Replacer
from autoscaler.act.retire_state import ReplaceState, Restart, Retirement, load, save
from autoscaler.daemon.alerts import Alerter
from autoscaler.daemon.recycler import Recycler
from autoscaler.decide.core import decide
from autoscaler.decide.plan import ControllerState, MemoryBudget, Plan
from autoscaler.decide.recycle import recycle_candidate
from autoscaler.observe.observation import Observation, PoolMemory
from autoscaler.observe.process_memory import SlotUsage
from autoscaler.policy.lifecycle import Lifecycle
from autoscaler.policy.model import Policy
from autoscaler.supervisord.rpc import ProcessInfo
from tests.act_helpers import make_policy as act_policy
from tests.decide_helpers import make_policy, observation, pool_obs

STATES = {"STOPPED": 0, "STARTING": 10, "RUNNING": 20, "BACKOFF": 30, "STOPPING": 40, "FATAL": 200}


# -- decide: declared or measured size ---------------------------------------------------------
def measured(high_mb: float, samples: int) -> PoolMemory:
    return PoolMemory(
        total_mb=2 * high_mb,
        max_mb=high_mb,
        live_mb=2 * high_mb,
        measured=2,
        high_water_mb=high_mb,
        samples=samples,
    )


@pytest.mark.parametrize(
    ("size", "high_mb", "samples", "expected_mb"),
    [
        ("declared", 40.0, 100, 100.0),  # declared: what is measured does not matter
        ("measured", 40.0, 100, 40.0),  # measured, enough samples: the high-water
        ("measured", 40.0, 3, 100.0),  # too few samples: declared until then
        ("measured", 900.0, 100, 192.0),  # never above --memory (128) + margin (64)
    ],
)
def test_the_budget_plans_with_the_declared_or_measured_size(
    size: str, high_mb: float, samples: int, expected_mb: float
) -> None:
    policies = {"a": make_policy("a", memory={"size": size, "min_samples": 12})}
    obs = pool_obs("a", pending=0, running=2)
    obs.memory = measured(high_mb, samples)
    plan, _ = decide(
        observation(obs),
        policies,
        ControllerState(),
        now_s=1000.0,
        budget=MemoryBudget(budget_mb=1e6),
    )
    assert plan.memory_planned_mb == pytest.approx(plan.counts()["a"] * expected_mb)


def test_the_budget_never_plans_past_mem_available_less_the_reserve() -> None:
    policies = {"a": make_policy("a", max_processes=20, memory_per_worker_mb=100)}
    obs = pool_obs("a", pending=1000, oldest_wait_s=60.0, running=2)
    obs.memory = measured(80.0, 1)  # the two workers hold 160 MB, measured
    budget = MemoryBudget(budget_mb=10_000, reserve_mb=100)
    plan, _ = decide(
        observation(obs, memory_available_mb=540),
        policies,
        ControllerState(),
        now_s=1000.0,
        budget=budget,
    )
    assert plan.memory_limit_mb == pytest.approx(540 - 100 + 160)
    assert plan.memory_planned_mb <= plan.memory_limit_mb


# -- which worker to recycle ---------------------------------------------------------------
def usage(slot: str, rss_mb: float, age_s: float, state: str = "RUNNING") -> SlotUsage:
    return SlotUsage(
        slot=slot,
        pool="p",
        pid=hash(slot) % 30000 + 2,
        state=state,
        rss_mb=rss_mb,
        cpu_percent=None,
        age_s=age_s,
        children=0,
        in_flight=None,
    )


def test_recycle_the_largest_worker_past_the_rss_limit_then_the_oldest() -> None:
    limits = Lifecycle(max_rss_mb=200, max_age_s=3600)
    slots = [usage("p_00", 150, 7200), usage("p_01", 250, 10), usage("p_02", 300, 10)]
    choice = recycle_candidate(slots, "p", limits)
    assert choice is not None and choice.slot == "p_02" and "300 MB" in choice.reason
    slots = [usage("p_00", 150, 7200), usage("p_01", 120, 9000), usage("p_02", 900, 9, "STOPPING")]
    choice = recycle_candidate(slots, "p", limits)
    assert choice is not None and choice.slot == "p_01" and "age" in choice.reason
    assert recycle_candidate(slots, "p", Lifecycle()) is None


# -- the replacement steps ---------------------------------------------------------------------
POLICIES: dict[str, Policy] = {
    "mail": act_policy(queues=["mail"], program="mail", command="x --queue=mail", max_processes=3)
}


def proc(name: str, state: str = "RUNNING", *, pid: int = 100, started: int = 10) -> ProcessInfo:
    return ProcessInfo(
        name=name,
        group=name,
        state=STATES[state],
        pid=pid,
        start_s=started,
        now_s=20,
        stdout_logfile="",
        spawnerr="spawn failed" if state == "FATAL" else "",
        exitstatus=0,
    )


def step(
    replacer: Replacer,
    file_slots: list[str],
    processes: list[ProcessInfo],
    desired: Mapping[str, int] | None = None,
) -> tuple[tuple[int, ...], dict[str, Slot]]:
    """One apply's layout for the replacer, and the slots it saw."""
    slots = our_slots(POLICIES, file_slots, processes)
    adjustment = replacer.adjust(POLICIES, slots, desired, ())
    layout = choose_layout(
        POLICIES,
        slots,
        adjustment.desired,
        (),
        retire_first=adjustment.retire_first,
        surge=adjustment.surge,
    )
    return layout.indices["mail"], slots


def add(slot: str) -> list[SlotChange]:
    return [SlotChange(slot=slot, pool="mail", action="add", reason="")]


def test_a_recycle_surges_then_stops_the_old_worker_once_the_new_one_runs(tmp_path: Path) -> None:
    replacer = Replacer(path=tmp_path / "state.json", clock=lambda: 5.0)
    three = [proc("mail_00", pid=1), proc("mail_01", pid=2), proc("mail_02", pid=3)]
    replacer.request(pool="mail", slot="mail_01", pid=2, reason="RSS 300 MB > 200")
    files = ["mail_00", "mail_01", "mail_02"]
    # 1. at max_processes (3) still: one above it for the surge, mail_01 kept
    indices, slots = step(replacer, files, three, {"mail": 3})
    assert indices == (0, 1, 2, 3)
    replacer.settle(slots, add("mail_03"))
    assert load(tmp_path / "state.json").retiring["mail"].replacement == "mail_03"
    # 2. the new one is starting: nothing moves
    starting = [*three, proc("mail_03", "STARTING", pid=4, started=6)]
    indices, slots = step(replacer, [*files, "mail_03"], starting, {"mail": 3})
    assert indices == (0, 1, 2, 3)
    replacer.settle(slots, [])
    # 3. it runs: mail_01 is dropped (it finishes its job), the count is back to 3
    runs = [*three, proc("mail_03", pid=4, started=6)]
    indices, slots = step(replacer, [*files, "mail_03"], runs, {"mail": 3})
    assert indices == (0, 2, 3)
    replacer.settle(slots, [])
    # 4. mail_01 stopping: the recycle waits for its exit; then it is done
    stopping = [proc("mail_00", pid=1), proc("mail_01", "STOPPING", pid=2), *runs[2:]]
    indices, slots = step(replacer, ["mail_00", "mail_02", "mail_03"], stopping, {"mail": 3})
    assert indices == (0, 2, 3) and "mail" in replacer.busy_pools()
    replacer.settle(slots, [])
    gone = [proc("mail_00", pid=1), proc("mail_01", "STOPPED", pid=0), *runs[2:]]
    indices, slots = step(replacer, ["mail_00", "mail_02", "mail_03"], gone, {"mail": 3})
    replacer.settle(slots, [])
    assert indices == (0, 2, 3) and not replacer.busy_pools()
    assert not (tmp_path / "state.json").exists()


def retirement(**overrides: object) -> Retirement:
    values: dict[str, object] = {
        "pool": "mail",
        "slot": "mail_00",
        "pid": 1,
        "reason": "restart",
        "origin": "restart",
        "since_s": 5.0,
        "replacement": "mail_02",
        "members_before": 2,
    }
    return Retirement(**{**values, **overrides})  # type: ignore[arg-type]


def restart_of(old: dict[str, int]) -> Restart:
    return Restart(pool="mail", old=old, running_at_start=2, owner_pid=0, started_s=5.0)


def test_a_replacement_that_does_not_start_is_dropped_and_the_old_worker_kept(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.json"
    state = ReplaceState(
        retiring={"mail": retirement()},
        restarts={"mail": restart_of({"mail_00": 1, "mail_01": 2})},
    )
    save(path, state)
    replacer = Replacer(path=path)
    files = ["mail_00", "mail_01", "mail_02"]
    processes = [proc("mail_00", pid=1), proc("mail_01", pid=2), proc("mail_02", "FATAL", pid=0)]
    indices, slots = step(replacer, files, processes)  # no desired: the file's count less one
    replacer.settle(slots, [])
    assert indices == (0, 1)
    assert (
        "did not start" in replacer.failures["mail"] and "spawn failed" in replacer.failures["mail"]
    )
    restart = load(path).restarts["mail"]
    assert restart.failed is not None and restart.old == {"mail_00": 1, "mail_01": 2}
    assert "mail" not in load(path).retiring


@pytest.mark.parametrize(("new_state", "expected"), [("STARTING", (0, 1)), ("RUNNING", (1, 2))])
def test_a_cancelled_step_is_undone_or_finished_in_one_apply(
    tmp_path: Path, new_state: str, expected: tuple[int, ...]
) -> None:
    path = tmp_path / "state.json"
    save(path, ReplaceState(retiring={"mail": retirement(cancel=True)}))
    replacer = Replacer(path=path)
    files = ["mail_00", "mail_01", "mail_02"]
    processes = [proc("mail_00", pid=1), proc("mail_01", pid=2), proc("mail_02", new_state, pid=3)]
    indices, slots = step(replacer, files, processes)
    replacer.settle(slots, [])
    assert indices == expected  # two slots: no extra one after this apply


def test_a_restart_goes_through_every_old_worker_idle_first(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    save(path, ReplaceState(restarts={"mail": restart_of({"mail_00": 1, "mail_01": 2})}))
    replacer = Replacer(path=path, clock=lambda: 5.0)
    processes = [proc("mail_00", pid=1), proc("mail_01", pid=2)]
    slots = our_slots(POLICIES, ["mail_00", "mail_01"], processes)
    adjustment = replacer.adjust(POLICIES, slots, None, {"mail_00"})  # mail_00 has a job
    assert adjustment.desired == {"mail": 3}
    assert replacer.state().retiring["mail"].slot == "mail_01"


def test_a_pool_scaling_down_drops_the_worker_to_recycle_without_a_surge(tmp_path: Path) -> None:
    replacer = Replacer(path=tmp_path / "state.json", clock=lambda: 5.0)
    replacer.request(pool="mail", slot="mail_00", pid=1, reason="age 90000s > max_age_s 86400")
    processes = [proc("mail_00", pid=1), proc("mail_01", pid=2), proc("mail_02", pid=3)]
    indices, _slots = step(replacer, ["mail_00", "mail_01", "mail_02"], processes, {"mail": 2})
    assert indices == (1, 2)


def test_a_pool_shrinking_during_a_surge_drops_the_old_worker_not_the_new_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.json"
    save(path, ReplaceState(retiring={"mail": retirement(members_before=2)}))
    replacer = Replacer(path=path)
    files = ["mail_00", "mail_01", "mail_02"]
    processes = [proc("mail_00", pid=1), proc("mail_01", pid=2), proc("mail_02", "STARTING")]
    indices, _slots = step(replacer, files, processes, {"mail": 1})
    assert indices == (1, 2)  # mail_00 (the old one) goes; mail_02 (new) keeps starting


# -- the daemon's recycler ----------------------------------------------------------------------
def recycler_inputs(room_mb: float) -> tuple[Observation, Plan, dict[str, Policy]]:
    policy = make_policy(
        "p", memory_per_worker_mb=100, lifecycle={"max_rss_mb": 200, "alert_recycles_per_hour": 2}
    )
    obs = observation(pool_obs("p", running=2))
    obs.slots = (usage("p-worker_00", 150, 10), usage("p-worker_01", 260, 10))
    plan = Plan(at_s=0, decisions={}, memory_limit_mb=1000, memory_planned_mb=0)
    plan.memory_peak_mb = 1000 - room_mb
    return obs, plan, {"p": policy}


def test_the_recycler_asks_within_the_budget_and_alerts_a_pool_that_recycles_too_often(
    tmp_path: Path,
) -> None:
    replacer = Replacer(path=tmp_path / "state.json")
    alerter = Alerter(interval_s=600)
    now = [1000.0]
    recycler = Recycler(replacer=replacer, alerter=alerter, clock=lambda: now[0])
    recycler.tick(*recycler_inputs(room_mb=50))  # one more worker (100 MB) does not fit
    assert not replacer.requested()
    for _ in range(3):
        now[0] += 60
        recycler.tick(*recycler_inputs(room_mb=500))
        request = replacer.requested()["p"]
        assert request.slot == "p-worker_01" and "260 MB > max_rss_mb 200" in request.reason
    assert [a.kind for a in alerter.sent] == ["recycling"]  # the third within the hour
    assert "3 workers recycled in the last hour" in alerter.sent[0].message
