"""Trace loading: both shapes, gzip, comments, extra columns; every bad input names its line."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from autoscaler.policy.loader import PolicySet
from autoscaler.traces.loader import TraceError, bucket_width_s, load_trace, parse_trace
from tests.sim_helpers import policy_set


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> PolicySet:
    return policy_set(
        tmp_path_factory.mktemp("policies"),
        {
            "mail": {"expected_run_time_s": 2.0},
            "web": {"queues": ["high", "default"], "expected_run_time_s": 0.5},
        },
    )


def test_job_trace_sorts_each_queue_by_arrival(policies: PolicySet) -> None:
    text = "arrival_s,queue,service_s\n5,mail,1\n1,mail,2\n3,high,0.5\n1,mail,3\n"
    trace = parse_trace(text, policies, name="t.csv")
    assert trace.kind == "job" and trace.duration_s == 5.0 and trace.jobs == 4
    assert trace.queues["mail"].arrival_s.tolist() == [1.0, 1.0, 5.0]
    assert trace.queues["mail"].service_s.tolist() == [2.0, 3.0, 1.0]  # ties keep file order
    assert trace.queues["high"].arrival_s.tolist() == [3.0]


def test_rate_trace_spreads_jobs_over_their_bucket(policies: PolicySet) -> None:
    # Buckets of 10 s (the smallest step); rows with no arrivals may be left out.
    text = "time_s,queue,arrivals,service_s\n0,mail,2,4\n10,mail,0,1\n30,mail,1,6\n"
    trace = parse_trace(text, policies, name="t.csv")
    assert trace.kind == "rate" and trace.bucket_s == 10.0 and trace.duration_s == 40.0
    assert trace.queues["mail"].arrival_s.tolist() == [2.5, 7.5, 35.0]
    assert trace.queues["mail"].service_s.tolist() == [4.0, 4.0, 6.0]


def test_rate_trace_without_service_uses_the_pools_run_time(policies: PolicySet) -> None:
    text = "time_s,queue,arrivals\n0,default,1\n1,mail,1\n"
    trace = parse_trace(text, policies, name="t.csv")
    assert trace.queues["default"].service_s.tolist() == [0.5]
    assert trace.queues["mail"].service_s.tolist() == [2.0]
    assert trace.bucket_s == 1.0


def test_comments_blank_lines_extra_columns_and_column_order(policies: PolicySet) -> None:
    text = (
        "# origin: a test\n\n"
        "note,service_s,queue,arrival_s\n"
        "# a comment between rows\n"
        "x,2,mail,1\r\n"
        "\n"
        "y,3, mail ,4\n"
    )
    trace = parse_trace(text, policies, name="t.csv")
    assert trace.queues["mail"].arrival_s.tolist() == [1.0, 4.0]
    assert trace.queues["mail"].service_s.tolist() == [2.0, 3.0]


def test_gzip_and_plain_files_load_the_same(policies: PolicySet, tmp_path: Path) -> None:
    text = "# c\ntime_s,queue,arrivals\n0,mail,3\n2,high,1\n"
    plain = tmp_path / "t.csv"
    plain.write_text(text)
    zipped = tmp_path / "t.csv.gz"
    zipped.write_bytes(gzip.compress(text.encode()))
    a, b = load_trace(plain, policies), load_trace(zipped, policies)
    for queue in ("mail", "high"):
        assert np.array_equal(a.queues[queue].arrival_s, b.queues[queue].arrival_s)
    assert b.name == str(zipped)


def test_long_queue_names_are_read_whole(tmp_path: Path) -> None:
    name = "q" * 80
    policies = policy_set(tmp_path, {"long": {"queues": [name]}})
    trace = parse_trace(f"arrival_s,queue,service_s\n0,{name},1\n", policies, name="t")
    assert list(trace.queues) == [name]


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("", None, "is empty"),
        ("# only a comment\n\n", None, "is empty"),
        ("arrival_s,queue,service_s\n", 1, "has a header but no rows"),
        ("time,queue,jobs\n0,mail,1\n", 1, "the header must name the columns"),
        ("# c\narrival_s,queue\n0,mail\n", 2, "the header must name the columns"),
        ("arrival_s,queue,service_s\n0,mail,1\n-1,mail,1\n", 3, "arrival_s must not be negative"),
        ("arrival_s,queue,service_s\n0,mail,-2\n", 2, "service_s must not be negative"),
        ("arrival_s,queue,service_s\n0,mail,1\n# c\n1,mail,abc\n", 4, "service_s is not a number"),
        ("arrival_s,queue,service_s\n0,mail,nan\n", 2, "must be a finite number"),
        ("arrival_s,queue,service_s\n0,mail,1\n1,nope,1\n", 3, "queue 'nope' is consumed by no"),
        ("arrival_s,queue,service_s\n0,mail,1\n1,mail\n", 3, "expected 3 fields"),
        ("time_s,queue,arrivals\n0,mail,1.5\n", 2, "arrivals must be a whole number"),
        ("time_s,queue,arrivals\n0,mail,-1\n", 2, "arrivals must not be negative"),
        ("time_s,queue,arrivals\n-5,mail,1\n", 2, "time_s must not be negative"),
        ("time_s,queue,arrivals\n0,mail,1\n1,mail,1\n0,mail,2\n", 4, "a second row for queue"),
        # A Unix timestamp where seconds from the start belong: rejected, not simulated for hours.
        (
            "arrival_s,queue,service_s\n0,mail,1\n1e12,mail,1\n",
            3,
            "arrival_s 1e12 is 11,574,074 days",
        ),
        ("time_s,queue,arrivals\n1717171717,mail,1\n", 2, "is this a Unix timestamp"),
        ("arrival_s,queue,service_s\n31622400.5,mail,1\n", 2, "more than the 366 days"),
    ],
)
def test_bad_traces_name_the_line(
    policies: PolicySet, text: str, line: int | None, problem: str
) -> None:
    with pytest.raises(TraceError) as caught:
        parse_trace(text, policies, name="bad.csv")
    assert caught.value.line == line
    assert problem in str(caught.value)
    where = f"bad.csv:{line}: " if line is not None else "bad.csv: "
    assert str(caught.value).startswith(where)


def test_a_trace_may_last_a_year(policies: PolicySet) -> None:
    text = "arrival_s,queue,service_s\n0,mail,1\n31622400,mail,1\n"  # 366 days exactly
    assert parse_trace(text, policies, name="t.csv").duration_s == 366 * 86400


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_an_empty_file_is_named_and_called_empty(
    policies: PolicySet, tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(gzip.compress(b"") if suffix.endswith(".gz") else b"")
    with pytest.raises(TraceError) as caught:
        load_trace(path, policies)
    assert str(caught.value) == f"{path}: is empty: no header line and no rows"


def test_unreadable_files_are_a_trace_error(policies: PolicySet, tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot read"):
        load_trace(tmp_path / "missing.csv", policies)
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(b"not gzip at all")
    with pytest.raises(TraceError, match=r"broken\.csv\.gz: cannot read"):
        load_trace(broken, policies)


def test_bucket_width_is_the_smallest_step() -> None:
    assert bucket_width_s(np.array([0.0, 60.0, 60.0, 180.0])) == 60.0
    assert bucket_width_s(np.array([30.0, 0.0, 60.0])) == 30.0  # unsorted
    assert bucket_width_s(np.array([7.0, 7.0])) == 1.0


def test_a_declared_bucket_wins_over_the_inferred_one(policies: PolicySet) -> None:
    text = "# from a converter\n# bucket_s: 1\ntime_s,queue,arrivals\n10,mail,2\n3600,mail,1\n"
    trace = parse_trace(text, policies, name="t.csv")
    assert trace.bucket_s == 1.0 and trace.duration_s == 3601.0
    assert trace.queues["mail"].arrival_s.tolist() == [10.25, 10.75, 3600.5]


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("# bucket_s: 60\ntime_s,queue,arrivals\n0,mail,1\n30,mail,1\n", 1, "only 30 s apart"),
        ("# x\n# bucket_s = soon\ntime_s,queue,arrivals\n0,mail,1\n", 2, "must be a positive"),
        ("# bucket_s: 0\ntime_s,queue,arrivals\n0,mail,1\n", 1, "must be a positive"),
    ],
)
def test_a_bad_bucket_declaration_names_its_line(
    policies: PolicySet, text: str, line: int, problem: str
) -> None:
    with pytest.raises(TraceError) as caught:
        parse_trace(text, policies, name="t.csv")
    assert caught.value.line == line and problem in str(caught.value)
