"""The owned file: Supervisor's parser and our own checks before any write, atomic writes,
rotated versions, the reread marker and the apply lock."""

from __future__ import annotations

import glob
import threading
import time
from pathlib import Path

import pytest

from autoscaler.supervisord.include_file import (
    SupervisorFile,
    SupervisorFileError,
    check_text,
    default_state_dir,
    sections_of,
)
from autoscaler.supervisord.render import render
from tests.act_helpers import make_policy

GOOD = "[program:w_00]\ncommand=/bin/sleep 100\nnumprocs=1\n"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[program:w_00]\nnumprocs=1\n", "does not specify a command"),
        ("[program:w_00]\ncommand=/bin/sleep 1 %\n", "badly formatted"),
        ("[program:w_00]\ncommand=x\nstopsignal=NOPE\n", "not a valid signal"),
        ("[program:w_00]\ncommand=x\nstartsecs=soon\n", "invalid literal for int()"),
        ("[program:w_00]\ncommand=x\nuser=no-such-user-here\n", "Invalid user name"),
        ("[program:w_00]\ncommand=x\nstdout_logfile=/no/such/dir/w.log\n", "does not exist"),
        # What Supervisor's parser lets through:
        ("[program:w_00]\ncommand=x\nnumproc=5\n", "unknown key(s) numproc"),
        ("[program:w_00]\ncommand=x\nnumprocs=0\n", "numprocs=0"),
        (GOOD + GOOD, "[program:w_00] appears twice"),
        ("[program:w_00]\ncommand=x\ncommand=y\n", "already exists"),
        ("[program:scheduler]\ncommand=x\n", "not a worker slot"),
        ("[group:w]\nprograms=w_00\n" + GOOD, "not a worker slot"),
        ("command=x\n", "before the first section"),
    ],
)
def test_refused_texts(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(SupervisorFileError, match=r"workers\.conf") as caught:
        check_text(text, path=tmp_path / "workers.conf")
    assert problem in str(caught.value)
    assert "\n" not in str(caught.value)  # one readable line, no traceback


def test_a_policy_value_that_slipped_past_validation_is_caught(tmp_path: Path) -> None:
    policy = make_policy()
    # model_construct skips validation: a newline injects a section into the file.
    evil = policy.model_copy(update={"command": "/bin/true\n[program:evil]\ncommand=rm -rf /"})
    text = render({"emails": evil}, {"emails": (0,)})
    with pytest.raises(SupervisorFileError, match="program:evil"):
        check_text(text, path=tmp_path / "workers.conf")


def test_env_and_here_expansions_are_checked_as_supervisord_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "[program:w_00]\ncommand=/bin/echo %(ENV_ACT_TEST_X)s %(here)s\n"
    with pytest.raises(SupervisorFileError, match="ENV_ACT_TEST_X"):
        check_text(text, path=tmp_path / "w.conf")
    monkeypatch.setenv("ACT_TEST_X", "1")
    check_text(text, path=tmp_path / "w.conf")


def test_a_section_that_passed_is_checked_again_once_its_log_directory_is_gone(
    tmp_path: Path,
) -> None:
    """Issue 19.1: sections that passed were remembered as good, so a log directory deleted
    since went unseen until supervisord refused the whole file."""
    logs = tmp_path / "logs"
    logs.mkdir()
    file = SupervisorFile(path=tmp_path / "workers.conf")
    text = GOOD + f"stdout_logfile={logs}/w_00.log\nstderr_logfile=NONE\n"
    file.check(text)
    logs.rmdir()
    with pytest.raises(SupervisorFileError, match="does not exist"):
        file.check(text)
    logs.mkdir()
    file.check(text)
    # A path supervisord expands is not cached by its directory: parsed every time.
    expanded = GOOD.replace("w_00", "w_01") + "stdout_logfile=%(here)s/gone/w_01.log\n"
    with pytest.raises(SupervisorFileError, match="does not exist"):
        file.check(expanded)


def test_write_keeps_rotated_versions_and_skips_identical_text(tmp_path: Path) -> None:
    live = tmp_path / "conf.d" / "workers.conf"
    live.parent.mkdir()
    file = SupervisorFile(path=live, backups=2)
    assert file.state_dir == default_state_dir(live) == live.parent / ".workers.conf.autoscaler"
    versions = [f"[program:w_{i:02d}]\ncommand=/bin/sleep {i}\n" for i in range(4)]
    assert file.write(versions[0]) and file.read() == versions[0]
    assert file.backup_paths() == []
    inode = live.stat().st_ino
    assert not file.write(versions[0])  # identical: nothing written
    assert live.stat().st_ino == inode
    for text in versions[1:]:
        assert file.write(text)
    assert file.read() == versions[3]
    kept = [p.read_text() for p in file.backup_paths()]
    assert kept == [versions[2], versions[1]]  # newest first, only `backups` kept
    # a glob like conf.d/*.conf never sees the versions, the marker or the lock
    assert sorted(p.name for p in live.parent.glob("*.conf")) == ["workers.conf"]
    seen = glob.glob(str(live.parent / "*"))  # how supervisord expands [include] files=
    assert [Path(p).name for p in seen] == ["workers.conf"]
    assert not list(live.parent.glob(".*.tmp"))  # no temp file left behind


def test_an_invalid_text_never_reaches_the_live_file(tmp_path: Path) -> None:
    file = SupervisorFile(path=tmp_path / "workers.conf")
    file.write(GOOD)
    before = (file.path.stat().st_ino, file.path.stat().st_mtime_ns)
    with pytest.raises(SupervisorFileError):
        file.write("[program:w_00]\ncommand=x\nstopsignal=NOPE\n")
    assert file.read() == GOOD
    assert (file.path.stat().st_ino, file.path.stat().st_mtime_ns) == before
    assert file.backup_paths() == []


def test_a_retried_write_does_not_fill_the_backups_with_one_version(tmp_path: Path) -> None:
    file = SupervisorFile(path=tmp_path / "workers.conf", backups=3)
    file.write(GOOD)
    new = GOOD.replace("100", "200")
    for _ in range(3):  # write, roll back, write again: as a refused apply retried
        file.write(new)
        file.restore(GOOD)
    assert [p.read_text() for p in file.backup_paths()] == [GOOD]


def test_restore_none_removes_the_file_and_marker_round_trip(tmp_path: Path) -> None:
    file = SupervisorFile(path=tmp_path / "workers.conf")
    assert file.write(GOOD) and file.pending()
    file.clear_pending()
    assert not file.pending()
    file.restore(None)
    assert file.read() is None


def test_sections_of_a_broken_file_reads_what_it_can() -> None:
    assert set(sections_of(GOOD + "garbage line\n")) == {"w_00"}
    assert sections_of("garbage\n" + GOOD) == {}
    assert set(sections_of(GOOD + "[program:w_01]\ncommand=y\n")) == {"w_00", "w_01"}


def test_the_lock_serialises_appliers(tmp_path: Path) -> None:
    file = SupervisorFile(path=tmp_path / "workers.conf")
    order: list[str] = []

    def second() -> None:
        with file.locked():
            order.append("second")

    with file.locked():
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)
        order.append("first")
    thread.join(10)
    assert order == ["first", "second"]
    other = SupervisorFile(path=tmp_path / "workers.conf")
    with (
        file.locked(),
        pytest.raises(SupervisorFileError, match="another apply"),
        other.locked(timeout_s=0.2),
    ):
        pass


def test_a_missing_include_directory_is_not_created(tmp_path: Path) -> None:
    file = SupervisorFile(path=tmp_path / "nope" / "workers.conf")
    with pytest.raises(SupervisorFileError, match="no such directory"):
        file.write(GOOD)
    with pytest.raises(SupervisorFileError, match="no such directory"), file.locked():
        pass
    assert not (tmp_path / "nope").exists()
