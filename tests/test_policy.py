"""Policy parsing: valid files load; every rejection names the file, the field and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoscaler.policy.loader import PolicyErrors, find_line, load_policies
from tests.policy_helpers import write_policy

REPO = Path(__file__).resolve().parent.parent
INF, NAN = float("inf"), float("nan")


def errors_of(directory: Path, **kwargs: float) -> list[str]:
    with pytest.raises(PolicyErrors) as caught:
        load_policies(directory, **kwargs)
    return [str(e) for e in caught.value.errors]


def test_shipped_policies_are_valid() -> None:
    policies = load_policies(REPO / "policies", usable_memory_mb=4608)
    assert list(policies) == [
        "bill_processing",
        "card_query",
        "default",
        "forecast_crawler",
        "gift_card_exchange",
        "mail",
        "wechat-message",
    ]
    statics = {pool: p.static_processes for pool, p in policies.items()}
    assert statics == {
        "gift_card_exchange": 4,
        "forecast_crawler": 2,
        "bill_processing": 2,
        "card_query": 2,
        "wechat-message": 2,
        "mail": 1,
        "default": 2,
    }
    assert policies["default"].queues == ("high", "default")
    assert policies.pool_for_queue("high") == "default"
    for policy in policies.values():
        assert policy.stopwaitsecs > policy.timeout_s


def test_valid_policy_defaults(tmp_path: Path) -> None:
    write_policy(tmp_path, "emails")
    policy = load_policies(tmp_path)["emails"]
    assert policy.strategy.name == "slo"
    assert policy.timeout_s == 60
    assert policy.stopwaitsecs == 90
    assert policy.slo.allowed_miss_fraction == pytest.approx(0.05)
    assert policy.strategy.hpa.scale_up_policies[0].value == 4


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"min_processes": 5, "static_processes": 5}, "min_processes", "above max_processes"),
        ({"static_processes": 9}, "static_processes", "must lie within"),
        ({"max_processes": 0}, "max_processes", "greater than or equal to 1"),
        ({"memory_per_worker_mb": 0}, "memory_per_worker_mb", "greater than 0"),
        ({"memory_per_worker_mb": -5}, "memory_per_worker_mb", "greater than 0"),
        ({"slo": {"wait_s": 0}}, "slo.wait_s", "greater than 0"),
        ({"slo": {"wait_s": 5, "percentile": 100}}, "slo.percentile", "less than 100"),
        ({"numprocs": 3}, "numprocs", "unknown key"),
        ({"slo": {"wait_s": 5, "wiat": 1}}, "slo.wiat", "unknown key"),
        ({"command": "php artisan queue:work\n[program:evil]"}, "command", "line break"),
        ({"command": "php artisan [x]"}, "command", "[ or ]"),
        ({"command": "php artisan queue:work --name=50%"}, "command", "unescaped %"),
        ({"command": "php artisan queue:work ;comment"}, "command", "inline comment"),
        ({"command": "php artisan queue:work #comment"}, "command", "inline comment"),
        (
            {"supervisor": {"stdout_logfile": "/var/log/%(nope)s.log"}},
            "supervisor.stdout_logfile",
            "does not expand",
        ),
        ({"supervisor": {"user": "www\nx"}}, "supervisor.user", "line break"),
        (
            {"supervisor": {"environment": {"A": 'x",B="y'}}},
            "supervisor.environment.A",
            'must not contain "',
        ),
        ({"supervisor": {"stopwaitsecs": 60}}, "supervisor.stopwaitsecs", "--timeout (60)"),
        ({"supervisor": {"stopwaitsecs": 10}}, "supervisor.stopwaitsecs", "--timeout (60)"),
        ({"program": "bad:name"}, "program", "should match pattern"),
        ({"queues": []}, "queues", "at least 1"),
        ({"queues": ["a", "a"], "command": "php artisan queue:work"}, "queues", "twice"),
        ({"command": "php artisan queue:work --queue=other"}, "command", "--queue=other"),
        ({"command": "php artisan queue:work --timeout=abc"}, "command", "whole number"),
        ({"strategy": {"name": "magic"}}, "strategy.name", "Input should be"),
        ({"priority": "high"}, "priority", "valid integer"),
        # TOML has native types: no bool as a number, no string as a number, no float as int.
        ({"max_processes": True}, "max_processes", "valid integer, not a boolean"),
        ({"min_processes": "1"}, "min_processes", "valid integer, not a string"),
        ({"slo": {"wait_s": "10"}}, "slo.wait_s", "valid number, not a string"),
        ({"slo": {"wait_s": True}}, "slo.wait_s", "valid number, not a boolean"),
        ({"supervisor": {"startsecs": 1.0}}, "supervisor.startsecs", "not a float"),
        ({"supervisor": {"redirect_stderr": "yes"}}, "supervisor.redirect_stderr", "boolean"),
        ({"supervisor": {"environment": {"A": 1}}}, "supervisor.environment.A", "string"),
        (
            {
                "strategy": {
                    "hpa": {"scale_up_policies": [{"type": "Pods", "value": "4", "period_s": 15}]}
                }
            },
            "strategy.hpa.scale_up_policies.0.value",
            "valid integer",
        ),
        # TOML has inf and nan; no bound or later arithmetic may meet them.
        ({"slo": {"wait_s": INF}}, "slo.wait_s", "finite number"),
        ({"expected_run_time_s": INF}, "expected_run_time_s", "finite number"),
        ({"memory_per_worker_mb": NAN}, "memory_per_worker_mb", "finite number"),
        ({"strategy": {"slo": {"startup_s": INF}}}, "strategy.slo.startup_s", "finite number"),
        (
            {"strategy": {"hpa": {"scale_up_tolerance": INF}}},
            "strategy.hpa.scale_up_tolerance",
            "finite number",
        ),
    ],
)
def test_rejections_name_file_field_and_problem(
    tmp_path: Path, overrides: dict[str, object], field: str, fragment: str
) -> None:
    path = write_policy(tmp_path, "emails", **overrides)
    messages = errors_of(tmp_path)
    assert any(
        m.startswith(str(path)) and f": {field}: " in m and fragment in m for m in messages
    ), messages


def test_ints_are_fine_for_float_fields(tmp_path: Path) -> None:
    write_policy(tmp_path, "emails", memory_per_worker_mb=128, slo={"wait_s": 10})
    policy = load_policies(tmp_path)["emails"]
    assert policy.slo.wait_s == 10.0 and isinstance(policy.memory_per_worker_mb, float)


def test_all_errors_reported_at_once(tmp_path: Path) -> None:
    write_policy(tmp_path, "a", max_processes=0, memory_per_worker_mb=-1)
    write_policy(tmp_path, "b", queues=["x"], command="php artisan queue:work", colour="red")
    messages = errors_of(tmp_path)
    assert len(messages) == 3
    assert any("a.toml" in m and "max_processes" in m for m in messages)
    assert any("a.toml" in m and "memory_per_worker_mb" in m for m in messages)
    assert any("b.toml" in m and "colour" in m for m in messages)


def test_duplicate_queue_and_program_across_files(tmp_path: Path) -> None:
    write_policy(tmp_path, "a")
    write_policy(tmp_path, "b")
    messages = errors_of(tmp_path)
    assert any(
        "b.toml" in m and "queue 'emails' is already consumed by pool 'a'" in m for m in messages
    )
    assert any("b.toml" in m and "program 'emails-worker' is already used" in m for m in messages)


def test_min_memory_above_budget(tmp_path: Path) -> None:
    write_policy(tmp_path, "a", min_processes=3, static_processes=3, memory_per_worker_mb=500)
    messages = errors_of(tmp_path, usable_memory_mb=1000)
    assert any("min_processes" in m and "1500 MB" in m and "1000 MB" in m for m in messages)
    assert load_policies(tmp_path, usable_memory_mb=1500)


def test_toml_syntax_error_has_a_line(tmp_path: Path) -> None:
    (tmp_path / "broken.toml").write_text('queues = ["a"]\nprogram = \n')
    messages = errors_of(tmp_path)
    assert len(messages) == 1 and "broken.toml:2: (toml)" in messages[0]


def test_bad_pool_file_name(tmp_path: Path) -> None:
    write_policy(tmp_path, "has space")
    assert any("(file name)" in m for m in errors_of(tmp_path))


def test_error_lines_point_at_the_field(tmp_path: Path) -> None:
    path = write_policy(tmp_path, "emails", supervisor={"stopwaitsecs": 5})
    (error,) = errors_of(tmp_path)
    line = int(error.split(":")[1])
    assert path.read_text().splitlines()[line - 1].startswith("stopwaitsecs")


def test_find_line_handles_tables_and_dotted_keys() -> None:
    text = "a = 1\n[slo]\nwait_s = 3\n[strategy.hpa]\ntolerance = 0.2\n"
    assert find_line(text, "slo.wait_s") == 3
    assert find_line(text, "strategy.hpa.tolerance") == 5
    assert find_line(text, "strategy.hpa.list_length") == 4
    assert find_line(text, "a") == 1
    assert find_line(text, "nothing") is None


def test_empty_or_missing_directory(tmp_path: Path) -> None:
    assert "holds no *.toml" in errors_of(tmp_path)[0]
    assert "not a directory" in errors_of(tmp_path / "missing")[0]
