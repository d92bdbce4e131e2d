"""Where a side of `autoscaler diff` takes its policies from: a directory or a git revision.

An argument naming an existing directory is that directory. Anything else is read as a git
revision of the repository around the current directory, in one of two forms:

- `REV` (`origin/main`, `HEAD~1`, a commit id): the policy directory (AUTOSCALER_POLICIES_DIR,
  `policies` by default, taken relative to the current directory) as it is at REV;
- `REV:PATH` (`main:policies`, `HEAD:./policies`): PATH at REV, relative to the repository's
  root, or to the current directory when it starts with `./` or `../` (as git reads it).

A revision's `*.toml` files are copied out of git's object store (`git cat-file`) into a
scratch directory; the work tree and the index are never touched. Symbolic links are
followed inside the repository, as a checkout would follow them. A revision at which the
directory does not exist has no pools (a pull request that adds the first policies).
"""

from __future__ import annotations

import os
import posixpath
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from autoscaler.policy.loader import PolicyError

SourceKind = Literal["directory", "revision"]
_OBJECT_TYPES = (b"blob", b"tree", b"commit", b"tag")
# `git cat-file --batch --follow-symlinks` answers these instead of an object.
_LINK_PROBLEMS = {
    b"dangling": "a symbolic link to a file that does not exist",
    b"loop": "a symbolic link in a loop",
    b"notdir": "a symbolic link through something that is not a directory",
    b"symlink": "a symbolic link leading out of the repository",
}


class SourceError(Exception):
    """An argument is neither a directory nor a readable revision (a usage error)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicySource:
    """One side of a diff, as the report names it."""

    spec: str  # the argument as given
    kind: SourceKind
    path: str  # the directory as given, or its path in the repository ("." for the root)
    rev: str | None = None  # a revision as given (`origin/main`)
    commit: str | None = None  # its full commit id


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenedSource:
    """A side's policy files on disk (None when the revision has no such directory)."""

    source: PolicySource
    directory: Path | None
    shown_directory: Path  # how errors name the directory: as given, or the path in the repo
    problems: list[PolicyError] = field(default_factory=list)  # files git could not give

    def shown(self, error: PolicyError) -> PolicyError:
        """`error` with its file named as the operator knows it (not the scratch copy)."""
        if self.directory is None:
            return error
        try:
            inside = error.file.relative_to(self.directory)
        except ValueError:
            return error
        return PolicyError(
            file=self.shown_directory / inside,
            field=error.field,
            problem=error.problem,
            line=error.line,
        )


def open_source(
    spec: str, *, default_path: Path, scratch: Path, cwd: Path | None = None
) -> OpenedSource:
    """Resolve `spec` (see the module's docstring); a revision's files go under `scratch`,
    which must be an empty or missing directory the caller removes afterwards."""
    cwd = cwd or Path.cwd()
    local = Path(spec) if Path(spec).is_absolute() else cwd / spec
    if spec and local.is_dir():
        source = PolicySource(spec=spec, kind="directory", path=spec)
        return OpenedSource(source=source, directory=local, shown_directory=Path(spec))
    return _open_revision(spec, default_path=default_path, scratch=scratch, cwd=cwd)


def _open_revision(spec: str, *, default_path: Path, scratch: Path, cwd: Path) -> OpenedSource:
    top = _git_text(["rev-parse", "--show-toplevel"], cwd=cwd)
    if top is None:
        raise SourceError(
            f"{spec!r} is not a directory, and {cwd} is not inside a git repository (needed "
            "to read it as a revision)"
        )
    rev, colon, raw_path = spec.partition(":")
    if colon and not rev:
        raise SourceError(f"{spec!r}: name a revision before ':' (REV:PATH)")
    if colon:
        path = _repo_path(raw_path, prefix=_git_text(["rev-parse", "--show-prefix"], cwd=cwd))
    else:
        path = _default_repo_path(default_path, top=Path(top), cwd=cwd)
    if path is None or path.startswith("../") or path == "..":
        shown = raw_path if colon else str(default_path)
        raise SourceError(f"{spec!r}: {shown} lies outside the git repository at {top}")
    commit = _git_text(
        ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"], cwd=cwd
    )
    if commit is None:
        raise SourceError(
            f"{spec!r} is neither a directory nor a revision of the git repository at {top}"
        )
    source = PolicySource(spec=spec, kind="revision", path=path or ".", rev=rev, commit=commit)
    shown_directory = Path(path or ".")
    # --follow-symlinks: a `policies` that is a link to a directory is that directory.
    found = _git(
        ["cat-file", "--batch-check", "--follow-symlinks"],
        cwd=cwd,
        stdin=f"{commit}:{path}\n".encode(),
    )
    words = found.stdout.split()
    if found.returncode != 0 or len(words) != 3 or words[1] not in _OBJECT_TYPES:
        # Missing (or a link to nothing): no policies at this revision.
        return OpenedSource(source=source, directory=None, shown_directory=shown_directory)
    tree, kind = words[0].decode(), words[1].decode()
    if kind != "tree":
        raise SourceError(f"{spec!r}: {path} is a {kind} at {rev}, not a directory")
    scratch.mkdir(parents=True, exist_ok=True)
    problems = _copy_policies(tree, f"{commit}:{path + '/' if path else ''}", scratch, cwd=cwd)
    return OpenedSource(
        source=source,
        directory=scratch,
        shown_directory=shown_directory,
        problems=[
            PolicyError(file=shown_directory / name, field="(file)", problem=problem)
            for name, problem in problems
        ],
    )


