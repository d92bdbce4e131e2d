"""A first start begins at static_processes (the policy's starting point) unless the data says
otherwise, on its own tick and on a real stack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from autoscaler.decide.core import decide
from autoscaler.decide.plan import ControllerState, MemoryBudget
from autoscaler.observe.observation import Observation
from autoscaler.supervisord.include_file import section_names
from autoscaler.testing.sandbox import Sandbox, SandboxPool
from tests.act_helpers import run_once
from tests.cli_sandbox import cli_sandbox
from tests.decide_helpers import make_policy, pool_obs

BUDGET = MemoryBudget(budget_mb=1e6)


def _tick(state: ControllerState, at_s: float, **obs: object) -> tuple[int, ControllerState]:
    policies = {
        "q": make_policy(
            "q", min_processes=1, static_processes=4,
            strategy={"name": "slo", "slo": {"scale_down_window_s": 30.0}},
        )
    }  # fmt: skip
    observation = Observation(at_s=at_s, interval_s=5.0, pools={"q": pool_obs("q", **obs)})  # type: ignore[arg-type]
    plan, state = decide(observation, policies, state, now_s=at_s, budget=BUDGET)
    return plan.counts()["q"], state


def test_first_start_holds_static_then_follows_the_data() -> None:
    count, state = _tick(ControllerState(), 0.0, running=0)  # nothing of ours runs, queue empty
    assert count == 4
    for at_s in range(5, 30, 5):  # within the scale-down window: still the starting point
        count, state = _tick(state, float(at_s), running=4)
    assert count == 4
    for at_s in range(30, 200, 5):  # then the empty queue brings it down to min, step by step
        count, state = _tick(state, float(at_s), running=count)
    assert count == 1
    # A backlog at the first start is data: it goes up at once, past the static count.
    count, _ = _tick(ControllerState(), 0.0, running=0, pending=400, oldest_wait_s=90.0)
    assert count > 4


@pytest.fixture
def box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    pool = SandboxPool(name="mail", queues=("mail",), min_processes=1, static_processes=3)
    with cli_sandbox(tmp_path, monkeypatch, pool) as sandbox:
        yield sandbox


@pytest.mark.integration
def test_the_daemons_first_tick_starts_the_static_count(box: Sandbox) -> None:
    assert run_once(Path.cwd()) == 0
    slots = section_names(box.include_file.read_text())
    assert slots == ["sandbox-mail_00", "sandbox-mail_01", "sandbox-mail_02"]
