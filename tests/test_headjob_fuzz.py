"""Issue 19.2: any head payload, however broken, costs its queue the precise age for the tick
(with a reason) and nothing else. A 3 KB job nested ~1500 deep raised RecursionError in every
tick: no pool scaled and `status` crashed. The decoder is fuzzed (hypothesis), then the worst
payloads sit at the head of a queue on a real redis-server beside a healthy queue.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.cli.main import main
from autoscaler.laravel.headjob import MAX_PAYLOAD_BYTES, MIN_STAMP_S, HeadJobAges
from autoscaler.laravel.sampler import QueueSampler
from autoscaler.testing.laravel import make_payload, push
from autoscaler.testing.stack import RedisServer
from tests.policy_helpers import write_policy

NOW = 1_750_000_000.0
DEEP_LIST = b"[" * 1500 + b"]" * 1500  # 3 KB, deeper than the parser's recursion limit
DEEP_OBJECT = b'{"a":' * 1500 + b"1" + b"}" * 1500
SOURCES = {"createdAt", "pushedAt", "first_seen", "empty", "unknown"}


def check(head: bytes | str) -> tuple[float | None, str]:
    ages = HeadJobAges()
    age, source = ages.age("q", head, NOW)
    again, _ = ages.age("q", head, NOW + 5)  # the same head a tick later
    assert source in SOURCES
    assert age is not None and 0 <= age <= NOW - MIN_STAMP_S, age  # never 1.8e9 s, never < 0
    assert again is not None and again >= age
    return age, ages.problems.get("q", "")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=30,
)
stamps = st.one_of(
    st.integers(min_value=-(10**500), max_value=10**500),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    json_values,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes(head: bytes) -> None:
    check(head)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_json(value: object) -> None:
    check(json.dumps(value))


@settings(max_examples=300, deadline=None)
@given(created=stamps, pushed=stamps, attempts=stamps, delay=stamps)
def test_any_timestamps(created: object, pushed: object, attempts: object, delay: object) -> None:
    payload = {"uuid": "u", "createdAt": created, "pushedAt": pushed, "attempts": attempts}
    payload["delay"] = delay
    try:
        text = json.dumps(payload)
    except ValueError:  # an int too long for json.dumps: Laravel never writes one either
        return
    check(text)


@settings(max_examples=50, deadline=None)
@given(depth=st.integers(min_value=900, max_value=5000), opener=st.sampled_from("[{"))
def test_any_depth(depth: int, opener: str) -> None:
    body = "[" * depth + "]" * depth if opener == "[" else '{"a":' * depth + "1" + "}" * depth
    check(body)


@pytest.mark.parametrize(
    ("head", "reason"),
    [
        (DEEP_LIST, "nested too deep"),
        (DEEP_OBJECT, "nested too deep"),
        (b'{"uuid": "\xc3\x28"}', "not UTF-8"),
        (b"<?php serialize()", "not JSON"),
        (b"[1, 2]", "not an object"),
        (b" " * (MAX_PAYLOAD_BYTES + 1), "not parsed"),
        (json.dumps({"uuid": "z", "createdAt": 0}).encode(), "createdAt=0 is not a time"),
        (json.dumps({"uuid": "z", "createdAt": -5}).encode(), "createdAt=-5 is not a time"),
        (json.dumps({"uuid": "z", "pushedAt": "0"}).encode(), "pushedAt=0 is not a time"),
    ],
)
def test_each_broken_head_says_why(head: bytes, reason: str) -> None:
    age, problem = check(head)
    assert age == 0.0  # first seen now: counted from here, not from 1970
    assert reason in problem and "counts from when it was seen" in problem


def test_a_good_head_has_no_problem() -> None:
    ages = HeadJobAges()
    assert ages.age("q", make_payload(created_at=NOW - 30), NOW) == (30.0, "createdAt")
    assert ages.problems == {}


def test_a_poisoned_head_on_real_redis_costs_only_its_age(
    redis_client: redis.Redis,
    redis_server: RedisServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    now = time.time()
    for queue, head in [("deep", DEEP_LIST), ("huge", b"x" * (MAX_PAYLOAD_BYTES + 10))]:
        redis_client.rpush(f"p_queues:{queue}", head)
        push(redis_client, "p_", queue, make_payload(created_at=now - 9))
    push(redis_client, "p_", "fine", make_payload(created_at=now - 30))
    sampler = QueueSampler(redis_client, prefix="p_", queues=["deep", "huge", "fine"])
    for _ in range(2):  # every tick, not only the first
        sample = sampler.sample(now)
        assert sample.available and not sample.queue_errors
        assert sample.queues["fine"].oldest_wait_s == pytest.approx(30.0, abs=1.0)
        assert sample.queues["deep"].pending == 2 and sample.queues["huge"].pending == 2
        assert sample.queues["deep"].oldest_wait_source == "first_seen"
        assert set(sample.head_problems) == {"deep", "huge"}

    # `status` shows every pool (it crashed on the deep head)
    policies = tmp_path / "policies"
    for queue in ("deep", "fine"):
        write_policy(policies, queue, queues=[queue], program=f"{queue}-worker",
                     command=f"php artisan queue:work redis --queue={queue}",
                     strategy={"name": "static"})  # fmt: skip
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTOSCALER_POLICIES_DIR", str(policies))
    monkeypatch.setenv("AUTOSCALER_REDIS_URL", redis_server.url)
    monkeypatch.setenv("AUTOSCALER_REDIS_PREFIX", "p_")
    monkeypatch.setenv("AUTOSCALER_SUPERVISOR_URL", f"unix://{tmp_path}/none.sock")
    assert main(["status", "--format", "json", "--window", "0"]) == 0
    rows = {row["pool"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["deep"]["pending"] == 2 and rows["fine"]["pending"] == 1
