"""Parsing `queue:work` output: lines as each Laravel generation prints them.

The samples are written character for character from WorkCommand.php of the release named
next to each (sprintf/str_pad/str_repeat with Symfony's 80-column width when not a TTY), and
run times as InteractsWithTime::runTimeForHumans and Carbon's short English/Chinese units
print them.
"""

from __future__ import annotations

import io
import json

import pytest

from autoscaler.laravel import worklog
from autoscaler.testing.laravel import PoppedJob, make_payload
from autoscaler.testing.worker import LOG_FORMATS, LogWriter, format_run_time

# 8.x to 9.20: writeStatus() -> "[%s][%s] %s %s" with str_pad("{$status}:", 11).
LEGACY = [
    "[2021-06-01 10:00:00][17] Processing: App\\Jobs\\SendMail",
    "[2021-06-01 10:00:02][17] Processed:  App\\Jobs\\SendMail",
    "[2021-06-01 10:00:03][18] Processing: App\\Jobs\\SendMail",
    "[2021-06-01 10:00:03][18] Failed:     App\\Jobs\\SendMail",
]
# 9.21 to 9.40: the name at the start, dots + number_format(ms, 2) + status appended.
ONELINE = [
    "  2022-10-01 10:00:00 App\\Jobs\\SendMail ......................... 12.34ms DONE",
    "  2022-10-01 10:00:01 App\\Jobs\\SendMail ...................... 1,234.56ms FAIL",
]
# 9.41+: RUNNING, then the end (10.13.1+ human run time above a second).
TWOLINE = [
    "",
    "   INFO  Processing jobs from the [default] queue.",
    "",
    "  2023-06-01 10:00:00 App\\Jobs\\SendMail .............................. RUNNING",
    "  2023-06-01 10:00:00 App\\Jobs\\SendMail ......................... 12.34ms DONE",
    "  2023-06-01 10:00:00 App\\Jobs\\SendMail .............................. RUNNING",
    "  2023-06-01 10:02:03 App\\Jobs\\SendMail ........................... 2m 3s DONE",
    "  2023-06-01 10:02:03 App\\Jobs\\SendMail .............................. RUNNING",
    "  2023-06-01 10:02:04 App\\Jobs\\SendMail .............................. 1s FAIL",
]
# 12.20+ with -v: id, connection and queue after the name; 13.3+ also the memory.
VERBOSE = [
    "  2025-07-01 10:00:00 App\\Jobs\\SendMail 42 redis emails ............... RUNNING",
    "  2025-07-01 10:00:00 App\\Jobs\\SendMail 42 redis emails ... 12.34ms 24.5MB DONE",
]
# APP_LOCALE=zh_CN: Carbon's Laravel provider sets CarbonInterval's locale; no spaces.
CHINESE = "  2025-01-01 10:00:00 App\\Jobs\\SendMail ........................... 2分钟3秒 DONE"
# 11.27+ --json: writeOutputAsJson (array_filter drops the empty fields).
JSON = [
    '{"level":"info","id":"42","uuid":"9b1d","connection":"redis","queue":"emails",'
    '"job":"App\\\\Jobs\\\\SendMail","status":"starting","attempts":1,'
    '"timestamp":"2025-01-01T10:00:00.123456+00:00"}',
    '{"level":"info","id":"42","uuid":"9b1d","connection":"redis","queue":"emails",'
    '"job":"App\\\\Jobs\\\\SendMail","status":"success","result":"deleted","attempts":1,'
    '"timestamp":"2025-01-01T10:00:00.135801+00:00","duration":0.012345}',
    '{"level":"warning","id":"43","uuid":"9b1e","connection":"redis","queue":"emails",'
    '"job":"App\\\\Jobs\\\\SendMail","status":"released_after_exception","result":"released",'
    '"attempts":1,"timestamp":"2025-01-01T10:00:02.000000+00:00","duration":1.5}',
    '{"level":"warning","id":"44","uuid":"9b1f","connection":"redis","queue":"emails",'
    '"job":"App\\\\Jobs\\\\SendMail","status":"failed","result":"deleted","attempts":3,'
    '"exception":"RuntimeException","message":"boom",'
    '"timestamp":"2025-01-01T10:00:05.000000+00:00","duration":3.25}',
    '{"level":"warning","queue":"emails","status":"paused",'
    '"timestamp":"2025-01-01T10:00:06.000000+00:00"}',
]


