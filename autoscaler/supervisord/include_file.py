"""The include file autoscaler owns: check it, write it atomically, keep and restore versions.

Every text is checked with Supervisor's own parser before it reaches the live file (what
supervisord would reject, e.g. a missing log directory, an unknown user, a bad signal), plus
what that parser lets through (docs/research.md §2): unknown keys, `numprocs` other than 1,
duplicate sections or keys, sections that are not worker slots. A write is atomic (temp file,
fsync, rename, fsync of the directory), so supervisord never reads half a file.

Beside the live file, in a state directory of its own (never matched by an `[include]` glob:
it is hidden and holds no `.conf` file), autoscaler keeps:
- `<name>.1` .. `<name>.N`: the previous versions, newest first;
- `<name>.rejected`: the last text supervisord refused to load, for an operator to read;
- `reread-pending`: present from the moment a new file is written until supervisord has
  loaded it and every slot runs its configuration, so a restarted autoscaler finishes the job;
- `retiring`: slots of removed pools that were stopped and are removed from supervisord once
  stopped (they are in no version of the file any more, so nothing else says they are ours);
- `apply.lock`: serialises applies (the daemon's tick and a manual `autoscaler scale`).
- `daemon.lock`: the active daemon's (autoscaler/daemon/lock.py), not this module's.
- `replacing.json`: workers being replaced surge-first (autoscaler/act/retire_state.py).
"""

from __future__ import annotations

import configparser
import contextlib
import fcntl
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

from supervisor.options import ServerOptions, UnhosedConfigParser

from autoscaler.fileio import write_atomic
from autoscaler.supervisord.render import SLOT_KEYS
from autoscaler.supervisord.slots import parse_slot

PROGRAM_PREFIX = "program:"
MAX_ACCEPTED = 100_000  # section texts remembered as accepted (a few MB at most)
_HEADER = re.compile(r"\[(?P<header>.+)\]")  # configparser's SECTCRE
_PROGRAM_HEADER = re.compile(r"^\[program:([^\]\s]+)\]", re.MULTILINE)
PENDING_MARKER = "reread-pending"
LOCK_NAME = "apply.lock"
RETIRING_NAME = "retiring"


class SupervisorFileError(Exception):
    """The file (or a text meant for it) is not acceptable; the message names file and problem."""


def default_state_dir(path: Path) -> Path:
    """`/etc/supervisor/conf.d/.autoscaler-workers.conf.autoscaler/` for that include file
    (the file a symlink points to: see SupervisorFile)."""
    real = path.resolve()
    return real.parent / f".{real.name}.autoscaler"


def check_text(
    text: str, *, path: Path, accepted: dict[str, tuple[str, ...] | None] | None = None
) -> None:
    """Raise SupervisorFileError unless supervisord would load `text` as the file at `path`
    and it holds nothing but worker slots with numprocs=1 and known keys.

    `accepted`: a cache of sections (their text) that passed before for this path, with the
    log directories their verdict depends on; only the others, and those whose directories
    are gone since, are parsed (about a millisecond each with Supervisor's parser), and
    passing ones are added. Both parsers judge each section on its own, so checking fewer is
    the same.
    """
    preamble, chunks = _section_chunks(text)
    for line in preamble:
        if line.strip() and not line.lstrip().startswith((";", "#")):
            raise SupervisorFileError(f"{path}: {line.strip()!r} before the first section")
    seen: set[str] = set()
    for chunk in chunks:
        header = _HEADER.match(chunk)
        name = header.group(1) if header is not None else chunk.splitlines()[0]
        if name in seen:
            raise SupervisorFileError(f"{path}: section [{name}] appears twice")
        seen.add(name)
    is_dir: dict[str, bool] = {}  # slots of a pool share a directory: one stat for them
    todo = [chunk for chunk in chunks if not _still_accepted(chunk, accepted, is_dir)]
    if todo:
        _check_structure("".join(todo), path=path)
        _check_with_supervisor("".join(todo), path=path)
    if accepted is not None:
        if len(accepted) > MAX_ACCEPTED:
            accepted.clear()
        accepted.update((chunk, _log_dirs(chunk)) for chunk in todo)


