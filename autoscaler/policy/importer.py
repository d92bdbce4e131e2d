"""Turn a hand-written Supervisor config into policy files (`autoscaler init --from-supervisor`).

Every `[program:x]` whose command runs `artisan queue:work` becomes one pool: its queues, flags,
numprocs (as the static count), priority and log settings are kept; bounds and SLO get
conservative defaults that the operator then tunes. Other programs are reported and left alone.
"""

from __future__ import annotations

import configparser
import textwrap
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from supervisor.datatypes import dict_of_key_value_pairs

from autoscaler.policy.model import (
    STOPWAIT_MARGIN_S,
    command_option,
    default_queue_list,
    worker_timeout_s,
)
from autoscaler.policy.tomlfmt import toml_value

# Why each copied Supervisor option matters, written above it in the generated file.
SUPERVISOR_KEY_NOTES = {
    "user": "Unix user the workers run as.",
    "directory": "Working directory: the Laravel application.",
    "stopwaitsecs": "After SIGTERM a worker finishes its current job; SIGKILL follows after "
    "this many seconds, so it must exceed --timeout.",
    "startsecs": "Seconds a worker must stay up to count as started.",
    "startretries": "Start attempts before Supervisor gives up (FATAL).",
    "autorestart": "Restart a worker that exits (Laravel exits after --memory, --max-jobs or "
    "queue:restart).",
    "stdout_logfile": "Each worker slot logs to its own file (_NN before the extension); "
    "autoscaler reads these lines for throughput and run time.",
    "stdout_logfile_maxbytes": "Rotate the log at this size.",
    "stdout_logfile_backups": "Rotated logs kept.",
    "redirect_stderr": "Send stderr to the same log.",
    "stderr_logfile": "Separate log for stderr.",
}

# Laravel's WorkCommand default for --memory, MB.
LARAVEL_DEFAULT_MEMORY_MB = 128
DEFAULT_SLO_WAIT_S = 60.0


class SupervisorImportError(Exception):
    """The Supervisor file cannot be read; the message names the file and section."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportedPool:
    pool: str
    program: str
    data: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    # Where expected_run_time_s came from when it was measured (the old programs' logs).
    run_time_source: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportResult:
    pools: list[ImportedPool]
    left_alone: list[tuple[str, str]]  # (program, why)


def import_supervisor_config(path: Path) -> ImportResult:
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"), strict=False)
    try:
        with path.open(encoding="utf-8") as handle:
            parser.read_file(handle)
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        raise SupervisorImportError(f"{path}: cannot parse as a Supervisor config: {exc}") from exc
    pools: list[ImportedPool] = []
    left_alone: list[tuple[str, str]] = []
    for section in parser.sections():
        if not section.startswith("program:"):
            continue
        program = section.removeprefix("program:")
        options = dict(parser.items(section))
        command = options.get("command", "")
        if "queue:work" not in command:
            left_alone.append((program, "not a queue:work worker"))
            continue
        try:
            pools.append(_pool_from_program(path, program, options))
        except ValueError as exc:
            raise SupervisorImportError(f"{path}: [{section}]: {exc}") from exc
    _check_unique_pools(path, pools)
    return ImportResult(pools=pools, left_alone=left_alone)


def pool_name_for(queues: tuple[str, ...]) -> str:
    """`default` for a pool that consumes Laravel's default queue, else its first queue."""
    return "default" if "default" in queues else queues[0]


def _pool_from_program(path: Path, program: str, options: dict[str, str]) -> ImportedPool:
    command = options["command"]
    queues = default_queue_list(command)
    notes: list[str] = []
    numprocs = int(options.get("numprocs", "1"))
    timeout_s = worker_timeout_s(command)
    memory_raw = command_option(command, "memory")
    memory_mb = (
        int(memory_raw) if memory_raw and memory_raw.isdigit() else LARAVEL_DEFAULT_MEMORY_MB
    )
    supervisor: dict[str, Any] = {}
    for key in ("user", "directory"):
        if key in options:
            supervisor[key] = options[key]
    if "environment" in options:
        supervisor["environment"] = dict_of_key_value_pairs(options["environment"])
    stopwaitsecs = int(options.get("stopwaitsecs", "10"))
    if stopwaitsecs <= timeout_s:
        notes.append(
            f"stopwaitsecs was {stopwaitsecs}, not above --timeout={timeout_s}: raised to "
            f"{timeout_s + STOPWAIT_MARGIN_S} so a stopping worker can finish its job"
        )
        stopwaitsecs = timeout_s + STOPWAIT_MARGIN_S
    supervisor["stopwaitsecs"] = stopwaitsecs
    for key in ("startsecs", "startretries", "stdout_logfile_backups"):
        if key in options:
            supervisor[key] = int(options[key])
    for key in ("stdout_logfile", "stdout_logfile_maxbytes", "stderr_logfile"):
        if key in options:
            supervisor[key] = options[key]
    if "autorestart" in options:  # a TOML boolean where Supervisor's word is one
        word = options["autorestart"].strip().lower()
        booleans = {"true": True, "false": False}
        supervisor["autorestart"] = booleans.get(word, word)
    if "redirect_stderr" in options:
        supervisor["redirect_stderr"] = options["redirect_stderr"].lower() in ("true", "1", "yes")
    data: dict[str, Any] = {
        "queues": list(queues),
        "program": program,
        "command": command,
        "min_processes": 1 if numprocs else 0,
        "static_processes": numprocs,
        "max_processes": max(2 * numprocs, numprocs + 2),
        "memory_per_worker_mb": memory_mb,
        "priority": int(options.get("priority", "999")),
        "expected_run_time_s": 1.0,
        "slo": {"wait_s": DEFAULT_SLO_WAIT_S, "percentile": 95.0},
        "strategy": {"name": "slo"},
        "supervisor": supervisor,
    }
    return ImportedPool(pool=pool_name_for(queues), program=program, data=data, notes=notes)