def events(lines: list[str]) -> list[worklog.JobEvent]:
    return [e for e in (worklog.parse_line(line) for line in lines) if e is not None]


def test_legacy_lines() -> None:
    parsed = events(LEGACY)
    assert [(e.kind, e.ok, e.job_id) for e in parsed] == [
        ("start", True, "17"),
        ("end", True, "17"),
        ("start", True, "18"),
        ("end", False, "18"),
    ]
    assert all(e.run_s is None and e.detail == "App\\Jobs\\SendMail" for e in parsed)
    assert parsed[1].stamp == "2021-06-01 10:00:02"


def test_oneline_lines_and_thousands_separator() -> None:
    done, fail = events(ONELINE)
    assert (done.kind, done.ok, done.run_s) == ("end", True, pytest.approx(0.01234))
    assert (fail.kind, fail.ok, fail.run_s) == ("end", False, pytest.approx(1.23456))
    # While the job runs, its line is open: no newline yet.
    assert worklog.parse_partial("  2022-10-01 10:00:00 App\\Jobs\\SendMail") is not None
    assert worklog.parse_partial("  2022-10-01 10:00:00 App\\Jobs\\SendMail ....") is None


def test_twoline_lines() -> None:
    parsed = events(TWOLINE)
    assert [e.kind for e in parsed] == ["reset", "start", "end", "start", "end", "start", "end"]
    ends = [e for e in parsed if e.kind == "end"]
    assert [e.ok for e in ends] == [True, True, False]
    # Carbon truncates to whole seconds: the midpoint of the second is the estimate.
    assert [e.run_s for e in ends] == [pytest.approx(0.01234), 123.5, 1.5]


def test_verbose_lines_name_the_queue_and_memory_is_not_a_duration() -> None:
    start, end = events(VERBOSE)
    assert start.kind == "start" and end.run_s == pytest.approx(0.01234)
    assert worklog.queue_of(end, ("high", "emails")) == "emails"
    assert worklog.queue_of(end, ("high", "default")) is None
    plain = events(TWOLINE)[2]
    assert worklog.queue_of(plain, ("default",)) == "default"
    assert worklog.queue_of(plain, ("high", "default")) is None


def test_colours_of_a_worker_run_with_ansi_are_ignored() -> None:
    coloured = (
        "  \x1b[90m2023-06-01 10:00:00\x1b[39m App\\Jobs\\SendMail \x1b[90m.\x1b[39m"
        "\x1b[90m.\x1b[39m \x1b[90m12.34ms\x1b[39m \x1b[32;1mDONE\x1b[39;22m"
    )
    (event,) = events([coloured])
    assert (event.kind, event.ok, event.run_s) == ("end", True, pytest.approx(0.01234))


def test_chinese_locale_duration() -> None:
    (event,) = events([CHINESE])
    assert event.run_s == 123.5


def test_json_events() -> None:
    parsed = events(JSON)
    assert [(e.kind, e.ok, e.released, e.queue, e.run_s) for e in parsed] == [
        ("start", True, False, "emails", None),
        ("end", True, False, "emails", 0.012345),
        ("end", False, True, "emails", 1.5),
        ("end", False, False, "emails", 3.25),
    ]
    assert parsed[0].detail == "App\\Jobs\\SendMail" and parsed[0].job_id == "42"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("12.34ms", 0.01234),
        ("1,000.00ms", 1.0),
        ("12,345.67ms", 12.34567),
        ("1s", 1.5),
        ("1.52s", 1.52),
        ("59s", 59.5),
        ("2m", 120.5),
        ("2m 3s", 123.5),
        ("1h 1s", 3601.5),
        ("1w 1d 5s", 8 * 86400 + 5.5),
        ("2分钟3秒", 123.5),
        ("1小時2分鐘", 3720.5),
        ("3 秒", 3.5),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert worklog.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "fast", "12", "2x 3s", "3s later", "1,2ms extra"])
