"""`autoscaler init --from-supervisor FILE`: policies from a hand-written Supervisor config."""

from __future__ import annotations

import argparse
import glob
import re
import sys
from pathlib import Path

from autoscaler.cli.common import fail_usage
from autoscaler.constants import EXIT_FAILED, EXIT_OK
from autoscaler.fileio import write_atomic
from autoscaler.observe.logtail import logged_run_times
from autoscaler.policy.importer import (
    ImportedPool,
    SupervisorImportError,
    import_supervisor_config,
    render_policy,
    with_measured_run_time,
)
from autoscaler.policy.loader import PolicyErrors, parse_policy


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = verbs.add_parser(
        "init",
        help="write policies from an existing Supervisor config",
        description="Read a hand-written Supervisor config; every program running `artisan "
        "queue:work` becomes a policy file in --out (queues, flags, numprocs as the static "
        "count, log settings). Other programs are listed and left alone. Existing files are "
        "never overwritten unless --force is given.",
    )
    parser.add_argument(
        "--from-supervisor", type=Path, required=True, metavar="FILE", help="Supervisor config"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("policies"), help="directory (default: policies)"
    )
    parser.add_argument("--force", action="store_true", help="overwrite existing policy files")
    parser.set_defaults(func=run)


MIN_MEASURED_JOBS = 10  # fewer logged jobs than this: keep the default guess
_EXPANSION = re.compile(r"%\([a-z_]+\)[-#0 +]*\d*[a-z]")


def _measured(pool: ImportedPool) -> ImportedPool:
    """The pool with its run time measured from the hand-written program's existing logs
    (their `queue:work` lines), when they hold enough jobs."""
    pattern = pool.data["supervisor"].get("stdout_logfile")
    if not pattern or pattern in ("AUTO", "NONE") or pattern.startswith("/dev/"):
        return pool
    paths = sorted(glob.glob(_EXPANSION.sub("*", pattern)))
    queues = tuple(pool.data["queues"])
    run_times = [t for path in paths for t in logged_run_times(path, queues=queues)]
    if len(run_times) < MIN_MEASURED_JOBS:
        return pool
    mean_s = sum(run_times) / len(run_times)
    where = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
    source = f"mean of {len(run_times)} jobs logged in {where} ({mean_s:.3g} s)"
    return with_measured_run_time(pool, mean_s=mean_s, source=source)


def run(args: argparse.Namespace) -> int:
    source: Path = args.from_supervisor
    out: Path = args.out
    if not source.is_file():
        return fail_usage(f"{source}: no such file")
    try:
        result = import_supervisor_config(source)
    except SupervisorImportError as exc:
        return fail_usage(str(exc))
    if not result.pools:
        print(f"{source}: no program runs `artisan queue:work`; nothing to import", file=sys.stderr)
        return EXIT_FAILED
    rendered: dict[Path, str] = {}
    pools = [_measured(p) for p in result.pools]
    for pool in pools:
        path = out / f"{pool.pool}.toml"
        text = render_policy(pool, source=source)
        try:
            parse_policy(path, text)  # never write a policy that `check` would reject
        except PolicyErrors as exc:
            print(exc, file=sys.stderr)
            return EXIT_FAILED
        rendered[path] = text
    existing = [p for p in rendered if p.exists()]
    if existing and not args.force:
        names = ", ".join(str(p) for p in existing)
        return fail_usage(f"would overwrite {names}; pass --force to replace them")
    out.mkdir(parents=True, exist_ok=True)
    for path, text in rendered.items():
        write_atomic(path, text)
        pool = next(p for p in pools if path.stem == p.pool)
        print(f"wrote {path}  (from [program:{pool.program}], {len(pool.notes)} note(s))")
        if pool.run_time_source:
            print(f"  expected_run_time_s = {pool.data['expected_run_time_s']}: "
                  f"{pool.run_time_source}")  # fmt: skip
    for program, why in result.left_alone:
        print(f"left alone: [program:{program}] ({why})")
    return EXIT_OK