# A section's verdict depends on the file system too: supervisord refuses a log file whose
# directory does not exist, so a directory deleted after a section passed makes supervisord
# refuse it (and with it the whole file). The cache re-checks those directories (a stat each).
_LOGFILE = re.compile(r"^(?:stdout|stderr)_logfile\s*=\s*(.*?)\s*$", re.MULTILINE)
_NOT_A_PATH = frozenset({"NONE", "AUTO", "SYSLOG"})


def _log_dirs(chunk: str) -> tuple[str, ...] | None:
    """The directories a section's log files need (None: not known without expanding it, so
    it is parsed at every check)."""
    dirs: list[str] = []
    for value in _LOGFILE.findall(chunk):
        if "%(" in value:
            return None
        if value.upper() not in _NOT_A_PATH:
            directory = os.path.dirname(os.path.expanduser(value))
            if directory:
                dirs.append(directory)
    return tuple(dirs)


def _still_accepted(
    chunk: str, accepted: dict[str, tuple[str, ...] | None] | None, is_dir: dict[str, bool]
) -> bool:
    if accepted is None or chunk not in accepted:
        return False
    dirs = accepted[chunk]
    if dirs is None:
        return False
    for directory in dirs:
        found = is_dir.get(directory)
        if found is None:
            found = is_dir[directory] = os.path.isdir(directory)
        if not found:
            return False
    return True


def _check_structure(text: str, *, path: Path) -> None:
    """What Supervisor's parser lets through: duplicate keys, unknown keys (`numproc=5`),
    numprocs other than 1, and sections that are not worker slots."""
    strict = configparser.RawConfigParser(
        strict=True, interpolation=None, inline_comment_prefixes=(";", "#")
    )
    try:
        strict.read_string(text, source=str(path))
    except configparser.Error as exc:
        raise SupervisorFileError(f"{path}: {_one_line(exc)}") from None
    for section in strict.sections():
        name = section.removeprefix(PROGRAM_PREFIX)
        if not section.startswith(PROGRAM_PREFIX) or parse_slot(name) is None:
            raise SupervisorFileError(
                f"{path}: [{section}] is not a worker slot [program:<program>_NN]; the file "
                "autoscaler owns holds nothing else"
            )
        unknown = sorted(set(strict.options(section)) - SLOT_KEYS)
        if unknown:
            raise SupervisorFileError(f"{path}: [{section}]: unknown key(s) {', '.join(unknown)}")
        numprocs = strict.get(section, "numprocs", fallback="1")
        if numprocs.strip() != "1":
            raise SupervisorFileError(
                f"{path}: [{section}]: numprocs={numprocs}; a slot runs exactly one process"
            )


def _check_with_supervisor(text: str, *, path: Path) -> None:
    parser = UnhosedConfigParser()
    parser.expansions = {f"ENV_{key}": value for key, value in os.environ.items()}
    here = str(path.resolve().parent)
    try:
        parser.read_string(text, source=str(path))
        parser.expand_here(here)
        options = ServerOptions()
        options.here = here
        options.process_groups_from_parser(parser)
    except (ValueError, configparser.Error) as exc:
        message = brief(_one_line(exc).replace("(file: None)", "").strip())
        raise SupervisorFileError(f"{path}: supervisord would reject it: {message}") from None


def _section_chunks(text: str) -> tuple[list[str], list[str]]:
    """(lines before the first section, one text per section) as configparser cuts them."""
    preamble: list[str] = []
    chunks: list[list[str]] = []
    for line in text.splitlines(keepends=True):
        if line.startswith("["):
            chunks.append([line])
        elif chunks:
            chunks[-1].append(line)
        else:
            preamble.append(line)
    return preamble, ["".join(chunk) for chunk in chunks]