def test_not_durations(text: str) -> None:
    assert worklog.parse_duration(text) is None


def test_an_unknown_unit_still_counts_the_job() -> None:
    line = "  2025-01-01 10:00:00 App\\Jobs\\SendMail .......................... 2 Min. DONE"
    (event,) = events([line])
    assert event.kind == "end" and event.run_s is None


@pytest.mark.parametrize(
    "line",
    [
        "   INFO  Processing jobs from the [high,default] queues.",
        "  2025-01-01 10:00:06 Queue emails PAUSED",
        "PHP Fatal error:  Allowed memory size exhausted",
        "[2021-06-01 10:00:00] production.ERROR: something",
        '{"not": "an event"}',
        "{broken json",
        "",
    ],
)
def test_other_lines_are_not_job_events(line: str) -> None:
    event = worklog.parse_line(line)
    assert event is None or event.kind == "reset"


def test_in_flight_from_each_generation() -> None:
    assert worklog.job_in_flight("\n".join(LEGACY[:1]) + "\n") is True
    assert worklog.job_in_flight("\n".join(LEGACY) + "\n") is False
    assert worklog.job_in_flight("\n".join(TWOLINE[:4]) + "\n") is True
    assert worklog.job_in_flight("\n".join(TWOLINE) + "\n") is False
    assert worklog.job_in_flight("\n".join(JSON[:1]) + "\n") is True
    assert worklog.job_in_flight("\n".join(JSON) + "\n") is False  # paused is no job event
    open_line = ONELINE[0] + "\n  2022-10-01 10:00:05 App\\Jobs\\SendMail"
    assert worklog.job_in_flight(open_line) is True
    assert worklog.job_in_flight(ONELINE[0] + "\n") is False
    # A banner after a RUNNING line: the worker restarted, the job is no longer in its hands.
    restarted = "\n".join([*TWOLINE[3:4], *TWOLINE[:3]]) + "\n"
    assert worklog.job_in_flight(restarted) is False
    assert worklog.job_in_flight("nothing to see\n") is None
    assert worklog.job_in_flight("") is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.01234, "12.34ms"),
        (1.0, "1,000.00ms"),
        (1.001, "1s"),
        (1.52, "1s"),
        (59.999, "59s"),
        (60.0, "1m"),
        (123.4, "2m 3s"),
        (3601.0, "1h 1s"),
        (8 * 86400 + 5, "1w 1d 5s"),
    ],
)
def test_fake_worker_prints_run_times_as_laravel(seconds: float, text: str) -> None:
    assert format_run_time(seconds) == text


@pytest.mark.parametrize("style", LOG_FORMATS)
def test_fake_worker_lines_parse_back(style: str) -> None:
    payload = make_payload(job_id="42")
    reserved = json.loads(payload) | {"attempts": 1}
    job = PoppedJob(queue="emails", raw=payload, reserved=json.dumps(reserved))
    out = io.StringIO()
    writer = LogWriter(style, out)
    writer.banner("emails")
    writer.starting(job, "App\\Jobs\\SendMail", "42", 1_700_000_000.0)
    assert worklog.job_in_flight(out.getvalue()) is True
    writer.finished(job, "App\\Jobs\\SendMail", "42", 1_700_000_123.4, run_s=123.4, ok=True)
    writer.starting(job, "App\\Jobs\\SendMail", "43", 1_700_000_200.0)
    writer.finished(job, "App\\Jobs\\SendMail", "43", 1_700_000_200.1, run_s=0.1, ok=False)
    assert worklog.job_in_flight(out.getvalue()) is False
    ends = [e for e in events(out.getvalue().split("\n")) if e.kind == "end"]
    assert [e.ok for e in ends] == [True, False]
    if style == "legacy":
        assert [e.run_s for e in ends] == [None, None]  # the slot's stamps give those
    elif style == "modern":
        assert [e.run_s for e in ends] == [123.5, pytest.approx(0.1)]
    else:
        assert [e.run_s for e in ends] == [pytest.approx(123.4), pytest.approx(0.1)]
    if style == "json":
        assert all(e.queue == "emails" for e in ends)
