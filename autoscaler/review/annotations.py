"""Policy errors as GitHub Actions annotations (workflow commands on stdout).

`::error file=F,line=N,title=T::message` makes GitHub show the message on line N of file F in
the pull request's diff. Escaping follows GitHub's workflow-command rules (as
@actions/core's command.ts does): in the message `%`, CR and LF are percent-encoded; in a
property value `:` and `,` are as well, since they separate the properties.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from autoscaler.policy.loader import PolicyError


def escape_data(text: str) -> str:
    """Escape a workflow command's message."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow command's property value (file, title, ...)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_command(command: str, message: str, properties: Mapping[str, str]) -> str:
    """`::command key=value,...::message`, every part escaped."""
    props = ",".join(f"{key}={escape_property(value)}" for key, value in properties.items())
    return f"::{command}{' ' + props if props else ''}::{escape_data(message)}"


def annotation_path(path: Path, *, workspace: Path | None = None, cwd: Path | None = None) -> str:
    """The path GitHub resolves against the repository root: relative to $GITHUB_WORKSPACE
    (or the current directory) when the file lies inside it, else as given."""
    cwd = cwd or Path.cwd()
    if workspace is None:
        env = os.environ.get("GITHUB_WORKSPACE")
        workspace = Path(env) if env else cwd
    absolute = path if path.is_absolute() else cwd / path
    try:
        return absolute.resolve().relative_to(workspace.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def error_annotations(
    errors: Iterable[PolicyError], *, workspace: Path | None = None, cwd: Path | None = None
) -> list[str]:
    """One `::error` line per problem. A problem of the whole directory (the memory budget, a
    missing file) names no file: GitHub can attach an annotation to a file only."""
    lines = []
    for error in errors:
        properties: dict[str, str] = {}
        if error.file.suffix == ".toml":
            properties["file"] = annotation_path(error.file, workspace=workspace, cwd=cwd)
            if error.line:
                properties["line"] = str(error.line)
        properties["title"] = f"policy {error.field}"
        message = error.problem if "file" in properties else f"{error.file}: {error.problem}"
        lines.append(workflow_command("error", message, properties))
    return lines