def section_names(text: str) -> list[str]:
    """The `[program:NAME]` names of a file, found by their header lines (fast, lenient)."""
    return [match.group(1) for match in _PROGRAM_HEADER.finditer(text)]


def slot_texts(text: str) -> dict[str, str]:
    """Slot name -> its section exactly as the file holds it (without the blank and comment
    lines that follow it), so a pool's last good sections can be kept verbatim."""
    texts: dict[str, str] = {}
    for chunk in _section_chunks(text)[1]:
        match = _PROGRAM_HEADER.match(chunk)
        if match is None:
            continue
        lines = chunk.splitlines(keepends=True)
        while len(lines) > 1 and (not lines[-1].strip() or lines[-1].lstrip()[:1] in (";", "#")):
            lines.pop()
        body = "".join(lines)
        texts[match.group(1)] = body if body.endswith("\n") else body + "\n"
    return texts


def sections_of(text: str) -> dict[str, dict[str, str]]:
    """Slot name -> its options, read leniently (a hand-edited file may be broken: what can
    be read is returned, the rest is ignored)."""
    parser = configparser.RawConfigParser(
        strict=False, interpolation=None, inline_comment_prefixes=(";", "#")
    )
    with contextlib.suppress(configparser.Error):
        parser.read_string(text)
    return {
        section.removeprefix(PROGRAM_PREFIX): dict(parser.items(section))
        for section in parser.sections()
        if section.startswith(PROGRAM_PREFIX)
    }


_AVAILABLE = re.compile(r"\s*Available names: .*?(?= in section |$)")


def brief(message: str) -> str:
    """Supervisor's message without the list of every name it could expand (the whole
    environment's names: long, and nothing an operator needs to fix the one unset)."""
    return _AVAILABLE.sub("", " ".join(message.split()))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


