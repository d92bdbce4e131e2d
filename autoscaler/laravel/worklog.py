"""Laravel `queue:work` output, parsed: which job started, which ended, how long it ran.

Four shapes, read from laravel/framework's Queue/Console/WorkCommand.php at each release tag
(docs/observing.md quotes them):

- `legacy` (up to 9.20): `[2024-01-01 12:00:00][42] Processing: App\\Jobs\\Foo`, then
  `Processed:  ...` or `Failed:     ...` (str_pad to 11). No run time; no line at all for an
  attempt released after an exception.
- `oneline` (9.21 to 9.40): `  2024-01-01 12:00:00 App\\Jobs\\Foo` is written when the job
  starts, with no newline; ` ....... 12.34ms DONE` completes the line when it ends.
- `twoline` (9.41 on): `  <date> <name> ..... RUNNING`, then `  <date> <name> ... <time> DONE`
  (or `FAIL`). `<time>` is `number_format(ms, 2)ms` up to a second (always, before 10.13.1,
  so `1,234.56ms` happens), else Carbon's short forHumans in the app's locale: `1s`, `2m 3s`,
  `2分钟3秒`, truncated to whole seconds. `-v` adds the job id after the name (12.20 on: id,
  connection and queue; 13.3 on also the memory after the time, `24.5MB`).
- `json` (11.27 on, `--json`): one object per event with `status` starting / success /
  released_after_exception / failed, `queue`, `id`, and `duration` (s) on the end events.

Nothing here reads files or clocks: the functions take text and return events.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

Generation = Literal["legacy", "oneline", "twoline", "json"]
EventKind = Literal["start", "end", "reset"]

# Carbon prints whole seconds above one second; the true run time lies anywhere in the
# following second, so its midpoint is the unbiased estimate.
TRUNCATED_SECONDS_MIDPOINT_S = 0.5

_STAMP = r"(?P<stamp>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})"
_LEGACY = re.compile(
    rf"^\[{_STAMP}\]\[(?P<id>[^\]]*)\] (?P<status>Processing|Processed|Failed):\s+(?P<name>.*)$"
)
_RUNNING = re.compile(rf"^  {_STAMP} (?P<detail>.*?) \.* RUNNING$")
_END = re.compile(
    rf"^  {_STAMP} (?P<detail>.*?) \.* (?P<time>\S(?:.*?\S)?)"
    r"(?: (?P<memory>\d+(?:\.\d+)?MB))? (?P<status>DONE|FAIL)$"
)
_ONELINE_START = re.compile(rf"^  {_STAMP} (?P<detail>\S.*)$")
_BANNER = re.compile(r"^\s*INFO\s+Processing jobs from the \[[^\]]*\] queues?\.\s*$")
_MS = re.compile(r"^(?P<ms>\d{1,3}(?:,\d{3})*(?:\.\d+)?|\d+(?:\.\d+)?)ms$")
_PART = re.compile(r"(?P<count>\d+(?:\.\d+)?) ?(?P<unit>[^\d\s.,]+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colours, when a worker runs with --ansi

_SECOND = 1.0
_MINUTE = 60.0
_HOUR = 3600.0
_DAY = 86400.0
_WEEK = 7 * _DAY
_MONTH = 4 * _WEEK  # CarbonInterval's cascade factors: 4 weeks a month, 12 months a year
_YEAR = 12 * _MONTH
# Carbon's short unit names: English (lang/en.php) and Chinese (zh_Hans.php, zh_Hant.php).
_UNITS: dict[str, float] = {
    "yr": _YEAR, "yrs": _YEAR, "mo": _MONTH, "mos": _MONTH, "w": _WEEK, "d": _DAY,
    "h": _HOUR, "m": _MINUTE, "s": _SECOND, "ms": 0.001, "µs": 1e-6,
    "年": _YEAR, "个月": _MONTH, "月": _MONTH, "周": _WEEK, "週": _WEEK, "天": _DAY,
    "小时": _HOUR, "小時": _HOUR, "分钟": _MINUTE, "分鐘": _MINUTE, "秒": _SECOND,
    "毫秒": 0.001, "微秒": 1e-6,
}  # fmt: skip
_JSON_ENDS = {"success": (True, False), "failed": (False, False)}
_JSON_RELEASED = "released_after_exception"


@dataclass(frozen=True, slots=True, kw_only=True)
class JobEvent:
    """One job line: a start, an end, or a worker (re)start that leaves no job in hand."""

    kind: EventKind
    generation: Generation | None = None
    ok: bool = True  # end: DONE / Processed / success
    released: bool = False  # end: the attempt threw and went back to the queue (json only)
    run_s: float | None = None  # end: the run time the line states (None: not stated)
    stamp: str | None = None  # the line's own time as printed (local time, no zone)
    job_id: str | None = None
    queue: str | None = None  # json and 12.20+ `-v` lines name it; see queue_of()
    detail: str = ""  # the job name as printed, with the `-v` extras


RESET = JobEvent(kind="reset")


def parse_duration(text: str) -> float | None:
    """`12.34ms`, `1,234.56ms`, `1s`, `2m 3s`, `1h 5m`, `2分钟3秒` -> seconds; None if not one.

    Whole-second forms (Carbon truncates) get half a second added: the midpoint of the
    second the job actually ended in.
    """
    text = text.strip()
    millis = _MS.match(text)
    if millis is not None:
        return float(millis.group("ms").replace(",", "")) / 1000.0
    total = 0.0
    position = 0
    smallest = None
    whole = True
    for part in _PART.finditer(text):
        if text[position : part.start()].strip():
            return None  # something between the parts that is not a duration
        factor = _UNITS.get(part.group("unit"))
        if factor is None:
            return None
        count = part.group("count")
        whole = whole and "." not in count
        total += float(count) * factor
        smallest = factor if smallest is None else min(smallest, factor)
        position = part.end()
    if smallest is None or text[position:].strip():
        return None
    if whole and smallest >= _SECOND:
        total += TRUNCATED_SECONDS_MIDPOINT_S
    return total


def parse_line(line: str) -> JobEvent | None:
    """The event a complete log line records, or None for any other line."""
    line = _plain(line.rstrip("\r\n"))
    if not line:
        return None
    first = line[0]
    if first == "{":
        return _parse_json(line)
    if first == "[":
        return _parse_legacy(line)
    if line.startswith("  ") and line[2:3].isdigit():
        if line.endswith(" RUNNING"):
            running = _RUNNING.match(line)
            if running is not None:
                return JobEvent(
                    kind="start",
                    generation="twoline",
                    stamp=running.group("stamp"),
                    detail=running.group("detail"),
                )
        if line.endswith((" DONE", " FAIL")):
            return _parse_end(line)
        return None
    if _BANNER.match(line):
        return RESET
    return None


def parse_partial(text: str) -> JobEvent | None:
    """A line still being written: 9.21 to 9.40 leave `  <date> <name>` open while the job
    runs, so an open line of that shape is a job in flight."""
    match = _ONELINE_START.match(_plain(text.rstrip("\r")))
    # The 9.41+ lines carry their dots from the start; an open line with dots is a chunk of
    # one of those that Supervisor has not finished writing, not a job in flight.
    if match is None or " ." in match.group("detail"):
        return None
    return JobEvent(
        kind="start", generation="oneline", stamp=match.group("stamp"), detail=match.group("detail")
    )


def job_in_flight(tail: str) -> bool | None:
    """Whether the worker writing this log has a job in hand, from the log's tail.

    True: the last job event is a start (or an open 9.21-9.40 line). False: the last one is an
    end, or the worker restarted since (its banner). None: no job line in the text.
    Caveat: up to 9.20 an attempt released after an exception prints nothing, so the worker
    looks busy until its next job starts.
    """
    lines = tail.split("\n")
    if lines[-1] and parse_partial(lines[-1]) is not None:
        return True
    for line in reversed(lines[:-1]):
        event = parse_line(line)
        if event is not None:
            return event.kind == "start"
    return None


def queue_of(event: JobEvent, queues: tuple[str, ...]) -> str | None:
    """The Laravel queue an event belongs to, among the pool's `queues`, when it can be told:
    the json `queue` field, the last word of a 12.20+ `-v` line, or the pool's only queue."""
    if event.queue is not None:
        return event.queue if event.queue in queues else None
    if len(queues) == 1:
        return queues[0]
    words = event.detail.split(" ")
    if len(words) >= 4 and words[-1] in queues:  # name, id, connection, queue
        return words[-1]
    return None