def with_measured_run_time(pool: ImportedPool, *, mean_s: float, source: str) -> ImportedPool:
    """The pool with expected_run_time_s measured from the old program's logs."""
    data = {**pool.data, "expected_run_time_s": round(mean_s, 3)}
    return replace(pool, data=data, run_time_source=source)


def _check_unique_pools(path: Path, pools: list[ImportedPool]) -> None:
    seen: dict[str, str] = {}
    for pool in pools:
        other = seen.setdefault(pool.pool, pool.program)
        if other != pool.program:
            raise SupervisorImportError(
                f"{path}: programs {other!r} and {pool.program!r} both consume queue "
                f"{pool.pool!r}; merge them by hand"
            )


def comment_lines(text: str) -> list[str]:
    """`text` as TOML comment lines wrapped at 88 columns."""
    return [f"# {line}" for line in textwrap.wrap(text, width=86)]


def render_policy(pool: ImportedPool, *, source: Path) -> str:
    """The policy file for one imported pool, with comments explaining each choice."""
    d = pool.data
    sv = d["supervisor"]
    lines = [
        f"# Pool {pool.pool!r}: imported from [program:{pool.program}] in {source.name}",
        "# by `autoscaler init --from-supervisor`. Review the bounds and the SLO, then commit.",
        *(line for note in pool.notes for line in comment_lines(f"NOTE: {note}")),
        "",
        "# Laravel queues the workers consume, highest priority first (the --queue flag).",
        f"queues = {toml_value(d['queues'])}",
        "# Supervisor program name; autoscaler renders one [program:<name>_NN] per worker.",
        f"program = {toml_value(d['program'])}",
        f"command = {toml_value(d['command'])}",
        "",
        f"# The hand-written config ran numprocs={d['static_processes']}; that is the",
        "# starting point and what the `static` strategy keeps.",
        f"static_processes = {d['static_processes']}",
        f"min_processes = {d['min_processes']}",
        f"max_processes = {d['max_processes']}",
        "# The worker's --memory flag: Laravel restarts a worker that grows past it.",
        f"memory_per_worker_mb = {toml_value(d['memory_per_worker_mb'])}",
        "# Lower wins under memory pressure (as Supervisor's priority, kept from the file).",
        f"priority = {d['priority']}",
        *(
            comment_lines(f"Measured by `autoscaler init`: {pool.run_time_source}.")
            if pool.run_time_source
            else ["# Typical run time of one job until autoscaler has measured it, seconds."]
        ),
        f"expected_run_time_s = {toml_value(d['expected_run_time_s'])}",
        "",
        "[slo]",
        "# 95 % of jobs should start within wait_s of being queued. Set from the business need.",
        f"wait_s = {toml_value(d['slo']['wait_s'])}",
        f"percentile = {toml_value(d['slo']['percentile'])}",
        "",
        "[strategy]",
        f"name = {toml_value(d['strategy']['name'])}",
        "",
        "[supervisor]",
        "# Copied from the hand-written program into every worker slot.",
    ]
    for key, value in sv.items():
        if key != "environment":
            lines += comment_lines(SUPERVISOR_KEY_NOTES.get(key, ""))
            lines.append(f"{key} = {toml_value(value)}")
    if sv.get("environment"):
        lines += ["", "[supervisor.environment]"]
        lines += [f"{k} = {toml_value(v)}" for k, v in sv["environment"].items()]
    return "\n".join(lines) + "\n"