class SupervisorFile:
    """The live include file, its previous versions and the apply lock."""

    def __init__(self, *, path: Path, state_dir: Path | None = None, backups: int = 5) -> None:
        if backups < 0:
            raise ValueError("backups must be >= 0")
        # A symlinked include file is the file it points to: written through the link (an
        # atomic rename over the link would replace it with a regular file), and locked
        # there, so a daemon given the link and one given the target share one lock.
        self.path = path.resolve()
        self.state_dir = state_dir if state_dir is not None else default_state_dir(path)
        self.backups = backups
        # section texts Supervisor's parser accepted -> the log directories they need
        self._accepted: dict[str, tuple[str, ...] | None] = {}

    # -- reading -------------------------------------------------------------------------
    def read(self) -> str | None:
        """The live text, or None when the file does not exist yet."""
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise SupervisorFileError(f"{self.path}: cannot read: {exc}") from None

    def backup_paths(self) -> list[Path]:
        """Existing previous versions, newest first."""
        paths = [self._backup(n) for n in range(1, self.backups + 1)]
        return [p for p in paths if p.exists()]

    @property
    def rejected_path(self) -> Path:
        return self.state_dir / f"{self.path.name}.rejected"

    # -- writing -------------------------------------------------------------------------
    def check(self, text: str) -> None:
        check_text(text, path=self.path, accepted=self._accepted)

    def write(self, text: str) -> bool:
        """Check `text`, keep the current version, and replace the live file atomically.

        Returns False (and writes nothing) when the live file already holds exactly `text`.
        Raises SupervisorFileError when the text is not acceptable: the live file is untouched.
        """
        current = self.read()
        if current == text:
            return False
        self.check(text)
        self._ensure_state_dir()
        if current is not None:
            self._rotate(current)
        self.mark_pending()
        self._write_live(text)
        return True

    def previous_version(self) -> str | None:
        """The newest kept version before the live one (None: none kept)."""
        try:
            return self._backup(1).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SupervisorFileError(f"{self._backup(1)}: cannot read: {exc}") from None

    def restore(self, text: str | None) -> None:
        """Put back a previous text (None: the file did not exist), without rotating."""
        if text is None:
            self.path.unlink(missing_ok=True)
            _fsync_dir(self.path.parent)
        else:
            self._write_live(text)

    def save_rejected(self, text: str) -> None:
        self._ensure_state_dir()
        write_atomic(self.rejected_path, text, mode=0o600)

    # -- the reread marker -------------------------------------------------------------
    @property
    def pending_path(self) -> Path:
        return self.state_dir / PENDING_MARKER

    def pending(self) -> bool:
        return self.pending_path.exists()

    def mark_pending(self) -> None:
        if not self.pending():
            self._ensure_state_dir()
            write_atomic(self.pending_path, f"{time.time():.3f}\n", mode=0o600)

    def clear_pending(self) -> None:
        if self.pending():
            self.pending_path.unlink(missing_ok=True)

    # -- slots of removed pools --------------------------------------------------------------
    @property
    def retiring_path(self) -> Path:
        return self.state_dir / RETIRING_NAME

    def retiring(self) -> list[str]:
        """Slots of pools whose policy was removed, stopped but maybe not yet removed from
        supervisord (they are in no version of the file any more)."""
        try:
            text = self.retiring_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise SupervisorFileError(f"{self.retiring_path}: cannot read: {exc}") from None
        return [line.strip() for line in text.splitlines() if parse_slot(line.strip())]

    def set_retiring(self, names: set[str]) -> None:
        if set(self.retiring()) == names:
            return  # converged: no write
        if not names:
            self.retiring_path.unlink(missing_ok=True)
            return
        self._ensure_state_dir()
        write_atomic(self.retiring_path, "".join(f"{n}\n" for n in sorted(names)), mode=0o600)

    # -- the lock ------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self, *, timeout_s: float = 30.0) -> Iterator[None]:
        """Hold the apply lock (flock) so two appliers never interleave their steps."""
        self._ensure_state_dir()
        fd = os.open(self.state_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise SupervisorFileError(
                            f"{self.state_dir / LOCK_NAME}: another apply has held the lock "
                            f"for {timeout_s:.0f}s"
                        ) from None
                    time.sleep(0.05)
            self._remove_stale_temp_files()
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    # -- internals -----------------------------------------------------------------------
    def _remove_stale_temp_files(self) -> None:
        """Temp files of a write that was killed midway (fileio.write_atomic names them
        `.<name>.XXXX.tmp`). Every write of ours happens under the apply lock, which we now
        hold: any such file left is stale."""
        for directory, names in ((self.path.parent, (self.path.name,)), (self.state_dir, None)):
            try:
                entries = list(os.scandir(directory))
            except OSError:
                continue
            for entry in entries:
                name = entry.name
                if not (name.startswith(".") and name.endswith(".tmp")):
                    continue
                if names is not None and not any(name.startswith(f".{n}.") for n in names):
                    continue
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)

    def _backup(self, number: int) -> Path:
        return self.state_dir / f"{self.path.name}.{number}"

    def _ensure_state_dir(self) -> None:
        if not self.path.parent.is_dir():
            raise SupervisorFileError(
                f"{self.path.parent}: no such directory (the include file must live in a "
                "directory that supervisord.conf's [include] files= line matches)"
            )
        try:
            self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise SupervisorFileError(f"{self.state_dir}: cannot create: {exc}") from None

    def _rotate(self, current: str) -> None:
        if self.backups == 0:
            return
        newest = self._backup(1)
        if newest.exists() and newest.read_text(encoding="utf-8") == current:
            return  # a retried apply: this version is kept already
        for number in range(self.backups - 1, 0, -1):
            older = self._backup(number)
            if older.exists():
                os.replace(older, self._backup(number + 1))
        write_atomic(newest, current, mode=0o600)

    def _write_live(self, text: str) -> None:
        try:
            write_atomic(self.path, text)
        except OSError as exc:
            raise SupervisorFileError(f"{self.path}: cannot write: {exc}") from None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
