"""Reading worker logs incrementally: offsets, rotation, truncation, partial lines, the bound."""

from __future__ import annotations

import os
from pathlib import Path

from autoscaler.observe.logtail import MAX_LINE_BYTES, LogTail, SlotLog, busy_slots, slot_in_flight
from autoscaler.supervisord.rpc import ProcessInfo

RUN = "  2023-06-01 10:00:00 App\\Jobs\\SendMail .............................. RUNNING\n"
DONE = "  2023-06-01 10:00:00 App\\Jobs\\SendMail ......................... 12.34ms DONE\n"
FAIL = "  2023-06-01 10:00:02 App\\Jobs\\SendMail ........................... 2m 3s FAIL\n"


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)


def test_first_sight_starts_at_the_end_and_reads_what_follows(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    log.write_text("old line\n" + RUN)
    tail = LogTail(str(log))
    first = tail.read()
    assert first.lines == [] and first.context is not None and "RUNNING" in first.context
    append(log, DONE + "next\n")
    assert tail.read().lines == [DONE.rstrip("\n"), "next"]
    assert tail.read().lines == []


def test_a_file_that_appears_later_is_read_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    tail = LogTail(str(log))
    missing = tail.read()
    assert not missing.exists and missing.complete
    log.write_text("one\ntwo\n")
    assert tail.read().lines == ["one", "two"]


def test_partial_line_is_kept_for_the_next_read(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    log.write_text("")
    tail = LogTail(str(log))
    tail.read()
    append(log, "  2023-06-01 10:00:00 App\\Jo")
    result = tail.read()
    assert result.lines == [] and result.partial == "  2023-06-01 10:00:00 App\\Jo"
    append(log, "bs\\SendMail ......................... 12.34ms DONE\nhalf")
    result = tail.read()
    assert result.lines == [DONE.rstrip("\n")] and result.partial == "half"


def test_rotation_reads_the_rest_of_the_old_file_then_the_new_one(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    log.write_text("")
    tail = LogTail(str(log))
    tail.read()
    append(log, "a\nb\n")
    assert tail.read().lines == ["a", "b"]
    # Supervisor writes what the pipe gave, rotates after a write: a line can straddle files.
    append(log, "c\nsplit-")
    os.rename(log, f"{log}.1")
    log.write_text("line\nd\n")
    result = tail.read()
    assert result.rotated and result.complete
    assert result.lines == ["c", "split-line", "d"]
    append(log, "e\n")
    assert tail.read().lines == ["e"]


def test_two_rotations_between_reads_find_the_old_file_by_inode(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    log.write_text("")
    tail = LogTail(str(log))
    tail.read()
    append(log, "a\n")
    os.rename(log, f"{log}.1")
    log.write_text("b\n")
    os.rename(f"{log}.1", f"{log}.2")
    os.rename(log, f"{log}.1")
    log.write_text("c\n")
    result = tail.read()
    # The middle file (b) was never ours: we only know the one we were reading and the new one.
    assert result.lines == ["a", "c"]


def test_rotated_out_of_reach_reports_lost_bytes(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    log.write_text("")
    tail = LogTail(str(log))
    tail.read()
    append(log, "partial")
    tail.read()
    os.rename(log, tmp_path / "elsewhere.log")
    log.write_text("new\n")
    result = tail.read()
    assert result.rotated and not result.complete and result.lines == ["new"]


def test_truncation_starts_again_at_zero(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    log.write_text("")
    tail = LogTail(str(log))
    tail.read()
    append(log, "a long first line\nsecond\n")
    assert tail.read().lines == ["a long first line", "second"]
    with log.open("w") as handle:  # stdout_logfile_backups=0: Supervisor reopens with "wb"
        handle.write("x\n")
    result = tail.read()
    assert result.truncated and result.lines == ["x"]


def test_the_byte_bound_defers_the_rest_without_losing_lines(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    log.write_text("")
    tail = LogTail(str(log), max_bytes=4096)
    tail.read()
    lines = [f"line {i:05d}" for i in range(1000)]  # 11 bytes each: 11000 bytes, < 4 x 4096
    append(log, "\n".join(lines) + "\n")
    seen: list[str] = []
    first = tail.read()
    assert first.bytes_read == 4096 and first.behind_bytes == 11000 - 4096 and first.complete
    seen += first.lines
    while True:
        result = tail.read()
        seen += result.lines
        if result.behind_bytes == 0:
            break
    assert seen == lines


def test_far_behind_skips_to_the_end_and_says_so(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    log.write_text("")
    tail = LogTail(str(log), max_bytes=4096)
    tail.read()
    append(log, "x" * 100 + "\n" + "y" * (5 * 4096) + "\n")
    result = tail.read()
    assert not result.complete and result.skipped_bytes > 4 * 4096 and result.lines == []
    append(log, "after\n")
    assert tail.read().lines == ["after"]


def test_an_endless_line_is_dropped(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    log.write_text("")
    tail = LogTail(str(log), max_bytes=MAX_LINE_BYTES * 2)
    tail.read()
    append(log, "z" * (MAX_LINE_BYTES + 10))
    result = tail.read()
    assert result.partial == "" and result.skipped_bytes == MAX_LINE_BYTES + 10
    append(log, "zz\nok\n")
    assert tail.read().lines == ["zz", "ok"]


def test_unreadable_is_an_error_not_an_exception(tmp_path: Path) -> None:
    tail = LogTail(str(tmp_path))  # a directory: open() fails
    tail.read()
    result = tail.read()
    assert result.error is not None and str(tmp_path) in result.error
    assert not result.complete


def test_slot_counts_run_times_and_in_flight(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    log.write_text(RUN)
    slot = SlotLog(LogTail(str(log)), queues=("default",))
    primed = slot.read()
    assert primed.completions == 0 and primed.in_flight is True
    append(log, DONE + RUN + FAIL + RUN)
    work = slot.read()
    assert (work.completions, work.failures) == (2, 1)
    assert work.run_times_s == [0.01234, 123.5]
    assert work.in_flight is True
    assert work.by_queue["default"].completions == 2


def test_legacy_run_time_from_stamps_and_silent_release(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    log.write_text("")
    slot = SlotLog(LogTail(str(log)), queues=("high", "default"))
    slot.read()
    append(
        log,
        "[2021-06-01 10:00:00][17] Processing: App\\Jobs\\A\n"
        "[2021-06-01 10:00:03][17] Processed:  App\\Jobs\\A\n"
        "[2021-06-01 10:00:04][18] Processing: App\\Jobs\\A\n"  # released: no line
        "[2021-06-01 10:00:09][19] Processing: App\\Jobs\\A\n",
    )
    work = slot.read()
    assert (work.completions, work.failures, work.run_times_s) == (2, 1, [3.0])
    assert work.in_flight is True
    assert work.unlabeled.completions == 2 and not work.by_queue  # text names no queue


def test_a_line_open_at_first_sight_is_finished_and_counted(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    log.write_text(DONE + "  2022-10-01 10:00:00 App\\Jobs\\SendMail")  # 9.21-9.40, running
    slot = SlotLog(LogTail(str(log)), queues=("default",))
    assert slot.read().in_flight is True
    append(log, " ......................... 12.34ms DONE\n")
    work = slot.read()
    assert (work.completions, work.in_flight, work.run_times_s) == (1, False, [0.01234])


def test_oneline_open_line_is_in_flight(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    log.write_text("")
    slot = SlotLog(LogTail(str(log)), queues=("default",))
    slot.read()
    append(log, "  2022-10-01 10:00:00 App\\Jobs\\SendMail")
    assert slot.read().in_flight is True
    append(log, " ......................... 12.34ms DONE\n")
    work = slot.read()
    assert work.in_flight is False and work.completions == 1


def test_json_lines_are_counted_per_queue(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    log.write_text("")
    slot = SlotLog(LogTail(str(log)), queues=("high", "default"))
    slot.read()
    append(
        log,
        '{"queue":"high","job":"A","status":"starting"}\n'
        '{"queue":"high","job":"A","status":"success","duration":0.5}\n'
        '{"queue":"default","job":"B","status":"starting"}\n'
        '{"queue":"default","job":"B","status":"released_after_exception","duration":1.0}\n',
    )
    work = slot.read()
    assert work.by_queue["high"].completions == 1 and work.by_queue["high"].failures == 0
    assert work.by_queue["default"].failures == 1
    assert work.run_times_s == [0.5, 1.0]


def test_slot_in_flight_reads_a_file_tail(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    log.write_text("x" * 100_000 + "\n" + RUN)
    assert slot_in_flight(str(log)) is True
    append(log, DONE)
    assert slot_in_flight(str(log)) is False
    assert slot_in_flight(str(tmp_path / "missing.log")) is None


def test_busy_slots_from_supervisor_process_infos(tmp_path: Path) -> None:
    def info(name: str, log: str) -> ProcessInfo:
        return ProcessInfo(
            name=name, group=name, state=20, pid=1, start_s=0, now_s=0,
            stdout_logfile=log, spawnerr="", exitstatus=0,
        )  # fmt: skip

    (tmp_path / "a.log").write_text(RUN)
    (tmp_path / "b.log").write_text(RUN + DONE)
    processes = [
        info("w_00", str(tmp_path / "a.log")),
        info("w_01", str(tmp_path / "b.log")),
        info("w_02", str(tmp_path / "gone.log")),
        info("w_03", ""),
    ]
    assert busy_slots(processes) == {"w_00"}