def stamp_seconds(stamp: str) -> float:
    """A printed `Y-m-d H:i:s` as seconds on a naive clock: only differences are meaningful."""
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").timestamp()


def _plain(text: str) -> str:
    return _ANSI.sub("", text) if "\x1b" in text else text


def _parse_legacy(line: str) -> JobEvent | None:
    match = _LEGACY.match(line)
    if match is None:
        return None
    status = match.group("status")
    return JobEvent(
        kind="start" if status == "Processing" else "end",
        generation="legacy",
        ok=status != "Failed",
        stamp=match.group("stamp"),
        job_id=match.group("id"),
        detail=match.group("name"),
    )


def _parse_end(line: str) -> JobEvent | None:
    match = _END.match(line)
    if match is None:
        return None
    detail = match.group("detail")
    # 9.21-9.40 print the name once when the job starts and append the end to it; 9.41+
    # print a fresh line. Both read the same; only the duration style tells them apart.
    return JobEvent(
        kind="end",
        generation="twoline",
        ok=match.group("status") == "DONE",
        run_s=parse_duration(match.group("time")),
        stamp=match.group("stamp"),
        detail=detail,
    )


def _parse_json(line: str) -> JobEvent | None:
    try:
        data: Any = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    status = data.get("status")
    queue = data.get("queue")
    common: dict[str, Any] = {
        "generation": "json",
        "stamp": str(data["timestamp"]) if "timestamp" in data else None,
        "job_id": str(data["id"]) if "id" in data else None,
        "queue": queue if isinstance(queue, str) else None,
        "detail": str(data.get("job", "")),
    }
    if status == "starting":
        return JobEvent(kind="start", **common)
    if status in _JSON_ENDS or status == _JSON_RELEASED:
        ok, released = _JSON_ENDS.get(status, (False, True))
        duration = data.get("duration")
        run_s = (
            float(duration)
            if isinstance(duration, int | float) and not isinstance(duration, bool)
            else None
        )
        return JobEvent(kind="end", ok=ok, released=released, run_s=run_s, **common)
    return None  # paused / resumed queue notices and anything else