def _repo_path(raw: str, *, prefix: str | None) -> str | None:
    """A REV:PATH path relative to the repository root ("" for the root itself)."""
    if raw in (".", "..") or raw.startswith(("./", "../")):
        raw = posixpath.join(prefix or "", raw)
    normal = posixpath.normpath(raw.strip("/") or ".")
    return "" if normal == "." else normal


def _default_repo_path(default: Path, *, top: Path, cwd: Path) -> str | None:
    absolute = default if default.is_absolute() else cwd / default
    try:
        relative = Path(os.path.normpath(absolute)).relative_to(top.resolve())
    except ValueError:
        try:
            relative = absolute.resolve().relative_to(top.resolve())
        except ValueError:
            return None
    text = relative.as_posix()
    return "" if text == "." else text


def _copy_policies(tree: str, prefix: str, target: Path, *, cwd: Path) -> list[tuple[str, str]]:
    """Write the tree's `*.toml` files into `target`; (name, problem) for those git could
    not give as a file."""
    listing = _git(["ls-tree", "--full-tree", "-z", tree], cwd=cwd)
    if listing.returncode != 0:
        raise SourceError(f"git ls-tree {tree}: {_stderr(listing)}")
    names: list[str] = []
    problems: list[tuple[str, str]] = []
    for entry in listing.stdout.split(b"\0"):
        if not entry:
            continue
        meta, _, raw_name = entry.partition(b"\t")
        name = os.fsdecode(raw_name)
        if meta.split(b" ")[1] != b"blob" or not name.endswith(".toml"):
            continue  # subdirectories, submodules and other files are not policies
        if "\n" in name:
            problems.append((name, "a file name with a line break cannot be a policy"))
            continue
        names.append(name)
    if not names:
        return problems
    request = "".join(f"{prefix}{name}\n" for name in names).encode()
    answer = _git(["cat-file", "--batch", "--follow-symlinks"], cwd=cwd, stdin=request)
    if answer.returncode != 0:
        raise SourceError(f"git cat-file: {_stderr(answer)}")
    for name, (content, problem) in zip(names, _batch_objects(answer.stdout), strict=True):
        if content is None:
            problems.append((name, problem))
        else:
            (target / name).write_bytes(content)
    return problems


def _batch_objects(output: bytes) -> list[tuple[bytes | None, str]]:
    """Parse `git cat-file --batch --follow-symlinks` output: (content, "") per blob, or
    (None, problem)."""
    results: list[tuple[bytes | None, str]] = []
    position = 0
    while position < len(output):
        end = output.index(b"\n", position)
        words = output[position:end].split(b" ")
        position = end + 1
        if len(words) == 3 and words[1] in _OBJECT_TYPES and words[2].isdigit():
            size = int(words[2])
            content = output[position : position + size]
            position += size + 1
            if words[1] == b"blob":
                results.append((content, ""))
            else:
                results.append((None, f"leads to a {words[1].decode()}, not a file"))
        elif words[0] in _LINK_PROBLEMS and len(words) == 2 and words[1].isdigit():
            position += int(words[1]) + 1
            results.append((None, _LINK_PROBLEMS[words[0]]))
        else:
            results.append((None, f"git cannot read it ({b' '.join(words[1:]).decode()})"))
    return results


def _git(
    args: list[str], *, cwd: Path, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"}
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, input=stdin, capture_output=True, env=env, check=False
        )
    except FileNotFoundError:
        raise SourceError("git is not installed: it is needed to read a revision") from None


def _git_text(args: list[str], *, cwd: Path) -> str | None:
    """Git's output without the trailing line break, or None when git fails."""
    done = _git(args, cwd=cwd)
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", "replace").rstrip("\n")


def _stderr(done: subprocess.CompletedProcess[bytes]) -> str:
    return done.stderr.decode("utf-8", "replace").strip()
